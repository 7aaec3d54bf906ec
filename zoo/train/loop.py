"""The training loop: recipes in, a self-describing checkpoint out; ``train`` reads as its steps: arguments, run
directory, data, setup, resume, epochs, finish.

Data lives in memory as uint8 tensors, augmented on tensors (``zoo.train.epoch``). On a CPU without native bf16
a bf16 recipe trains in fp32. State is checkpointed atomically after every epoch (``state.pt``, read back with
``weights_only=True``: ``zoo.train.state``) and ``resume`` continues exactly: the data order and the dropout RNG
of every epoch derive from the seed and the epoch number alone. Under ``torchrun --nproc_per_node=N`` each
process takes an equal share of every global batch (``zoo.train.distributed``). The run directory's files, lock
and status are ``zoo.train.runs``'s; the final ``<arch>.<tag>-<sha8>.safetensors`` and ``result.json`` (the
metrics of that stored file on the full test split) join them at the end.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from ..builder import count_flops, count_params, create
from ..data.datasets import Split, batches, load_split
from ..data.folders import is_image_folder, load_image_folder
from ..errors import DatasetError, InvalidArgumentError, ZooError
from ..registry import get_entry
from ..scoring import evaluate
from ..specs import DatasetSpec, get_dataset_spec
from ..utils.fileio import atomic_write_text, check_name
from ..utils.machine import cpu_class, cpu_has_bf16, hardware_description, resolve_device
from ..weights import load_into, save_checkpoint, sha256_file
from .distill import Teacher, load_teacher
from .distributed import Dist
from .epoch import check_low_res, normalization, test_epoch, train_epoch
from .freeze import freeze, frozen_norm_layers, frozen_norm_names
from .optim import Lookahead, OptimizerChain, create_ema, create_optimizer, create_scheduler
from .recipes import Recipe
from .runs import (
    SAVE_DTYPES,
    claim_run_dir,
    format_duration,
    remove_stale_temporaries,
    run_hardware,
    run_options,
    write_log,
)
from .state import resume_state, save_state

if TYPE_CHECKING:
    from timm.scheduler.scheduler import Scheduler

__all__ = ["train", "TrainResult"]

_logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    out_dir: str
    checkpoint: str
    sha256: str
    recipe: dict[str, Any]
    metrics: dict[str, Any]  # of the stored file on the full test split
    history: list[dict[str, Any]]
    train_time_s: float
    hardware: str
    num_params: int
    gflops: float
    world_size: int
    finished: bool = True  # False when --max-minutes stopped the run early (resume it)
    remaining_s: float = 0.0  # stopped early: the epochs left at this call's pace (evaluation included)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Run:
    """One call's live objects, from setup to finish."""

    recipe: Recipe
    out: Path
    device: torch.device
    ddp: Dist
    train_data: Split
    test_data: Split
    model: nn.Module  # not wrapped for data parallel: what is saved, evaluated and stored
    opt: torch.optim.Optimizer | OptimizerChain
    scheduler: Scheduler
    steps_per_epoch: int
    ema: Any = None  # the weights' moving average (recipe.ema_decay)
    lookahead: Lookahead | None = None
    teacher: Teacher | None = None  # knowledge distillation (recipe.teacher)
    layers: dict[str, list[str]] | None = None  # freeze's trained and frozen layer names
    frozen_norms: list[nn.Module] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # one log row per epoch done
    start_epoch: int = 0  # the epochs done before this call

    @property
    def spec(self) -> DatasetSpec:
        return self.train_data.dataset

    @property
    def state_path(self) -> Path:
        return self.out / "state.pt"

    @property
    def log_path(self) -> Path:
        return self.out / "log.jsonl"

    @property
    def title(self) -> str:  # of curves.png
        return f"{self.recipe.model} on {self.spec.name} ({self.recipe.name})"


