"""Data: verified dataset splits, the embedded sample, image folders, preprocessing and augmentation.

- ``datasets``: ``load_split`` (torchvision's layout, verified), ``load_sample``, ``load_for_eval``, ``batches``,
  ``calibration_batch``, the ``Split`` of images and labels;
- ``cifar_files``: reading CIFAR's batch files without unpickling them;
- ``folders``: image files and ImageFolder trees;
- ``transforms``: a checkpoint's preprocessing (``Weights.transforms()``);
- ``augment``: the training augmentations of the recipes.

``import zoo.data`` is cheap: the names below load their module on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module of this package that defines it
_LAZY = {name: "datasets" for name in (
    "DatasetSpec", "DATASETS", "get_dataset_spec", "DatasetMissingError", "Split", "SPLITS", "CIRCLES_SEED",
    "SAMPLE_PER_CLASS", "VERIFIED_MD5", "VERIFIED_GZ", "VERIFIED_IDX", "VERIFIED_FINGERPRINT", "NOT_VERIFIED",
    "EMBEDDED_SAMPLE", "resolve_root", "split_files", "load_split", "calibration_batch", "load_sample",
    "load_for_eval", "make_circles", "batches")}
_LAZY.update({name: "folders" for name in ("find_images", "is_image_folder", "load_image_folder", "open_image")})
_LAZY.update({"make_transform": "transforms"})

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
