"""Classify images with a checkpoint: ``zoo.predict.predict`` and ``zoo predict``.

The model runs in eval mode, in batches, on each image prepared by the checkpoint's own transform
(``model.pretrained_cfg`` -> ``zoo.data.transforms.make_transform``: channels, size, mean/std), and
each image gets its top-k classes with softmax probabilities. ``backend`` is a ``zoo.runners`` spec;
``auto`` (the default) is the setting measured fastest for that many images, setup included (often bf16,
whose probabilities can differ from fp32 in the third decimal); ``eager`` is the model as built, fp32.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .builder import create
from .data.folders import find_images, open_image
from .data.transforms import make_transform
from .errors import InvalidArgumentError
from .metadata import data_config
from .registry import get_entry
from .runners import AUTO_SPECS, INT8, prepare, resolve
from .utils.machine import resolve_device

__all__ = ["predict", "Prediction"]

_logger = logging.getLogger(__name__)


@dataclass
class Prediction:
    """The top-k classes of one image: ``top`` is a list of ``{"class", "index", "prob"}``, best first."""

    source: str
    top: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load(item: Any) -> tuple[str, Any]:
    if isinstance(item, (str, Path)):
        return str(item), open_image(item)  # a regular file, decoded by mode; a bad one is one line naming it
    return "", item


def predict(model: str | nn.Module, images: Sequence[Any], *, weights: str | None = "default", topk: int = 5,
            batch_size: int = 64, device: str = "cpu", backend: str = "auto") -> list[Prediction]:
    """Classify ``images``: file paths, folders (searched recursively), PIL images or uint8 tensors.

    Args:
        model: a registered name (built with ``weights``) or a model from ``zoo.create`` (its
            ``pretrained_cfg`` gives the preprocessing and class names).
        images: file paths, folders (searched recursively), PIL images or uint8 tensors (C, H, W); an image
            of another size is resized to the model's input, and the log says so.
        weights: the checkpoint for a named ``model`` (default: its released default checkpoint).
        topk: how many classes to return per image.
        batch_size: images per batch.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        backend: a ``zoo.runners`` setting (``auto`` picks by the number of images).

    Returns:
        One ``Prediction`` per image, in order: its source and the ``topk`` classes with probabilities.

    Raises:
        InvalidArgumentError: ``topk`` or ``batch_size`` below 1, or a named model with no released weights.
        ZooError: an image file that is not a readable image (the message names it).
    """
    if topk < 1:
        raise InvalidArgumentError(f"topk must be >= 1, got {topk}")
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(model, str):
        if weights == "default" and not get_entry(model).weights:
            raise InvalidArgumentError(f"{model} has no released weights: pass a checkpoint file as the weights "
                                       f"(--weights FILE), or train one with `zoo train`")
        model = create(model, weights=weights)
    cfg = data_config(model)
    transform = make_transform(cfg)
    classes = list(cfg.get("classes") or ())
    dev = resolve_device(device)
    model = model.to(dev).eval()  # always: a model from create() starts in train mode, as in torchvision
    items: list[Any] = []
    for item in images:
        is_path = isinstance(item, (str, Path))
        items += find_images([str(item)]) if is_path and Path(item).expanduser().is_dir() else [item]
    run = _runner(model, backend, tuple(cfg["input_size"]), dev, min(batch_size, max(1, len(items))), len(items))
    results: list[Prediction] = []
    for start in range(0, len(items), batch_size):
        loaded = [_load(item) for item in items[start:start + batch_size]]
        x = torch.stack([transform(image) for _, image in loaded]).to(dev)
        with torch.inference_mode():
            probs = run(x).float().softmax(1).cpu()
        k = min(topk, probs.shape[1])
        values, indices = probs.topk(k, dim=1)
        for j, (source, _) in enumerate(loaded):
            top = [{"class": classes[i] if i < len(classes) else str(i), "index": int(i), "prob": float(p)}
                   for p, i in zip(values[j].tolist(), indices[j].tolist())]
            results.append(Prediction(source or f"#{start + j}", top))
    return results


def _runner(model: nn.Module, backend: str, input_size: tuple[int, ...], dev: torch.device, batch_size: int,
            images: int) -> Any:
    """``model`` itself for ``eager``; else a ``zoo.runners`` runner (``auto``: resolved for ``images`` images)."""
    if backend == "eager":
        return model
    if backend in AUTO_SPECS:  # prepare chooses, and calibrates an int8 choice on training images
        return prepare(model, backend, input_size=input_size, device=dev, batch_size=batch_size, images=images)
    mods = resolve(backend, model, input_size=input_size, device=dev, batch_size=batch_size, images=images)
    if set(mods) & set(INT8):
        raise InvalidArgumentError(f"--backend {backend}: int8 needs calibration; export it with `zoo export --int8` "
                                   "and run the file")
    return prepare(model, backend, input_size=input_size, device=dev, batch_size=batch_size, images=images)