def train(recipe: Recipe, *, out_dir: str | os.PathLike[str], data_dir: str | None = None, resume: bool = False,
          device: str = "cpu", tag: str | None = None, progress: bool = True, save_dtype: str | None = None,
          verify: bool = True, max_minutes: float | None = None, threads: int | None = None) -> TrainResult:
    """Train ``recipe.model`` on ``recipe.dataset`` with ``recipe``; see the module docstring for the outputs.

    Args:
        recipe: the resolved recipe (``zoo.train.recipes.resolve_recipe``); saved with the run and the checkpoint.
        out_dir: the run directory, anywhere (``zoo.train.runs`` describes its files); locked while training.
        data_dir: dataset root (default: ``$ZOO_DATA``, else the cache).
        resume: continue the run in ``out_dir`` from its last saved epoch, exactly.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        tag: names the checkpoint ``<model>.<tag>-<sha8>.safetensors`` (default: the dataset).
        progress: a progress bar per epoch on stderr.
        save_dtype: ``"float16"`` stores the final weights in half precision (metrics from the stored file);
            a resume keeps the run's tag and storage dtype (``run.json``) unless given.
        verify: check the dataset files first; ``False`` skips it, with a warning (the CIFAR unpickler stays).
        max_minutes: a time budget for this call: no epoch starts that would end past it; the run stops with its
            state saved (``remaining_s`` its estimate) and ``resume=True`` continues it.
        threads: torch's CPU thread count (for the whole process).

    Returns:
        A ``TrainResult``: the checkpoint, its sha256 and metrics from the stored file, the history, the wall
        time and the machine; ``finished`` is False when ``max_minutes`` stopped the run.

    Raises:
        InvalidArgumentError: a bad option, or a run directory in use, not a run's, or holding a run unresumed.
        DatasetError: the dataset is absent or fails verification.
    """
    tag = _check_arguments(recipe, tag, save_dtype, max_minutes, threads)
    if threads is not None:
        torch.set_num_threads(threads)
    started = time.monotonic()
    dev = resolve_device(device)
    recipe = _precision_on(recipe, dev)
    ddp = Dist(dev)
    out = Path(out_dir)
    lock = None
    try:
        if recipe.batch_size % ddp.world:
            raise InvalidArgumentError(f"batch_size {recipe.batch_size} is not divisible by {ddp.world} processes")
        lock = claim_run_dir(out, main=ddp.main)
        if lock is not None:
            remove_stale_temporaries(out)
        tag, save_dtype = run_options(out, resume=resume, tag=tag, save_dtype=save_dtype, main=ddp.main)
        train_data, test_data = _load_data(recipe, data_dir, verify)
        tag = check_name(tag or train_data.dataset.name, "tag (the dataset's name by default; pass --tag)")
        resuming = resume and (out / "state.pt").exists()
        run = _setup(recipe, out, dev, ddp, train_data, test_data, resuming)
        if resuming:
            _resume(run)
        elif resume:
            _logger.warning("--resume: no state.pt in %s, starting from scratch", out)
        if ddp.main:
            _write_run_files(run)
        # on every log line: a resumed run may change machine (and precision, on a CPU without native bf16)
        hardware = hardware_description(dev, ddp.world, recipe.precision)
        remaining_s = _train_epochs(run, hardware, progress, started, max_minutes)
        return _finish_run(run, run_hardware(run.history, hardware), tag, save_dtype, remaining_s)
    finally:
        if lock is not None:
            lock.close()
        ddp.close()


def _check_arguments(recipe: Recipe, tag: str | None, save_dtype: str | None, max_minutes: float | None,
                     threads: int | None) -> str | None:
    """Refuse bad arguments now, not after hours of training; returns the tag checked as a file name part."""
    if not recipe.model:
        raise InvalidArgumentError(f"recipe {recipe.name!r} names no model: pass --model")
    tag = check_name(tag, "tag") if tag is not None else None  # it becomes part of a file name
    if save_dtype not in SAVE_DTYPES:
        raise InvalidArgumentError(f"save_dtype must be float32, float16 or None, got {save_dtype!r}")
    if max_minutes is not None and not max_minutes > 0:
        raise InvalidArgumentError(f"max_minutes must be > 0, got {max_minutes}")
    if threads is not None and not 1 <= threads <= 1024:
        raise InvalidArgumentError(f"threads must be in 1..1024, got {threads}")
    return tag


