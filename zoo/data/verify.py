"""Which files a dataset split is read from, and verifying a copy of them: md5 of the files (torchvision's
tables, the published IDX md5s), else a content fingerprint (sha256 of the pixels and labels);
``Split.verification`` says which check passed (``zoo.data.datasets`` describes the order).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DatasetError, InvalidArgumentError
from ..specs import DatasetSpec, get_dataset_spec

_logger = logging.getLogger(__name__)

SPLITS = ("train", "test")


def _spec_and_split(dataset: str | DatasetSpec, split: str) -> tuple[DatasetSpec, str]:
    spec = dataset if isinstance(dataset, DatasetSpec) else get_dataset_spec(dataset)
    if split not in SPLITS:
        raise InvalidArgumentError(f"unknown split {split!r}; use one of: {', '.join(SPLITS)}")
    return spec, split


def _tv_class(spec: DatasetSpec) -> type:
    import torchvision.datasets

    return getattr(torchvision.datasets, spec.torchvision_class)


def _is_cifar(cls: type) -> bool:
    return hasattr(cls, "base_folder")


def _file_table(spec: DatasetSpec, split: str) -> list[tuple[str, str | None]]:
    """(path relative to the root, torchvision md5 or None) of every file the split is read from."""
    cls = _tv_class(spec)
    if _is_cifar(cls):
        listed = cls.train_list if split == "train" else cls.test_list
        files = [(f"{cls.base_folder}/{name}", md5) for name, md5 in listed]
        return files + [(f"{cls.base_folder}/{cls.meta['filename']}", cls.meta["md5"])]
    prefix = "train" if split == "train" else "t10k"
    return [(f"{cls.__name__}/raw/{prefix}-{kind}-ubyte", None) for kind in ("images-idx3", "labels-idx1")]


def split_files(dataset: str | DatasetSpec, split: str = "test") -> list[str]:
    """Paths, relative to the dataset root, of the files ``load_split`` reads for this split."""
    spec, split = _spec_and_split(dataset, split)
    if spec.torchvision_class is None:
        return []
    return [path for path, _ in _file_table(spec, split)]


# Published md5 of the original *uncompressed* MNIST IDX files (see shared/datasets/README.md).
_IDX_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
}


# Canonical content fingerprints (images sha256, labels sha256), copied from shared/datasets/README.md.
_FINGERPRINTS: dict[tuple[str, str], tuple[str, str]] = {
    ("cifar10", "train"): ("47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
                           "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253"),
    ("cifar10", "test"): ("f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
                          "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5"),
    ("mnist", "train"): ("741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
                         "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13"),
    ("mnist", "test"): ("6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
                        "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5"),
}


VERIFIED_MD5 = "torchvision md5"


VERIFIED_GZ = "torchvision md5 (.gz archives; extracted files identical)"


VERIFIED_IDX = "md5 (published IDX files)"


VERIFIED_FINGERPRINT = "content fingerprint (sha256)"


NOT_VERIFIED = "not verified (--no-verify)"


def _md5(path: Path) -> str:
    from torchvision.datasets.utils import calculate_md5

    return calculate_md5(str(path))


def _md5_check(spec: DatasetSpec, split: str, root: Path) -> tuple[str | None, str]:
    """(which md5 check passed or None, why it failed)."""
    from torchvision.datasets.utils import check_integrity

    table = _file_table(spec, split)
    if table[0][1] is not None:  # CIFAR: torchvision's own per-file table
        bad = [path for path, md5 in table if not check_integrity(str(root / path), md5)]
        return (VERIFIED_MD5, "") if not bad else (None, f"md5 mismatch (torchvision's table) for {', '.join(bad)}")
    return _idx_md5_check(spec, root, [path for path, _ in table])


def _idx_md5_check(spec: DatasetSpec, root: Path, files: list[str]) -> tuple[str | None, str]:
    """MNIST family: the .gz archives against torchvision's md5 and the extracted files against their
    content; else the published md5 of the uncompressed files (MNIST)."""
    from torchvision.datasets.utils import check_integrity

    problems = []
    archive_md5 = dict(_tv_class(spec).resources)
    archives = [(root / f"{f}.gz", archive_md5.get(f"{Path(f).name}.gz")) for f in files]
    if all(gz.is_file() and md5 for gz, md5 in archives):
        bad = [f for f, (gz, md5) in zip(files, archives, strict=True)
               if not (check_integrity(str(gz), md5) and _gunzip_md5(gz) == _md5(root / f))]
        if not bad:
            return VERIFIED_GZ, ""
        problems.append(f"md5 mismatch (torchvision's .gz table, or the extracted file differs) for {', '.join(bad)}")
    else:
        problems.append("torchvision records md5s only for the .gz archives, which are not there")
    published = _IDX_MD5.get(spec.name)
    if published is not None:
        bad = [f for f in files if not check_integrity(str(root / f), published[Path(f).name])]
        if not bad:
            return VERIFIED_IDX, ""
        problems.append(f"md5 mismatch (published IDX md5) for {', '.join(bad)}")
    return None, "; ".join(problems)


def _gunzip_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fingerprint(ds: Any) -> tuple[str, str]:
    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else ds.data
    images = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
    labels = hashlib.sha256(np.asarray(ds.targets, dtype=np.uint8).tobytes()).hexdigest()
    return images, labels


def _fingerprint_check(spec: DatasetSpec, split: str, ds: Any) -> tuple[str | None, str]:
    expected = _FINGERPRINTS.get((spec.name, split))
    if expected is None:
        return None, f"no content fingerprint is known for {spec.name}, so only torchvision's md5 counts"
    images, labels = _fingerprint(ds)
    pairs = zip(("images", "labels"), (images, labels), expected, strict=True)
    differ = [what for what, got, want in pairs if got != want]
    if differ:
        return None, f"the content fingerprint (sha256) of the {' and '.join(differ)} does not match the canonical one"
    return VERIFIED_FINGERPRINT, ""


def _verify(spec: DatasetSpec, split: str, root: Path, ds: Any) -> str:
    passed, md5_problem = _md5_check(spec, split, root)
    if passed:
        return passed
    passed, fp_problem = _fingerprint_check(spec, split, ds)
    if passed:
        _logger.info("%s %s: %s; accepted by content fingerprint", spec.name, split, md5_problem)
        return passed
    raise DatasetError(f"{spec.name} ({split} split) in {root} failed verification: {md5_problem}, and "
                       f"{fp_problem}; re-download it (--download into an empty folder), or load it anyway "
                       f"with --no-verify (verify=False)")
