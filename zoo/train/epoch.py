"""One epoch of training, on tensors: the recipe's normalisation, batched augmentation (flip or alternating
flip, pad-and-crop, cutout, progressive resizing), bf16 autocast and channels_last, the optimizer, EMA and
Lookahead steps, and the epoch's log row; the test scores logged between epochs; and the check, before
training, that the model takes the progressive-resizing recipe's small images.

The data order, the augmentation and the dropout RNG of every epoch derive from the seed and the epoch number
alone, so a resumed run continues exactly. Under data parallel training each process takes an equal share of
every global batch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import augment_flip_crop, cutout
from ..data.datasets import Split, batches
from ..errors import InvalidArgumentError, ZooError, summarize
from ..scoring import evaluate
from ..specs import DatasetSpec
from .distill import Teacher, distill_loss
from .distributed import Dist, unwrap
from .optim import Lookahead, OptimizerChain
from .recipes import Recipe

if TYPE_CHECKING:
    from timm.scheduler.scheduler import Scheduler

__all__ = ["train_epoch", "test_epoch", "alternate_flip", "normalization", "check_low_res"]


def normalization(recipe: Recipe, split: Split) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std the recipe's model sees ``split`` through: its dataset's (``standardize``), else 0 and 1
    (pixels in [0, 1])."""
    mean, std = split.dataset.mean, split.dataset.std
    if recipe.standardize:
        return mean, std
    return tuple(0.0 for _ in mean), tuple(1.0 for _ in std)


def check_low_res(model: nn.Module, recipe: Recipe, spec: DatasetSpec, device: torch.device) -> None:
    """A progressive-resizing recipe whose model cannot take its small images fails before training, in one line."""
    side = spec.input_size[-1] if len(spec.input_size) == 3 else 0
    if recipe.low_res >= side:  # (the recipe refuses a negative low_res; 0 never gets here)
        raise InvalidArgumentError(f"recipe {recipe.name!r}: low_res {recipe.low_res} must be below the side of "
                                   f"{spec.name}'s images ({side} pixels)" if side else
                                   f"recipe {recipe.name!r}: low_res needs images; {spec.name} has none")
    training = model.training
    model.eval()  # no BatchNorm statistics move
    try:
        with torch.no_grad():
            model(torch.zeros(2, spec.input_size[0], recipe.low_res, recipe.low_res, device=device))
    except RuntimeError as exc:
        raise InvalidArgumentError(f"recipe {recipe.name!r}: {recipe.model} cannot take {recipe.low_res}x"
                                   f"{recipe.low_res} images (low_res): {summarize(exc)}") from None
    finally:
        model.train(training)