def _precision_on(recipe: Recipe, dev: torch.device) -> Recipe:
    """``recipe``, in fp32 where bf16 would be emulated (a CPU without native bf16); the run's recipe records it."""
    if recipe.precision == "bf16" and dev.type == "cpu" and not cpu_has_bf16():
        _logger.warning("this CPU (%s) has no native bf16, where bf16 autocast runs many times slower than fp32: "
                        "training in fp32 (the run's recipe records it)", cpu_class())
        return dataclasses.replace(recipe, precision="fp32")
    return recipe


def _load_data(recipe: Recipe, data_dir: str | None, verify: bool) -> tuple[Split, Split]:
    """The train and test splits (the first ``train_limit`` training images when the recipe says so)."""
    if is_image_folder(recipe.dataset):
        train_data, test_data = _load_image_folder(recipe)
    else:
        train_data = load_split(recipe.dataset, "train", data_dir=data_dir, verify=verify)
        test_data = load_split(recipe.dataset, "test", data_dir=data_dir, verify=verify)
    if recipe.train_limit:
        train_data = train_data.head(recipe.train_limit)
    return train_data, test_data


def _load_image_folder(recipe: Recipe) -> tuple[Split, Split]:
    """An image folder's splits (``root/train``, ``root/test``), read at the model's input size with its
    dataset's statistics."""
    base = get_dataset_spec(get_entry(recipe.model).dataset)
    train = load_image_folder(recipe.dataset, "train", input_size=base.input_size, mean=base.mean, std=base.std)
    test = load_image_folder(recipe.dataset, "test", input_size=base.input_size, mean=base.mean, std=base.std,
                             classes=train.dataset.classes)
    if test.dataset.classes != train.dataset.classes:
        raise DatasetError(f"{recipe.dataset}: the test folders ({', '.join(test.dataset.classes)}) are not the "
                           f"training classes ({', '.join(train.dataset.classes)})")
    _logger.info("image folder %s: %d training and %d test images, %d classes", recipe.dataset, len(train),
                 len(test), train.dataset.num_classes)
    return train, test


def _setup(recipe: Recipe, out: Path | None, dev: torch.device, ddp: Dist, train_data: Split, test_data: Split,
           resuming: bool) -> _Run:
    """The run's model, optimizer, schedule, EMA, Lookahead and teacher (``out``: the run directory, where a
    teacher's stored views are kept; None keeps nothing)."""
    model, layers = _build_model(recipe, train_data, dev, resuming)
    frozen_norms = frozen_norm_layers(model, layers["frozen"]) if layers else []
    opt = create_optimizer(recipe, model)
    ema = create_ema(model, recipe)
    steps_per_epoch = len(train_data) // recipe.batch_size
    if steps_per_epoch < 1:
        raise InvalidArgumentError(f"batch_size {recipe.batch_size} exceeds the {len(train_data)} training images")
    scheduler = create_scheduler(recipe, opt, steps_per_epoch)
    lookahead = (Lookahead(model, recipe.lookahead_steps, recipe.lookahead_decay, recipe.epochs * steps_per_epoch)
                 if recipe.lookahead_steps else None)
    teacher = load_teacher(recipe, train_data, dev, out if ddp.main else None)
    return _Run(recipe, out or Path("."), dev, ddp, train_data, test_data, model, opt, scheduler, steps_per_epoch,
                ema=ema, lookahead=lookahead, teacher=teacher, layers=layers, frozen_norms=frozen_norms)


