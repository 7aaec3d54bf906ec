"""Image folders (torchvision's ``ImageFolder`` layout) as zoo splits.

``root/<class>/<image>`` or, with splits, ``root/train/<class>/...`` and ``root/test/<class>/...``
(``val`` is accepted for ``test``). Class names are the folder names, sorted (as ImageFolder does).
Images are decoded with Pillow, converted to the model's channel count and resized to its input
size (``zoo.transforms.ImageTransform.pixels``), then held in memory as one uint8 tensor, so a
folder goes through the same fast batches as CIFAR-10.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .data import Split
from .errors import DatasetError
from .specs import DatasetSpec, get_dataset_spec
from .transforms import ImageTransform

__all__ = ["is_image_folder", "load_image_folder", "find_images", "FOLDER_VERIFICATION"]

_logger = logging.getLogger(__name__)

FOLDER_VERIFICATION = "image folder (not verified)"
_SPLIT_NAMES = {"train": ("train",), "test": ("test", "val")}


def is_image_folder(value: str | os.PathLike[str]) -> bool:
    """Whether ``value`` is an existing directory and not the name of a dataset zoo knows (those win)."""
    text = os.fspath(value)
    try:
        get_dataset_spec(text)
        return False
    except DatasetError:
        return Path(text).expanduser().is_dir()


def _split_root(root: Path, split: str) -> Path:
    for name in _SPLIT_NAMES.get(split, (split,)):
        if (root / name).is_dir():
            return root / name
    if any((root / n).is_dir() for names in _SPLIT_NAMES.values() for n in names):
        raise DatasetError(f"{root} has no {split!r} folder (expected one of {', '.join(_SPLIT_NAMES[split])})")
    return root  # no split folders: the folder itself is the split


def load_image_folder(root: str | os.PathLike[str], split: str, *, input_size: tuple[int, ...],
                      mean: tuple[float, ...], std: tuple[float, ...],
                      classes: tuple[str, ...] | None = None) -> Split:
    """The images under ``root`` (see the module docstring) as a ``Split`` at ``input_size``.

    ``classes``: the model's class names. When every folder name is one of them, labels are their
    indices there (a folder of ``cat`` and ``dog`` images scores a CIFAR-10 model); otherwise the
    folder's own sorted classes are the labels.
    """
    from torchvision.datasets import ImageFolder

    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"no image folder at {base}")
    folder = _split_root(base, split)
    try:
        found = ImageFolder(str(folder), allow_empty=False)
    except (FileNotFoundError, OSError) as exc:
        raise DatasetError(f"{folder} is not an image folder ({exc}); expected {folder}/<class>/<image>") from None
    to_pixels = ImageTransform(tuple(input_size), tuple(mean), tuple(std))
    images = []
    for path, _ in found.samples:
        try:
            with open(path, "rb") as f:
                from PIL import Image

                images.append(to_pixels.pixels(Image.open(f).convert("RGB" if input_size[0] == 3 else "L")))
        except (OSError, ValueError) as exc:  # PIL.UnidentifiedImageError is an OSError
            raise DatasetError(f"cannot read image {path}: {exc}") from None
    names = tuple(found.classes)
    if classes and set(names) <= set(classes):
        lookup = [classes.index(n) for n in names]
        labels = torch.tensor([lookup[t] for t in found.targets], dtype=torch.int64)
        names = tuple(classes)
    else:
        labels = torch.tensor(found.targets, dtype=torch.int64)
        if classes and len(classes) != len(names):
            _logger.warning("%s has %d classes (%s), the model %d: labels follow the folders' sorted order",
                            folder, len(names), ", ".join(names), len(classes))
    spec = DatasetSpec(base.name, len(names), tuple(input_size), tuple(mean), tuple(std), names, None)
    return Split(spec, split, torch.stack(images), labels, False, FOLDER_VERIFICATION, folder)


_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def find_images(paths: list[str]) -> list[Path]:
    """Image files named by ``paths`` (files, or folders searched recursively), sorted per folder."""
    found: list[Path] = []
    for value in paths:
        p = Path(value).expanduser()
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.suffix.lower() in _EXTENSIONS and q.is_file())
        elif p.is_file():
            found.append(p)
        else:
            raise DatasetError(f"no such image or folder: {p}")
    if not found:
        raise DatasetError(f"no images found in {', '.join(paths)} (looked for {', '.join(_EXTENSIONS)})")
    return found
