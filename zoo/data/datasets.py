"""Datasets: verified loaders and fast in-memory batches.

The constants of every dataset zoo knows (classes, input size, mean/std) live in ``zoo.specs``
(``DATASETS``, ``get_dataset_spec``; re-exported here).

Loading (``load_split``)
    CIFAR-10, CIFAR-100, MNIST and Fashion-MNIST are read from a root folder laid out the way
    torchvision expects. MNIST-family files (IDX, no pickle) go through torchvision's dataset classes;
    CIFAR's pickled batch files go through ``zoo.data.cifar_files``, whose restricted unpickler resolves
    only numpy's array constructors, so a hostile file is refused before anything in it can run
    (torchvision's CIFAR classes are never constructed). The root (``resolve_root``) is the
    ``data_dir`` argument, else ``$ZOO_DATA``, else ``$XDG_CACHE_HOME/zoo/data`` or
    ``~/.cache/zoo/data``. A split is then
    verified, and ``Split.verification`` says which check passed:

    1. md5 of the files. ``VERIFIED_MD5`` ("torchvision md5"): every file of the split matches the
       per-file md5 in torchvision's own table (CIFAR). torchvision's MNIST-family classes record md5s
       only for the ``.gz`` archives and merely check that the extracted files exist, so for them the
       check is ``VERIFIED_GZ`` (the archive md5 from torchvision's table, and the extracted file
       identical to the archive's content) or, for MNIST without archives, ``VERIFIED_IDX`` (the
       published md5 of the original uncompressed IDX files, copied into ``_IDX_MD5``).
    2. ``VERIFIED_FINGERPRINT`` ("content fingerprint (sha256)"): sha256 of
       ``np.ascontiguousarray(ds.data)`` and of ``np.asarray(ds.targets, dtype=np.uint8)`` equal the
       canonical values in ``_FINGERPRINTS`` (copied from ``shared/datasets/README.md``; CIFAR-10 and
       MNIST only). This accepts a repacked but pixel-identical copy, such as the CIFAR-10 in
       ``shared/datasets``. CIFAR-100 and Fashion-MNIST have no fingerprint: only the md5 counts.

    A copy that passes neither is refused with ``DatasetError``; ``verify=False`` skips both checks
    (``NOT_VERIFIED``, logged as a warning). An absent split raises ``DatasetMissingError`` (a
    ``DatasetError``), so callers can tell "absent" from "corrupt".

Embedded sample (``load_sample``)
    ``zoo/data/_sample/{cifar10,mnist}.npz`` hold 1,000 test images each: the first 100 images of each
    class in test-set order (for each class c, the 100 smallest test indices with label c), stored
    sorted by test index. Arrays: ``images`` uint8 N x C x H x W, ``labels`` uint8, ``indices`` int32
    (positions in the test split). They are made by ``tools/make_sample.py`` from verified test sets.
    ``load_for_eval`` falls back to the sample, with a warning, only when the full split is absent.

Circles
    Report 004's 2-D "Circles" data, generated (no files): class 0 ("outer") on the circle of radius
    1.0, class 1 ("inner") on radius 0.5, 100 points each per split, angle uniform in [0, 2 pi),
    plus gaussian noise of standard deviation 0.1 on each coordinate, shuffled. The generator is
    ``np.random.RandomState(CIRCLES_SEED + {"train": 0, "test": 1}[split])`` (the legacy generator,
    whose stream NumPy keeps stable across versions).

Fast path (``batches``, ``zoo.data.splits``)
    Each batch is sliced from one uint8 tensor and normalised on the device.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from ..errors import DatasetError, InvalidArgumentError, summarize
from ..specs import DATASETS, DatasetSpec, get_dataset_spec
from .cifar_files import read_batch
from .splits import Split, batches
from .verify import (
    NOT_VERIFIED,
    SPLITS,
    VERIFIED_FINGERPRINT,
    VERIFIED_GZ,
    VERIFIED_IDX,
    VERIFIED_MD5,
    _is_cifar,
    _spec_and_split,
    _tv_class,
    _verify,
    split_files,
)

__all__ = [
    "DatasetSpec",
    "DATASETS",
    "get_dataset_spec",
    "DatasetMissingError",
    "Split",
    "SPLITS",
    "CIRCLES_SEED",
    "SAMPLE_PER_CLASS",
    "VERIFIED_MD5",
    "VERIFIED_GZ",
    "VERIFIED_IDX",
    "VERIFIED_FINGERPRINT",
    "NOT_VERIFIED",
    "EMBEDDED_SAMPLE",
    "resolve_root",
    "split_files",
    "load_split",
    "calibration_batch",
    "load_sample",
    "load_for_eval",
    "make_circles",
    "batches",
]

_logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Where the files are, and what they must hash to
# --------------------------------------------------------------------------------------------------

CIRCLES_SEED = 4  # report 004
_CIRCLES_PER_CLASS = 100
_CIRCLES_RADII = (1.0, 0.5)  # class 0 "outer", class 1 "inner"
_CIRCLES_NOISE = 0.1


_SAMPLES = ("cifar10", "mnist")
SAMPLE_PER_CLASS = 100

EMBEDDED_SAMPLE = "embedded sample"


class DatasetMissingError(DatasetError):
    """The files of a split are absent (or could not be downloaded); nothing corrupt was found."""


def resolve_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The dataset root: ``data_dir``, else ``$ZOO_DATA``, else ``$XDG_CACHE_HOME/zoo/data`` (``~/.cache/zoo/data``)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get("ZOO_DATA"):
        return Path(os.environ["ZOO_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "zoo" / "data"


def _root_origin(data_dir: str | os.PathLike[str] | None) -> str:
    if data_dir is not None:
        return "data_dir"
    return "ZOO_DATA" if os.environ.get("ZOO_DATA") else "the default cache folder"


# --------------------------------------------------------------------------------------------------
# The loaded split
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# Reading through torchvision
# --------------------------------------------------------------------------------------------------

def _unchecked_class(spec: DatasetSpec, root: Path, files: list[str]) -> type:
    """torchvision's MNIST-family class with its integrity/existence checks reduced to "this split's files exist".

    zoo verifies the files itself afterwards. The MNIST classes' legacy ``processed/*.pt`` cache is
    ignored, so the data always comes from the files that were checked. The subclass keeps the base
    name, because the MNIST classes derive their folder (``<ClassName>/raw``) from it.
    """
    base = _tv_class(spec)

    def files_exist(self: Any) -> bool:
        return all((root / f).is_file() for f in files)

    overrides = {"_check_integrity": files_exist, "_check_exists": files_exist,
                 "_check_legacy_exist": lambda self: False}
    return type(base.__name__, (base,), overrides)


def _missing_message(spec: DatasetSpec, split: str, root: Path, origin: str, missing: list[str]) -> str:
    expected = split_files(spec, split)
    what = ", ".join(expected) if missing == expected else f"{', '.join(missing)} (of {', '.join(expected)})"
    return (f"{spec.name} {split} split not found: expected {what} in {root} (from {origin}); fix: pass "
            f"--download (download=True) to fetch it with torchvision, or set --data-dir (data_dir=) or the "
            f"ZOO_DATA environment variable to a folder that holds these files")


def _short_reason(exc: BaseException) -> str:
    """The exception's type and the last line of its message (torchvision's are multi-line)."""
    return f"{type(exc).__name__}: {summarize(exc, last=True)}"


def _open_torchvision(spec: DatasetSpec, split: str, root: Path, origin: str, download: bool) -> Any:
    files = split_files(spec, split)
    missing = [f for f in files if not (root / f).is_file()]
    if missing and not download:
        raise DatasetMissingError(_missing_message(spec, split, root, origin, missing))
    if missing:
        _logger.info("downloading %s into %s with torchvision", spec.name, root)
    cls = _tv_class(spec)
    try:
        if _is_cifar(cls):  # never constructed: torchvision's CIFAR classes unpickle the files
            if missing:
                from torchvision.datasets.utils import download_and_extract_archive

                download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)
            return _read_cifar(spec, split, root)
        return _unchecked_class(spec, root, files)(str(root), train=split == "train", download=bool(missing))
    except DatasetError:
        raise
    except Exception as exc:  # a boundary: torchvision raises RuntimeError, URLError, OSError, ...
        still_missing = [f for f in files if not (root / f).is_file()]
        if still_missing:
            raise DatasetMissingError(
                f"downloading {spec.name} failed (no network?): {_short_reason(exc)}; put "
                f"{', '.join(still_missing)} in {root}, or point --data-dir / ZOO_DATA at a folder holding them"
            ) from exc
        if isinstance(exc, PermissionError):
            raise DatasetError(f"could not read {spec.name} ({split} split) from {root}: permission denied "
                               f"({exc.filename or root})") from None
        raise DatasetError(f"could not read {spec.name} ({split} split) from {root}: {_short_reason(exc)}; "
                           f"the files may be corrupt: re-download them (--download into an empty folder)") from exc


def _read_cifar(spec: DatasetSpec, split: str, root: Path) -> SimpleNamespace:
    """The split's batch files read with ``zoo.data.cifar_files`` (no code can run), as torchvision's
    ``data``/``targets``."""
    cls = _tv_class(spec)
    listed = cls.train_list if split == "train" else cls.test_list
    labels_key = "fine_labels" if spec.name == "cifar100" else "labels"
    parts = [read_batch(root / cls.base_folder / name, labels_key, spec.num_classes) for name, _ in listed]
    return SimpleNamespace(data=np.concatenate([p[0] for p in parts]),
                           targets=np.concatenate([p[1] for p in parts]).tolist())


def _to_tensors(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
    images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)  # N x C x H x W
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return images.contiguous(), labels


# --------------------------------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------------------------------

def make_circles(split: str = "train", *, seed: int = CIRCLES_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The Circles points (float32 N x 2) and labels (int64 N) of ``split``; see the module docstring."""
    _spec_and_split("circles", split)
    rng = np.random.RandomState(seed + SPLITS.index(split))
    labels = np.repeat(np.arange(len(_CIRCLES_RADII)), _CIRCLES_PER_CLASS)
    radius = np.asarray(_CIRCLES_RADII)[labels]
    theta = rng.uniform(0.0, 2.0 * math.pi, size=labels.size)
    points = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)
    points += rng.normal(0.0, _CIRCLES_NOISE, size=points.shape)
    order = rng.permutation(labels.size)
    return points[order].astype(np.float32), labels[order].astype(np.int64)


