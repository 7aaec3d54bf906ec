"""Image folders (torchvision's ``ImageFolder`` layout) as zoo splits.

``root/<class>/<image>`` or, with splits, ``root/train/<class>/...`` and ``root/test/<class>/...``
(``val`` is accepted for ``test``). Class names are the folder names, sorted (as ImageFolder does).
Images are decoded with Pillow, converted to the model's channel count and resized to its input
size (``zoo.data.transforms.ImageTransform.pixels``), then held in memory as one uint8 tensor, so a
folder goes through the same fast batches as CIFAR-10.

This module is where image files enter zoo (folders, ``zoo predict`` and ``zoo viz``): ``open_image``
opens only a regular file, turns every Pillow failure (a decompression bomb, a text or ICC chunk too
large, a truncated file) into one ``DatasetError`` naming it, and converts by mode (``to_8bit``).
Folders are walked following directory links, but each real directory once, so a link cycle ends
and a link to a folder already seen does not count its images twice; FIFOs and devices are skipped.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

import torch

from ..errors import DatasetError, InvalidArgumentError, ZooError, summarize
from ..specs import DatasetSpec, get_dataset_spec
from ..utils.fileio import regular_file
from .splits import Split
from .transforms import ImageTransform, to_8bit

__all__ = ["FOLDER_VERIFICATION", "find_images", "is_image_folder", "load_image_folder", "open_image"]

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


def open_image(path: str | os.PathLike[str]) -> Any:
    """The image file ``path`` decoded by Pillow as an 8-bit ``L`` or ``RGB`` image (``zoo.data.transforms.to_8bit``).

    Only a regular file is opened; any decoding failure is one ``DatasetError`` naming the file.
    """
    from PIL import Image

    try:
        path = regular_file(path, "image")
        with Image.open(path) as image:
            image.load()
            return to_8bit(image, f"image {path}")
    except InvalidArgumentError as exc:
        raise DatasetError(str(exc)) from None
    except ZooError:
        raise
    except Exception as exc:  # noqa: BLE001  (a boundary: Pillow's decoders raise OSError, ValueError for a text
        # or ICC chunk too large, DecompressionBombError, SyntaxError, struct.error, ...)
        raise DatasetError(f"cannot read image {path}: {type(exc).__name__}: {summarize(exc)}") from None


def _walk(root: Path, seen: set[tuple[int, int]]) -> list[Path]:
    """The image files under ``root``, sorted as ImageFolder sorts them; each real directory is walked once
    (``seen``: its device and inode), so link cycles end; only regular files are listed."""
    found: list[Path] = []
    for dirpath, filenames in sorted(_walk_once(root, seen)):
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() not in _EXTENSIONS:
                continue
            try:
                mode = path.stat().st_mode
            except OSError:  # a broken link
                _logger.warning("skipping %s: it cannot be opened", path)
                continue
            if stat.S_ISREG(mode):
                found.append(path)
            else:
                _logger.warning("skipping %s: not a regular file", path)
    return found


def _walk_once(root: Path, seen: set[tuple[int, int]]) -> list[tuple[str, list[str]]]:
    walked = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:  # a link back to a folder walked already (a cycle, or a second route)
            _logger.warning("skipping %s: a link to a folder already read", dirpath)
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        walked.append((dirpath, filenames))
    return walked


def _samples(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """ImageFolder's classes (sorted sub-folders) and (image, class index) pairs, walked safely."""
    try:
        classes = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    except OSError as exc:
        raise DatasetError(f"{folder} is not an image folder ({summarize(exc)}); expected {folder}/<class>/<image>"
                           ) from None
    if not classes:
        raise DatasetError(f"{folder} is not an image folder (no class folders); expected {folder}/<class>/<image>")
    seen: set[tuple[int, int]] = set()
    samples = [(path, i) for i, name in enumerate(classes) for path in _walk(folder / name, seen)]
    empty = [c for i, c in enumerate(classes) if not any(t == i for _, t in samples)]
    if empty:
        raise DatasetError(f"{folder} is not an image folder: no images in {', '.join(empty[:10])} "
                           f"(looked for {', '.join(_EXTENSIONS)})")
    return classes, samples


def load_image_folder(root: str | os.PathLike[str], split: str, *, input_size: tuple[int, ...],
                      mean: tuple[float, ...], std: tuple[float, ...],
                      classes: tuple[str, ...] | None = None) -> Split:
    """The images under ``root`` (see the module docstring) as a ``Split`` at ``input_size``.

    ``classes``: the model's class names. When every folder name is one of them, labels are their
    indices there (a folder of ``cat`` and ``dog`` images scores a CIFAR-10 model); otherwise the
    folder's own sorted classes are the labels.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"no image folder at {base}")
    folder = _split_root(base, split)
    found_classes, samples = _samples(folder)
    to_pixels = ImageTransform(tuple(input_size), tuple(mean), tuple(std))
    images = [to_pixels.pixels(open_image(path)) for path, _ in samples]
    targets = [t for _, t in samples]
    names = tuple(found_classes)
    if classes and set(names) <= set(classes):
        lookup = [classes.index(n) for n in names]
        labels = torch.tensor([lookup[t] for t in targets], dtype=torch.int64)
        names = tuple(classes)
    else:
        labels = torch.tensor(targets, dtype=torch.int64)
        if classes and len(classes) != len(names):
            _logger.warning("%s has %d classes (%s), the model %d: labels follow the folders' sorted order",
                            folder, len(names), ", ".join(names[:20]), len(classes))
    spec = DatasetSpec(base.name, len(names), tuple(input_size), tuple(mean), tuple(std), names, None)
    return Split(spec, split, torch.stack(images), labels, False, FOLDER_VERIFICATION, folder)


_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def find_images(paths: list[str]) -> list[Path]:
    """Image files named by ``paths`` (regular files, or folders searched recursively), sorted per folder."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for value in paths:
        p = Path(value).expanduser()
        if p.is_dir():
            found += _walk(p, seen)
        elif p.exists():
            try:
                found.append(regular_file(p, "image"))
            except InvalidArgumentError as exc:
                raise DatasetError(str(exc)) from None
        else:
            raise DatasetError(f"no such image or folder: {p}")
    if not found:
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5:,} more" if len(paths) > 5 else "")
        raise DatasetError(f"no images found in {shown} (looked for {', '.join(_EXTENSIONS)})")
    return found