def _build_model(recipe: Recipe, train_data: Split, dev: torch.device,
                 resuming: bool) -> tuple[nn.Module, dict[str, list[str]] | None]:
    """The model from the seed (or ``init_from``, or the data) on ``dev``, frozen as the recipe says (the
    trained and frozen layers, or None); a model that cannot take the recipe's small images fails here."""
    torch.manual_seed(recipe.seed)
    model = create(recipe.model, num_classes=train_data.dataset.num_classes)
    if recipe.init_from and not resuming:  # fine-tuning: the checkpoint's tensors, a fresh classifier if needed
        load_into(model, recipe.model, recipe.init_from, new_head=getattr(model, "classifier_path", None))
    model = model.to(dev)
    if not recipe.init_from:  # a data-dependent start (FastNet's whitened stem) only from scratch
        _data_init(model, train_data, recipe, dev)
    layers = freeze(model, recipe.freeze) if recipe.freeze else None
    if layers:
        _logger.info("freeze %s: training %d layers (%s), %d frozen", recipe.freeze, len(layers["trained"]),
                     ", ".join(layers["trained"]), len(layers["frozen"]))
    if recipe.low_res:
        check_low_res(model, recipe, train_data.dataset, dev)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, layers


def _data_init(model: nn.Module, data: Split, recipe: Recipe, device: torch.device) -> None:
    """Models with a data-dependent start (``init_from_data``, e.g. FastNet's whitened stem) get 5,000 images."""
    init = getattr(model, "init_from_data", None)
    if init is None or data.images.dim() != 4:
        return
    mean, std = normalization(recipe, data)
    x, _ = next(batches(data, min(5000, len(data)), mean=mean, std=std, device=device))
    init(x)
    _logger.info("%s initialised from the first %d training images", recipe.model, len(x))


def _resume(run: _Run) -> None:
    """The saved state put back into the run: its model, optimizer, EMA, Lookahead, history and epoch."""
    run.history, run.start_epoch = resume_state(run.state_path, run.device, run.recipe, model=run.model,
                                                opt=run.opt, ema=run.ema, lookahead=run.lookahead)
    _logger.info("resuming %s at epoch %d", run.out, run.start_epoch + 1)


def _write_run_files(run: _Run) -> None:
    """``recipe.json``, ``layers.json`` (what was trained, beside the recipe that said so) and the log so far."""
    atomic_write_text(run.out / "recipe.json", json.dumps(run.recipe.to_dict(), indent=2) + "\n")
    if run.layers:
        norms = frozen_norm_names(run.model, run.layers["frozen"])
        atomic_write_text(run.out / "layers.json", json.dumps({**run.layers, "frozen_norms_in_eval_mode": norms},
                                                              indent=2) + "\n")
    write_log(run.log_path, run.history)