def alternate_flip(images: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's images under alternating flips (Jordan 2024, section 3.6).

    A seeded random half of the images is flipped in even epochs and the other half in odd ones,
    so every two consecutive epochs show each image both ways (random flips repeat some views).
    """
    gen = torch.Generator().manual_seed(seed * 104_729 + 17)  # the same halves in every epoch
    flipped = torch.rand(len(images), generator=gen) < 0.5
    if epoch % 2:
        flipped = ~flipped
    return torch.where(flipped.to(images.device).view(-1, 1, 1, 1), images.flip(3), images)


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer | OptimizerChain, scheduler: Scheduler, data: Split,
                recipe: Recipe, epoch: int, step: int, steps_per_epoch: int, device: torch.device, ddp: Dist,
                progress: bool, ema: nn.Module | None = None, lookahead: Lookahead | None = None,
                frozen_norms: list[nn.Module] | None = None, teacher: Teacher | None = None
                ) -> tuple[dict[str, float], int]:
    """Train ``model`` for epoch ``epoch`` (from 0), from optimizer step ``step``; returns the epoch's log row
    and the step reached. With a ``teacher`` the loss is ``zoo.train.distill``'s."""
    gen = torch.Generator().manual_seed(recipe.seed * 100_003 + epoch)  # data order + augmentation
    torch.manual_seed(recipe.seed * 7_919 + epoch * 31 + ddp.rank)  # dropout
    model.train()
    for norm in frozen_norms or ():  # frozen norm layers keep their statistics
        norm.eval()
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if recipe.precision == "bf16" else nullcontext())
    mean, std = normalization(recipe, data)
    share = recipe.batch_size // ddp.world
    flip = recipe.flip
    if recipe.alternate_flip and data.images.dim() == 4:
        data = dataclasses.replace(data, images=alternate_flip(data.images, recipe.seed, epoch))
        flip = False  # done above, for the whole epoch
    labels = data.labels.to(device)
    if teacher is not None:  # the batches carry each image's index, for the teacher's stored views
        data = dataclasses.replace(data, labels=torch.arange(len(data)))
    it = batches(data, recipe.batch_size, mean=mean, std=std, device=device, shuffle=True, generator=gen,
                 drop_last=True)
    if progress and ddp.main:
        from tqdm.auto import tqdm

        it = tqdm(it, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{recipe.epochs}", unit="batch", leave=False)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    t0 = time.perf_counter()
    for x, y in it:
        if x.dim() == 4 and (flip or recipe.crop_pad):
            x = augment_flip_crop(x, pad=recipe.crop_pad, flip=flip, generator=gen)
        if x.dim() == 4 and recipe.cutout:
            x = cutout(x, recipe.cutout, generator=gen)
        if x.dim() == 4 and epoch < recipe.low_res_epochs:  # progressive resizing
            x = F.interpolate(x, size=(recipe.low_res, recipe.low_res), mode="bilinear", antialias=True)
        if ddp.enabled:  # every process draws the same batch and keeps its share
            x, y = x[ddp.rank * share:(ddp.rank + 1) * share], y[ddp.rank * share:(ddp.rank + 1) * share]
        if recipe.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        scheduler.step_update(step)
        lr = opt.param_groups[0]["lr"]  # the first group's lr_scale is 1: the schedule's own value
        index, y = (y, labels[y]) if teacher is not None else (None, y)
        with autocast:
            logits = model(x)
        if teacher is None:
            loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
        else:
            loss = distill_loss(logits.float(), y, teacher.targets(x, index, mean, std, recipe.precision), recipe)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if ema is not None:
            ema.update_parameters(unwrap(model))
        if lookahead is not None:
            lookahead.step(unwrap(model), step)
        loss_sum += loss.detach().double() * y.numel()
        correct += (logits.detach().argmax(1) == y).sum()
        n += y.numel()
        if not math.isfinite(loss.item()):
            raise ZooError(f"training diverged at epoch {epoch + 1}, step {step} (loss {loss.item()}); "
                           f"lower the learning rate (--set lr=...)")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    stats = torch.stack([loss_sum, correct.double(), torch.tensor(float(n), dtype=torch.float64, device=device)])
    ddp.all_reduce(stats)
    row = {"train_loss": float(stats[0] / stats[2]), "train_top1": float(100 * stats[1] / stats[2]),
           "lr": lr, "epoch_s": seconds, "train_images_per_s": float(stats[2]) / seconds}
    if recipe.low_res:  # progressive resizing: the side this epoch trained at
        row["train_size"] = recipe.low_res if epoch < recipe.low_res_epochs else data.images.shape[-1]
    return row, step


def test_epoch(model: nn.Module, recipe: Recipe, test_data: Split, device: torch.device) -> dict[str, float]:
    """The test split's loss and top-1 after an epoch (the log row's ``test_*``): the run's progress, not its
    result, which is measured from the stored file."""
    tested = time.perf_counter()
    mean, std = normalization(recipe, test_data)
    m = evaluate(model, test_data, batch_size=1000, device=device, mean=mean, std=std)
    return {"test_loss": m["loss"], "test_top1": m["top1"], "test_s": time.perf_counter() - tested}
