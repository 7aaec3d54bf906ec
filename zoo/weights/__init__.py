"""Checkpoints: the file format, where checkpoints are found, and loading them into a model.

Every name below is defined in ``zoo.weights.load`` (the file format, locating and caching, resolving
and loading: split into ``format``, ``hub`` and ``load``); ``zoo.weights`` is the public surface.
"""

from .load import (
    DEFAULT_WEIGHTS_URL,
    FORMAT,
    FORMAT_VERSION,
    Metrics,
    ResolvedWeights,
    Weights,
    cache_dir,
    download,
    download_url,
    get_weights,
    list_weights,
    load_into,
    read_checkpoint,
    read_metadata,
    resolve,
    save_checkpoint,
    sha256_file,
    verify_files,
    weights_dirs,
    where,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "Metrics", "Weights", "ResolvedWeights", "save_checkpoint", "read_checkpoint",
           "read_metadata", "sha256_file", "weights_dirs", "download_url", "where", "download", "verify_files",
           "DEFAULT_WEIGHTS_URL", "cache_dir", "resolve", "load_into", "list_weights", "get_weights"]
