"""Scoring: top-1, top-5, mean loss, per-class accuracy, the confusion matrix and the calibration (ECE, Brier
score, reliability bins: ``zoo.calibration``) of a model on a ``Split``.

``evaluate(model, split)`` takes a module or any callable batch -> logits (a ``zoo.runners`` runner);
training, deployment checks, the studies and ``zoo-eval`` all score through it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .calibration import CalibrationStats
from .data.splits import Split, batches
from .errors import InvalidArgumentError, ZooError, summarize

__all__ = ["evaluate"]


def _progress(it: Iterator[Any], total: int, enabled: bool, desc: str) -> Iterator[Any]:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return iter(tqdm(it, total=total, desc=desc, unit="batch", leave=False))


def _check_shapes(model: Callable[[torch.Tensor], torch.Tensor], split: Split, num_classes: int, device: torch.device,
                  name: str) -> None:
    """Fail with a clear message when the model does not fit the data (input shape or class count)."""
    x = split.images[:2]
    try:
        with torch.no_grad():
            out = model(x.to(device, torch.float32))
    except Exception as e:  # a boundary: torch raises RuntimeError, onnxruntime its own exception types
        shape = "x".join(map(str, x.shape[1:]))
        raise InvalidArgumentError(
            f"{name} cannot take {split.dataset.name} input of shape {shape}: "
            f"{summarize(e, limit=300)}"
        ) from None
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise InvalidArgumentError(
            f"{name} outputs {tuple(out.shape[1:])} scores but {split.dataset.name} has {num_classes} classes"
        )
    _check_batch(out, x.shape[0], name)


def _check_batch(out: Any, images: int, name: str) -> None:
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != images:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidArgumentError(f"{name} gave outputs of shape {shape} for a batch of {images} images; "
                                   f"expected ({images}, classes): its batch size does not follow the input")


def _scores(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, name: str, index: int) -> torch.Tensor:
    """The logits of one batch: every failure of the model (an artefact's runtime raises its own types) is one line."""
    try:
        out = model(x)
    except ZooError:
        raise
    except Exception as e:  # noqa: BLE001  (a boundary: torch, onnxruntime and OpenVINO raise their own types)
        raise InvalidArgumentError(f"{name} failed on batch {index + 1} ({x.shape[0]} images): "
                                   f"{type(e).__name__}: {summarize(e, limit=300)}") from None
    _check_batch(out, x.shape[0], name)
    return out.float()


@torch.no_grad()
def evaluate(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], split: Split, *, batch_size: int = 256,
             device: str | torch.device = "cpu", mean: tuple[float, ...] | None = None,
             std: tuple[float, ...] | None = None, progress: bool = False, name: str = "model",
             return_predictions: bool = False, return_logits: bool = False,
             temperature: float = 1.0) -> dict[str, Any]:
    """Evaluate ``model`` (a module, or any callable batch -> logits) on ``split``.

    Returns the metrics of ``EvalResult`` as a dict (plus ``predictions``, a tensor of the top-1
    class per image, with ``return_predictions``; ``logits``, N x classes on the CPU, with ``return_logits``).
    ``temperature`` divides the logits before the loss and
    the calibration metrics (temperature scaling; top-1 and top-5 do not change).
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch size must be positive, got {batch_size}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise InvalidArgumentError(f"temperature must be a finite number > 0, got {temperature}")
    device = torch.device(device)
    num_classes = split.dataset.num_classes
    if isinstance(model, nn.Module):
        model = model.to(device).eval()
    _check_shapes(model, split, num_classes, device, name)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    loss_sum, top5_correct, n = 0.0, 0, 0
    k = min(5, num_classes)
    predictions: list[torch.Tensor] = []
    kept: list[torch.Tensor] = []
    calibration = CalibrationStats()
    total = (len(split) + batch_size - 1) // batch_size
    t0 = time.perf_counter()
    for index, (x, y) in enumerate(_progress(batches(split, batch_size, mean=mean, std=std, device=device), total,
                                             progress, name)):
        logits = _scores(model, x, name, index) / temperature
        y = y.to(device)
        calibration.add(logits, y)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        top5_correct += (logits.topk(k, 1).indices == y[:, None]).any(1).sum().item()
        pred = logits.argmax(1)
        if return_predictions:
            predictions.append(pred.cpu())
        if return_logits:
            kept.append(logits.cpu())
        confusion += torch.bincount((y * num_classes + pred).cpu(), minlength=num_classes**2).view(
            num_classes, num_classes)
        n += y.numel()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    correct = int(confusion.diag().sum())
    per_class_n = confusion.sum(1)
    per_class = [
        {"class": c, "images": int(per_class_n[i]),
         "accuracy": 100.0 * float(confusion[i, i]) / max(1, int(per_class_n[i]))}
        for i, c in enumerate(split.dataset.classes)
    ]
    out = dict(
        num_images=n,
        top1=100.0 * correct / max(1, n),
        top5=100.0 * top5_correct / max(1, n),
        loss=loss_sum / max(1, n),
        correct=correct,
        per_class=per_class,
        confusion=confusion.tolist(),
        images_per_s=n / wall if wall > 0 else float("inf"),
        wall_s=wall,
        temperature=temperature,
        **calibration.metrics(),
    )
    if return_predictions:
        out["predictions"] = torch.cat(predictions) if predictions else torch.zeros(0, dtype=torch.int64)
    if return_logits:
        out["logits"] = torch.cat(kept) if kept else torch.zeros(0, num_classes)
    return out