def _train_epochs(run: _Run, hardware: str, progress: bool, started: float, max_minutes: float | None) -> float | None:
    """The epochs left, each saved as it ends; returns None when all are done, else the time the rest would take
    at this call's pace (the next epoch would end past ``max_minutes``)."""
    recipe, model, ema = run.recipe, run.model, run.ema
    net = run.ddp.wrap(model)
    step = run.start_epoch * run.steps_per_epoch
    for epoch in range(run.start_epoch, recipe.epochs):
        if max_minutes is not None and epoch > run.start_epoch:
            spent = time.monotonic() - started
            per_epoch = spent / (epoch - run.start_epoch)
            if spent + per_epoch > max_minutes * 60:
                remaining_s = per_epoch * (recipe.epochs - epoch)
                _logger.warning("stopping after epoch %d of %d: the next would end past --max-minutes %g; "
                                "continue with --resume (about %s left at this pace)",
                                epoch, recipe.epochs, max_minutes, format_duration(remaining_s))
                return remaining_s
        row, step = train_epoch(net, run.opt, run.scheduler, run.train_data, recipe, epoch, step,
                                run.steps_per_epoch, run.device, run.ddp, progress, ema, run.lookahead,
                                run.frozen_norms, run.teacher)
        row = {"epoch": epoch + 1, **row}
        if run.teacher is not None and run.teacher.seconds and epoch == run.start_epoch:
            row.update(teacher_s=run.teacher.seconds, epoch_s=row["epoch_s"] + run.teacher.seconds)  # counted once
        # the last epoch is scored once, from the stored file (_finish)
        if (epoch + 1) % recipe.eval_every == 0 and epoch + 1 < recipe.epochs:
            row.update(test_epoch(model if ema is None else ema.module, recipe, run.test_data, run.device))
        run.history.append({**row, "hardware": hardware})
        _logger.info("epoch %d/%d %s", epoch + 1, recipe.epochs,
                     " ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
        if run.ddp.main:  # the state first: a log line exists only for an epoch whose state is saved
            save_state(run.state_path, model=model, opt=run.opt, ema=ema, lookahead=run.lookahead, epoch=epoch + 1,
                       history=run.history, recipe=recipe)
            write_log(run.log_path, run.history)
            _plot_curves(run.history, run.out / "curves.png", run.title)
        run.ddp.barrier()
    return None


def _finish_run(run: _Run, hardware: str, tag: str, save_dtype: str | None, remaining_s: float | None) -> TrainResult:
    """A finished run's stored file and its scores (the main process); a stopped run's result says what is left."""
    train_time = sum(r["epoch_s"] for r in run.history)
    result = None
    if run.ddp.main and remaining_s is None:
        final = run.model if run.ema is None else run.ema.module  # with an EMA, the average is what is stored
        if run.lookahead is not None:
            final = run.lookahead.store_into(run.model)
        result = _finish(final, run, tag, train_time, hardware, save_dtype)
        write_log(run.log_path, run.history)  # the last line now holds the stored file's test scores
        _plot_curves(run.history, run.out / "curves.png", run.title)
    run.ddp.barrier()
    if result is not None:
        return result
    return TrainResult(str(run.out), "", "", run.recipe.to_dict(), {}, run.history, train_time, hardware, 0, 0.0,
                       run.ddp.world, remaining_s is None, remaining_s or 0.0)


def _finish(model: nn.Module, run: _Run, tag: str, train_time: float, hardware: str,
            save_dtype: str | None) -> TrainResult:
    """Save the final weights, then measure the stored file on the full test split; its scores are also the
    last epoch's test scores in ``history``."""
    recipe, out, test_data, history = run.recipe, run.out, run.test_data, run.history
    model = model.to("cpu", memory_format=torch.contiguous_format).eval()
    info = {"recipe": recipe.to_dict(), "train_time_s": round(train_time, 1), "hardware": hardware,
            "epochs": recipe.epochs}
    tmp = out / f".{recipe.model}.{tag}.safetensors"
    sha = save_checkpoint(model, tmp, arch=recipe.model, dataset=run.spec, extra_metadata=info, dtype=save_dtype)
    final = out / f"{recipe.model}.{tag}-{sha[:8]}.safetensors"
    os.replace(tmp, final)
    assert sha256_file(final) == sha
    fresh = create(recipe.model, num_classes=test_data.dataset.num_classes)
    load_into(fresh, recipe.model, str(final))
    mean, std = normalization(recipe, test_data)
    tested = time.perf_counter()
    metrics = evaluate(fresh, test_data, batch_size=500, device=run.device, mean=mean, std=std)
    if history:
        history[-1].update(test_loss=metrics["loss"], test_top1=metrics["top1"], test_s=time.perf_counter() - tested)
    result = TrainResult(
        out_dir=str(out), checkpoint=str(final), sha256=sha, recipe=recipe.to_dict(),
        metrics={k: metrics[k] for k in ("top1", "top5", "loss", "num_images", "correct", "per_class")},
        history=history, train_time_s=train_time, hardware=hardware, num_params=count_params(fresh),
        gflops=count_flops(fresh, test_data.dataset.input_size) / 1e9, world_size=run.ddp.world,
    )
    atomic_write_text(out / "result.json", json.dumps(result.to_dict(), indent=2) + "\n")
    _logger.info("%s: top-1 %.2f%% from the stored file %s", recipe.model, metrics["top1"], final)
    return result


def _plot_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    try:
        from ..utils.plots import plot_curves
    except ZooError:
        return
    plot_curves(history, path, title=title)
