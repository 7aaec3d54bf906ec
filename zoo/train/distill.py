"""Knowledge distillation from a released checkpoint (Hinton et al. 2015): the recipe's ``teacher``.

With ``w = distill_weight`` and ``T = distill_temperature`` a batch's loss is

    (1 - w) * CE(student, labels) + w * T^2 * KL(softmax(teacher / T) || softmax(student / T))

(the cross-entropy with the recipe's label smoothing). Where the teacher sees the images is
``teacher_views``:

- ``"stored"``: once, before the first epoch, every stored training image, and its mirror when the recipe
  flips. The soft target of each augmented view of an image is the mean of those logits, so the whole run
  costs one or two teacher passes per image. The logits are kept in the run directory
  (``teacher.safetensors``, with the teacher's sha256), so a resumed run reuses them.
- ``"online"``: each augmented batch as the student sees it: one teacher pass per image per epoch.

The teacher is a registered checkpoint (``zoo list --pretrained``), verified by its sha256, in eval mode and
the recipe's precision, with its own normalisation.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import SafetensorError

from ..builder import create
from ..data.splits import Split, batches
from ..errors import InvalidArgumentError, ZooError
from ..metadata import Weights
from ..registry import get_weights
from ..utils.fileio import atomic_write_bytes, regular_file
from .recipes import Recipe

__all__ = ["Teacher", "load_teacher", "distill_loss", "TEACHER_FILE"]

_logger = logging.getLogger(__name__)

TEACHER_FILE = "teacher.safetensors"  # in the run directory: the stored views' logits
_BATCH = 500  # images per teacher pass


@dataclass
class Teacher:
    """The teacher of a run: its weights, and either its model (online) or its logits per stored image."""

    weights: Weights
    views: str  # "stored" or "online"
    model: nn.Module | None = None
    logits: torch.Tensor | None = None  # stored: N x classes, the mean over each image and its mirror
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    seconds: float = 0.0  # what preparing it took (the stored views' pass, when not read back)

    def targets(self, x: torch.Tensor, index: torch.Tensor, mean: tuple[float, ...],
                std: tuple[float, ...], precision: str) -> torch.Tensor:
        """The teacher's logits for a batch: ``x`` as the student sees it (normalised with ``mean``/``std``),
        ``index`` its images' positions in the training split."""
        if self.logits is not None:
            return self.logits[index.to(self.logits.device)].to(x.device)
        def view(v: tuple[float, ...]) -> torch.Tensor:
            return torch.tensor(v, device=x.device).view(1, -1, 1, 1)

        x = (x * view(std) + view(mean) - view(self.mean)) / view(self.std)  # the teacher's normalisation
        return _forward(self.model, x, precision)


def _forward(model: nn.Module, x: torch.Tensor, precision: str) -> torch.Tensor:
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with torch.inference_mode(), autocast:
        return model(x).float()


def _teacher_weights(recipe: Recipe, data: Split) -> Weights:
    """The recipe's teacher, checked against the data it is to teach on."""
    try:
        weights = get_weights(recipe.teacher)
    except ZooError as exc:  # an unknown name: the registry's message says what exists
        raise InvalidArgumentError(f"recipe {recipe.name!r}: teacher {recipe.teacher!r}: {exc}") from None
    if weights.num_classes != data.dataset.num_classes or weights.input_size != data.dataset.input_size:
        raise InvalidArgumentError(
            f"recipe {recipe.name!r}: teacher {weights.name} predicts {weights.num_classes} classes of "
            f"{'x'.join(map(str, weights.input_size))} images; the training data has {data.dataset.num_classes} "
            f"of {'x'.join(map(str, data.dataset.input_size))}")
    return weights


def load_teacher(recipe: Recipe, data: Split, device: torch.device, cache_dir: Path | None) -> Teacher | None:
    """The recipe's teacher ready to teach on ``data`` (None without one); stored views are read back from
    ``cache_dir`` when it holds this teacher's logits for these images, else computed (and written there)."""
    if not recipe.teacher:
        return None
    weights = _teacher_weights(recipe, data)
    model = create(weights.arch, weights=weights.name).to(device).eval()
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    teacher = Teacher(weights, recipe.teacher_views, model, mean=tuple(weights.mean), std=tuple(weights.std))
    if recipe.teacher_views == "online":
        return teacher
    started = time.perf_counter()
    cache = cache_dir / TEACHER_FILE if cache_dir is not None else None
    logits = _read_logits(cache, weights, len(data)) if cache is not None else None
    if logits is None:
        logits = _stored_view_logits(teacher, data, device, recipe)
        if cache is not None:
            meta = {"teacher": weights.name, "sha256": weights.sha256, "images": str(len(data))}
            atomic_write_bytes(cache, safetensors.torch.save({"logits": logits}, metadata=meta))
        teacher.seconds = time.perf_counter() - started
    teacher.model, teacher.logits = None, logits
    return teacher


def _stored_view_logits(teacher: Teacher, data: Split, device: torch.device, recipe: Recipe) -> torch.Tensor:
    """The teacher's logits of every image of ``data``, averaged with its mirror's when the recipe flips (CPU,
    float32)."""
    mirror = recipe.flip and data.images.dim() == 4
    out = []
    for x, _ in batches(data, _BATCH, mean=teacher.mean, std=teacher.std, device=device,
                        channels_last=recipe.channels_last):
        if not mirror:
            out.append(_forward(teacher.model, x, recipe.precision).cpu())
            continue
        both = _forward(teacher.model, torch.cat([x, x.flip(3)]), recipe.precision)
        out.append(((both[:len(x)] + both[len(x):]) / 2).cpu())
    logits = torch.cat(out)
    _logger.info("teacher %s: logits of %d stored training images%s (its top-1 on them %.2f%%)",
                 teacher.weights.name, len(logits), " and their mirrors" if mirror else "",
                 100 * (logits.argmax(1) == data.labels).float().mean().item())
    return logits


def _read_logits(path: Path, weights: Weights, images: int) -> torch.Tensor | None:
    """The stored views' logits kept in ``path`` when they are this teacher's for ``images`` images, else None."""
    if not path.exists():
        return None
    try:
        regular_file(path, "teacher logits")
        with safetensors.safe_open(str(path), framework="pt") as f:
            meta, logits = f.metadata() or {}, f.get_tensor("logits")
    except (SafetensorError, OSError, InvalidArgumentError) as exc:
        _logger.warning("%s cannot be read (%s): computing the teacher's logits again", path, exc)
        return None
    expected = {"teacher": weights.name, "sha256": weights.sha256, "images": str(images)}
    if any(meta.get(k) != v for k, v in expected.items()) or tuple(logits.shape) != (images, weights.num_classes):
        _logger.warning("%s holds another teacher's logits or other images: computing them again", path)
        return None
    _logger.info("teacher %s: logits of the stored views read back from %s", weights.name, path)
    return logits.float()


def distill_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor,
                 recipe: Recipe) -> torch.Tensor:
    """The batch's distillation loss (see the module docstring); ``logits`` in float32."""
    w, t = recipe.distill_weight, recipe.distill_temperature
    hard = F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)
    soft = F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(teacher_logits.float() / t, dim=1),
                    reduction="batchmean", log_target=True)
    return (1 - w) * hard + w * t * t * soft
