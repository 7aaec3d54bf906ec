"""How long a recipe will take on this machine, measured before anything is written: ``zoo train --estimate``.

``estimate`` builds the recipe's model, optimizer, schedule, EMA and Lookahead as ``zoo.train.loop.train`` does
(in the precision the run would use here: fp32 where bf16 would be emulated), times real training steps
(``zoo.train.epoch.train_epoch`` on the first training images, augmentation included) after a warm-up step,
until about ``seconds`` have been measured, and one test pass on part of the test split; the epoch time is the
epoch's images at the measured pace, the total adds every evaluation the recipe makes (the mid-run ones and
the final one). A recipe with progressive resizing (``low_res``) is timed at both sides, its low-resolution
epochs at their own pace; a distillation teacher's one pass over the stored views is timed on those images
and scaled to the split. Nothing is written: no run directory, no checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..utils.machine import hardware_description, resolve_device
from .distributed import Dist
from .epoch import test_epoch, train_epoch
from .loop import _load_data, _precision_on, _setup
from .recipes import Recipe

__all__ = ["Estimate", "estimate", "estimate_recipes"]

_logger = logging.getLogger(__name__)
_EVAL_IMAGES = 2_000  # of the test split, timed once and scaled to the whole split


@dataclass
class Estimate:
    """A recipe's expected training time on this machine, from ``steps`` timed steps."""

    recipe: str
    model: str
    hardware: str  # the machine, thread count and precision (``zoo.utils.machine.hardware_description``)
    precision: str  # what the run would train in here
    epochs: int
    batch_size: int
    steps_per_epoch: int
    steps: int  # timed
    train_images_per_s: float
    epoch_s: float  # at the full side
    low_res_epochs: int  # the first epochs, trained at the recipe's low_res (0: none)
    low_res_epoch_s: float  # one of them
    evaluations: int  # passes over the test split: the mid-run ones and the final one
    eval_s: float  # one pass
    total_s: float
    measured_s: float  # what the estimate itself took, data loading included
    teacher_s: float = 0.0  # a distillation teacher's pass over the stored views, once per run (in total_s)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate(recipe: Recipe, *, data_dir: str | None = None, device: str = "cpu", threads: int | None = None,
             verify: bool = True, seconds: float = 3.0, max_steps: int = 50) -> Estimate:
    """Time ``recipe`` on this machine (see the module docstring); ``seconds``: how long to time training steps
    (at least 2 steps, at most ``max_steps``)."""
    started = time.perf_counter()
    if threads is not None:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    recipe = _precision_on(recipe, dev)
    train_data, test_data = _load_data(recipe, data_dir, verify)
    steps_per_epoch = len(train_data) // recipe.batch_size
    chunk = max(1, min(4, steps_per_epoch))  # steps per timed call
    # the schedule set up for enough steps that none of the timed ones runs past its end (only the pace matters)
    timing = dataclasses.replace(recipe, epochs=max(recipe.epochs, 2 * (max_steps // chunk) + 5))
    run = _setup(timing, None, dev, Dist(dev), train_data.head(recipe.batch_size * chunk), test_data, False)
    teacher_s = run.teacher.seconds * len(train_data) / len(run.train_data) if run.teacher is not None else 0.0
    low_res_epochs = min(recipe.low_res_epochs, recipe.epochs) if recipe.low_res else 0
    steps, spent = _time_steps(run, chunk, seconds, max_steps, epoch=low_res_epochs)
    epoch_s = spent / steps * steps_per_epoch
    low_res_epoch_s = 0.0
    if low_res_epochs:
        low_steps, low_spent = _time_steps(run, chunk, seconds, max_steps, epoch=0, first_step=steps + chunk)
        steps, low_res_epoch_s = steps + low_steps, low_spent / low_steps * steps_per_epoch
    eval_s = _time_test_pass(run)
    evaluations = sum(1 for e in range(1, recipe.epochs) if e % recipe.eval_every == 0) + 1
    train_s = low_res_epochs * low_res_epoch_s + (recipe.epochs - low_res_epochs) * epoch_s
    return Estimate(recipe.name, recipe.model, hardware_description(dev, precision=recipe.precision),
                    recipe.precision, recipe.epochs,
                    recipe.batch_size, steps_per_epoch, steps, recipe.batch_size * steps_per_epoch / epoch_s,
                    epoch_s, low_res_epochs, low_res_epoch_s, evaluations, eval_s,
                    teacher_s + train_s + evaluations * eval_s, time.perf_counter() - started, teacher_s)


def _time_steps(run: Any, chunk: int, seconds: float, max_steps: int, *, epoch: int,
                first_step: int = 0) -> tuple[int, float]:
    """(steps, seconds) of timed training steps as in epoch ``epoch`` (which decides the side under progressive
    resizing), after one untimed call (the first steps pay for allocation and kernel selection)."""
    def call(step: int) -> float:
        t0 = time.perf_counter()
        train_epoch(run.model, run.opt, run.scheduler, run.train_data, run.recipe, epoch, step, chunk,
                    run.device, run.ddp, False, run.ema, run.lookahead, run.frozen_norms, run.teacher)
        return time.perf_counter() - t0

    call(first_step)
    steps, spent = 0, 0.0
    while steps < 2 or (spent < seconds and steps + chunk <= max(max_steps, 2)):
        spent += call(first_step + chunk + steps)
        steps += chunk
    return steps, spent


def _time_test_pass(run: Any) -> float:
    """Seconds of one pass over the test split, from a timed pass over its first ``_EVAL_IMAGES`` images."""
    part = run.test_data.head(_EVAL_IMAGES)
    model = run.model if run.ema is None else run.ema.module
    took = test_epoch(model, run.recipe, part, run.device)["test_s"]
    return took * len(run.test_data) / max(1, len(part))


def estimate_recipes(recipes: list[Recipe], *, data_dir: str | None = None, device: str = "cpu",
                     threads: int | None = None, seconds: float = 1.0, progress: bool = False) -> Iterator[Estimate]:
    """``estimate`` for each recipe that names its model (``zoo recipes --estimate``), each timed for about
    ``seconds``; the others are skipped, with a log line."""
    todo = [r for r in recipes if r.model]
    for r in recipes:
        if not r.model:
            _logger.info("recipe %s names no model (it takes --model): not timed", r.name)
    if progress:
        from tqdm.auto import tqdm

        todo = tqdm(todo, desc="timing recipes", unit="recipe")
    for r in todo:
        yield estimate(r, data_dir=data_dir, device=device, threads=threads, seconds=seconds, max_steps=12)