def _load_circles(spec: DatasetSpec, split: str) -> Split:
    points, labels = make_circles(split)
    return Split(spec, split, torch.from_numpy(points), torch.from_numpy(labels), is_sample=False,
                 verification=f"generated (seed {CIRCLES_SEED + SPLITS.index(split)}, numpy RandomState)")


def load_split(dataset: str | DatasetSpec, split: str = "test", *, data_dir: str | os.PathLike[str] | None = None,
               download: bool = False, verify: bool = True) -> Split:
    """Load a full split into memory, verified (see the module docstring).

    Raises ``DatasetMissingError`` (one line: the files expected, the folder, how to fix) when the
    split is absent and ``download`` is False or the download fails, and ``DatasetError`` when the
    files are there but unreadable or fail verification.
    """
    spec, split = _spec_and_split(dataset, split)
    if spec.torchvision_class is None:
        return _load_circles(spec, split)
    root = resolve_root(data_dir)
    ds = _open_torchvision(spec, split, root, _root_origin(data_dir), download)
    if verify:
        verification = _verify(spec, split, root, ds)
    else:
        verification = NOT_VERIFIED
        _logger.warning("%s (%s split) in %s is loaded WITHOUT verification (--no-verify)", spec.name, split, root)
    images, labels = _to_tensors(ds)
    _logger.info("loaded %s %s: %d images from %s (%s)", spec.name, split, len(labels), root, verification)
    return Split(spec, split, images, labels, is_sample=False, verification=verification, root=root)


