"""Checkpoints: the file format (``format``), where released files are found (``hub``), and loading them
(``load``).

The records (``Weights``, ``Metrics``) are in ``zoo.metadata``, their lookup in ``zoo.registry``;
both are re-exported here.

A zoo checkpoint is a safetensors file whose header repeats what a reader needs to use it alone:
the architecture, the dataset and its constants (classes, input size, mean/std), the storage dtype,
and, for released weights, the recipe and the metrics measured from that very file. Released weights
are named ``arch.tag`` (``resnet20.cifar10``) and registered with their model
(``register_model(..., weights=(...))``, the first is the default); each records the file's sha256,
which is checked every time the file is loaded.

Where a registered checkpoint is looked for, in order:

1. ``$ZOO_WEIGHTS_DIR/<file_name>`` (when set), then a git checkout's ``weights/<file_name>``;
2. the installed data distributions (``zoo-weights-1``, ``zoo-weights-2``...: ``pip install 'zoo[weights]'`` or
   the folders under a checkout's ``packaging/``), each found through its entry point in the group
   ``zoo.weights`` (``package_dirs``);
3. the cache, keyed by content: ``$ZOO_CACHE/<sha256>.safetensors``
   (default ``$XDG_CACHE_HOME/zoo/weights``, i.e. ``~/.cache/zoo/weights``);
4. a download (``download_url``): ``$ZOO_WEIGHTS_URL/<file_name>`` when that mirror is set, else the
   entry's ``url``, else the project's host ``DEFAULT_WEIGHTS_URL`` (none exists yet). The file is
   verified before it enters the cache, so the cache never holds a partial or wrong file.

Third-party state dicts (``.pth``, ``.pt``, ``.th``, ``.tar``) are read with
``torch.load(weights_only=True)`` only: a file that would run code when unpickled is refused.
Every load is strict: a missing or unexpected key, or a shape mismatch, is an error naming them all.
"""


from ..metadata import Metrics, Weights
from ..registry import get_weights, list_weights
from .format import FORMAT, FORMAT_VERSION, read_checkpoint, read_metadata, save_checkpoint, sha256_file
from .hub import DEFAULT_WEIGHTS_URL, cache_dir, download_url, package_dirs, verify_files, weights_dirs, where
from .load import ResolvedWeights, download, load_into, resolve

__all__ = ["FORMAT", "FORMAT_VERSION", "Metrics", "Weights", "ResolvedWeights", "save_checkpoint", "read_checkpoint",
           "read_metadata", "sha256_file", "weights_dirs", "package_dirs", "download_url", "where", "download",
           "verify_files", "DEFAULT_WEIGHTS_URL", "cache_dir", "resolve", "load_into", "list_weights", "get_weights"]