def load_sample(dataset: str | DatasetSpec) -> Split:
    """The embedded 1,000-image test sample (100 per class) of CIFAR-10 or MNIST."""
    spec, _ = _spec_and_split(dataset, "test")
    if spec.name not in _SAMPLES:
        raise DatasetError(f"no sample is shipped for {spec.name} (samples exist for: {', '.join(_SAMPLES)}); "
                           f"use the full dataset (--download, --data-dir or ZOO_DATA)")
    resource = importlib.resources.files(__package__).joinpath("_sample", f"{spec.name}.npz")
    if not resource.is_file():
        raise DatasetError(f"the embedded sample _sample/{spec.name}.npz is missing from this installation of zoo; "
                           f"regenerate it with tools/make_sample.py or reinstall zoo")
    with resource.open("rb") as f, np.load(f) as npz:
        images = torch.from_numpy(npz["images"].astype(np.uint8, copy=True))
        labels = torch.from_numpy(npz["labels"].astype(np.int64))
        indices = torch.from_numpy(npz["indices"].astype(np.int64))
    return Split(spec, "test", images.contiguous(), labels, is_sample=True, verification=EMBEDDED_SAMPLE,
                 indices=indices)


def load_for_eval(dataset: str | DatasetSpec, split: str = "test", *, data_dir: str | os.PathLike[str] | None = None,
                  download: bool = False, verify: bool = True, allow_sample: bool = True) -> Split:
    """The full split when present, else (only when it is absent, never when corrupt) the embedded sample.

    The fallback is logged as a warning; callers tell it apart by ``Split.is_sample``.
    """
    spec, split = _spec_and_split(dataset, split)
    try:
        return load_split(spec, split, data_dir=data_dir, download=download, verify=verify)
    except DatasetMissingError as exc:
        if not (allow_sample and split == "test" and spec.name in _SAMPLES):
            raise
        _logger.warning("%s; evaluating on the embedded %d-per-class SAMPLE instead of the full test set",
                        exc, SAMPLE_PER_CLASS)
        return load_sample(spec)


# --------------------------------------------------------------------------------------------------
# Fast path: whole-split tensors, batched normalisation (augmentation: zoo.data.augment)
# --------------------------------------------------------------------------------------------------


def calibration_batch(dataset: str | DatasetSpec, n: int = 300, *, mean: tuple[float, ...] | None = None,
                      std: tuple[float, ...] | None = None, data_dir: str | os.PathLike[str] | None = None,
                      seed: int = 0) -> torch.Tensor:
    """``n`` normalised training images drawn at random (``seed``): what int8 quantisation calibrates on.

    Training images only: calibrating on test images would fit int8 to the images it is scored on.
    Raises ``DatasetMissingError`` (one line) when the train split is absent.
    """
    if n < 1:
        raise InvalidArgumentError(f"calibration needs at least 1 image, got {n}")
    try:
        train = load_split(dataset, "train", data_dir=data_dir)
    except DatasetMissingError as exc:
        raise DatasetMissingError(f"int8 calibration needs the training images, which are absent: {exc}") from None
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    picked = dataclasses.replace(train, images=train.images[idx], labels=train.labels[idx], indices=None)
    return next(batches(picked, len(idx), mean=mean, std=std))[0]
