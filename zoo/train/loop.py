"""The training loop: recipes in, a self-describing checkpoint out.

Data lives in memory as uint8 tensors; each batch is normalised and augmented on tensors (flip,
pad-and-crop, cutout). bf16 autocast and channels_last are recipe settings; on a CPU without native
bf16 (emulated, many times slower than fp32) a bf16 recipe trains in fp32. State is checkpointed
atomically after every epoch (``state.pt``, read back with ``weights_only=True``) and ``resume``
continues exactly: the data order and the dropout RNG of every epoch derive from the seed and the
epoch number alone. Under ``torchrun --nproc_per_node=N`` each process takes an equal share of every
global batch (DistributedDataParallel, gloo on CPU, nccl on CUDA).

The run directory's files, its lock and its status are ``zoo.train.runs``'s: the final
``<arch>.<tag>-<sha8>.safetensors`` and ``result.json`` with the metrics measured from that stored
file on the full test split join them at the end. A time budget (``max_minutes``) ends a run between
epochs with its state saved; ``resume`` continues it exactly, with the first call's tag and storage
dtype unless given again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ..builder import count_flops, count_params, create
from ..data.augment import augment_flip_crop, cutout
from ..data.datasets import Split, batches, load_split
from ..data.folders import is_image_folder, load_image_folder
from ..errors import DatasetError, InvalidArgumentError, ZooError, summarize
from ..registry import get_entry
from ..scoring import evaluate
from ..specs import DatasetSpec, get_dataset_spec
from ..utils.fileio import atomic_path, atomic_write_text, check_name, check_zip, json_field, regular_file
from ..utils.machine import cpu_class, cpu_has_bf16, hardware_description, resolve_device
from ..weights.load import load_into, save_checkpoint, sha256_file
from .optim import Lookahead, OptimizerChain, create_ema, create_optimizer, create_scheduler
from .recipes import Recipe
from .runs import (
    check_run_dir,
    format_duration,
    lock_run,
    read_run_options,
    remove_stale_temporaries,
    run_hardware,
    write_log,
    write_run_options,
)

if TYPE_CHECKING:
    from timm.scheduler.scheduler import Scheduler

__all__ = ["train", "TrainResult"]

_logger = logging.getLogger(__name__)
_SAVE_DTYPES = (None, "float32", "float16")  # storage of the final weights; None keeps the trained dtype


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


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """Save atomically; a failed save (full disk, read-only folder) keeps the previous state and says so."""
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as a RuntimeError
        raise ZooError(f"could not save the training state to {path} ({summarize(exc)}); the previous state is kept: "
                       f"free space or fix the folder, then continue with --resume") from None


class _Dist:
    """Process-group facts; a single process when not launched by torchrun."""

    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def freeze(model: nn.Module, spec: str) -> dict[str, list[str]]:
    """Freeze the layers ``spec`` names (``Recipe.freeze``); returns the trained and frozen layer names.

    Layers are the modules that own parameters, in definition order. ``all-but-last:N`` freezes every
    layer but the last N (report 003: "only back-propagated through the last five"); otherwise ``spec``
    is comma-separated fnmatch patterns, each matching a layer or a module above layers
    (``layer1`` freezes ``layer1.0.conv1`` ...). A frozen norm layer also keeps its running statistics
    (it stays in eval mode while the rest trains).
    """
    import fnmatch

    layers = [name for name, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None]
    if spec.startswith("all-but-last:"):
        count = spec.split(":", 1)[1]
        if not count.isdigit():
            raise InvalidArgumentError(f"freeze {spec!r}: expected all-but-last:N with N a whole number")
        frozen = layers[:max(0, len(layers) - int(count))]
    else:
        patterns = [p.strip() for p in spec.split(",") if p.strip()]

        def hit(name: str, pattern: str) -> bool:  # the layer itself, or a module above it
            return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, f"{pattern}.*")

        frozen = [name for name in layers if any(hit(name, p) for p in patterns)]
        unused = [p for p in patterns if not any(hit(name, p) for name in layers)]
        if unused:
            raise InvalidArgumentError(f"freeze: {', '.join(unused)} match no layer of the model; its layers are "
                                       f"{', '.join(layers[:8])}{', ...' if len(layers) > 8 else ''}")
    for name in frozen:
        for p in model.get_submodule(name).parameters(recurse=False):
            p.requires_grad_(False)
    trained = [name for name in layers if name not in frozen]
    if not trained:
        raise InvalidArgumentError(f"freeze {spec!r} leaves nothing to train")
    return {"trained": trained, "frozen": frozen}


def frozen_norms_of(model: nn.Module, frozen: list[str]) -> list[nn.Module]:
    return [model.get_submodule(n) for n in frozen
            if isinstance(model.get_submodule(n), nn.modules.batchnorm._NormBase)]


def _alternate_flip(images: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's images under alternating flips (Jordan 2024, section 3.6).

    A seeded random half of the images is flipped in even epochs and the other half in odd ones,
    so every two consecutive epochs show each image both ways (random flips repeat some views).
    """
    gen = torch.Generator().manual_seed(seed * 104_729 + 17)  # the same halves in every epoch
    flipped = torch.rand(len(images), generator=gen) < 0.5
    if epoch % 2:
        flipped = ~flipped
    return torch.where(flipped.to(images.device).view(-1, 1, 1, 1), images.flip(3), images)


def _train_epoch(model: nn.Module, opt: torch.optim.Optimizer | OptimizerChain, scheduler: Scheduler, data: Split,
                 recipe: Recipe, epoch: int, step: int, steps_per_epoch: int, device: torch.device, ddp: _Dist,
                 progress: bool, ema: nn.Module | None = None, lookahead: Lookahead | None = None,
                 frozen_norms: list[nn.Module] | None = None) -> tuple[dict[str, float], int]:
    gen = torch.Generator().manual_seed(recipe.seed * 100_003 + epoch)  # data order + augmentation
    torch.manual_seed(recipe.seed * 7_919 + epoch * 31 + ddp.rank)  # dropout
    model.train()
    for norm in frozen_norms or ():  # frozen norm layers keep their statistics
        norm.eval()
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if recipe.precision == "bf16" else nullcontext())
    mean = data.dataset.mean if recipe.standardize else tuple(0.0 for _ in data.dataset.mean)
    std = data.dataset.std if recipe.standardize else tuple(1.0 for _ in data.dataset.std)
    share = recipe.batch_size // ddp.world
    flip = recipe.flip
    if recipe.alternate_flip and data.images.dim() == 4:
        data = dataclasses.replace(data, images=_alternate_flip(data.images, recipe.seed, epoch))
        flip = False  # done above, for the whole epoch
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
        with autocast:
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if ema is not None:
            ema.update_parameters(_unwrap(model))
        if lookahead is not None:
            lookahead.step(_unwrap(model), step)
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
    if ddp.enabled:
        dist.all_reduce(stats)
    row = {"train_loss": float(stats[0] / stats[2]), "train_top1": float(100 * stats[1] / stats[2]),
           "lr": lr, "epoch_s": seconds, "train_images_per_s": float(stats[2]) / seconds}
    if recipe.low_res:  # progressive resizing: the side this epoch trained at
        row["train_size"] = recipe.low_res if epoch < recipe.low_res_epochs else data.images.shape[-1]
    return row, step


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _plot_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    try:
        from ..utils.plots import plot_curves
    except ZooError:
        return
    plot_curves(history, path, title=title)


def _check_low_res(model: nn.Module, recipe: Recipe, spec: DatasetSpec, device: torch.device) -> None:
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


def _data_init(model: nn.Module, data: Split, recipe: Recipe, device: torch.device) -> None:
    """Models with a data-dependent start (``init_from_data``, e.g. FastNet's whitened stem) get 5,000 images."""
    init = getattr(model, "init_from_data", None)
    if init is None or data.images.dim() != 4:
        return
    mean = data.dataset.mean if recipe.standardize else tuple(0.0 for _ in data.dataset.mean)
    std = data.dataset.std if recipe.standardize else tuple(1.0 for _ in data.dataset.std)
    x, _ = next(batches(data, min(5000, len(data)), mean=mean, std=std, device=device))
    init(x)
    _logger.info("%s initialised from the first %d training images", recipe.model, len(x))


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
        save_dtype: ``"float16"`` stores the final weights in half precision (the metrics are measured
            from the stored file). A resume keeps the tag and storage dtype the run was started with
            (``run.json``) unless given.
        verify: check the dataset files (md5 or content fingerprint) before use; ``False`` skips it, with a
            warning (the restricted CIFAR unpickler applies either way).
        max_minutes: a time budget for this call: no epoch is started that the epochs so far say would
            end past it; the run then stops with its state saved (``TrainResult.finished`` False and
            ``remaining_s`` its estimate) and ``resume=True`` continues it.
        threads: torch's CPU thread count (for the whole process).
    """
    if not recipe.model:
        raise InvalidArgumentError(f"recipe {recipe.name!r} names no model: pass --model")
    tag = check_name(tag, "tag") if tag is not None else None  # it becomes part of a file name
    if save_dtype not in _SAVE_DTYPES:  # checked now, not after hours of training
        raise InvalidArgumentError(f"save_dtype must be float32, float16 or None, got {save_dtype!r}")
    if max_minutes is not None and not max_minutes > 0:
        raise InvalidArgumentError(f"max_minutes must be > 0, got {max_minutes}")
    if threads is not None:
        if not 1 <= threads <= 1024:
            raise InvalidArgumentError(f"threads must be in 1..1024, got {threads}")
        torch.set_num_threads(threads)
    started = time.monotonic()
    dev = resolve_device(device)
    if recipe.precision == "bf16" and dev.type == "cpu" and not cpu_has_bf16():
        _logger.warning("this CPU (%s) has no native bf16, where bf16 autocast runs many times slower than fp32: "
                        "training in fp32 (the run's recipe records it)", cpu_class())
        recipe = dataclasses.replace(recipe, precision="fp32")
    ddp = _Dist(dev)
    out = Path(out_dir)
    lock = None
    try:
        if recipe.batch_size % ddp.world:
            raise InvalidArgumentError(f"batch_size {recipe.batch_size} is not divisible by {ddp.world} processes")
        try:
            check_run_dir(out)  # absent, empty or a zoo run: never a folder of the user's files
            out.mkdir(parents=True, exist_ok=True)
            lock = lock_run(out) if ddp.main else None
        except OSError as exc:
            raise InvalidArgumentError(f"cannot use {out} as the run directory: {exc.strerror or exc}") from None
        state_path = out / "state.pt"
        log_path = out / "log.jsonl"
        if lock is not None:
            remove_stale_temporaries(out)
        if not resume and state_path.exists():
            raise InvalidArgumentError(f"{out} already holds a run (state.pt): pass --resume to continue it, "
                                       f"or choose another --out")
        if resume and ddp.main:  # a resume keeps the first call's checkpoint name and storage unless told otherwise
            saved = read_run_options(out)
            if tag is None and saved["tag"]:
                tag = check_name(saved["tag"], f"tag in {out / 'run.json'}")
            if save_dtype is None:
                save_dtype = saved["save_dtype"]
            if save_dtype not in _SAVE_DTYPES:
                raise InvalidArgumentError(f"{out / 'run.json'} records an unknown save_dtype {save_dtype!r}")
        if ddp.main:
            write_run_options(out, tag=tag, save_dtype=save_dtype)
        train_data, test_data = _load_data(recipe, data_dir, verify)
        if recipe.train_limit:
            train_data = train_data.head(recipe.train_limit)
        spec = train_data.dataset
        tag = check_name(tag or spec.name, "tag (the dataset's name by default; pass --tag)")
        torch.manual_seed(recipe.seed)
        model = create(recipe.model, num_classes=spec.num_classes)
        resuming = resume and state_path.exists()
        if recipe.init_from and not resuming:  # fine-tuning: the checkpoint's tensors, a fresh classifier if needed
            load_into(model, recipe.model, recipe.init_from, new_head=getattr(model, "classifier_path", None))
        model = model.to(dev)
        if not recipe.init_from:  # a data-dependent start (FastNet's whitened stem) only from scratch
            _data_init(model, train_data, recipe, dev)
        layers = freeze(model, recipe.freeze) if recipe.freeze else None
        frozen_norms = frozen_norms_of(model, layers["frozen"]) if layers else []
        if layers:
            _logger.info("freeze %s: training %d layers (%s), %d frozen", recipe.freeze, len(layers["trained"]),
                         ", ".join(layers["trained"]), len(layers["frozen"]))
        if recipe.low_res:
            _check_low_res(model, recipe, spec, dev)
        if recipe.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = create_optimizer(recipe, model)
        ema = create_ema(model, recipe)
        steps_per_epoch = len(train_data) // recipe.batch_size
        if steps_per_epoch < 1:
            raise InvalidArgumentError(f"batch_size {recipe.batch_size} exceeds the {len(train_data)} training images")
        scheduler = create_scheduler(recipe, opt, steps_per_epoch)
        lookahead = (Lookahead(model, recipe.lookahead_steps, recipe.lookahead_decay, recipe.epochs * steps_per_epoch)
                     if recipe.lookahead_steps else None)
        history: list[dict[str, Any]] = []
        start_epoch = 0
        if resuming:
            state = _load_state(state_path, dev, recipe.epochs)
            if not _same_recipe(state["recipe"], recipe):
                raise InvalidArgumentError(f"{state_path} was made by another recipe; resume with the same settings")
            _restore(state, state_path, model, opt, ema, lookahead)
            history, start_epoch = state["history"], state["epoch"]
            _logger.info("resuming %s at epoch %d", out, start_epoch + 1)
        elif resume:
            _logger.warning("--resume: no state.pt in %s, starting from scratch", out)
        if ddp.main:
            atomic_write_text(out / "recipe.json", json.dumps(recipe.to_dict(), indent=2) + "\n")
            if layers:  # what was trained, beside the recipe that said so
                norms = [n for n in layers["frozen"]
                         if isinstance(model.get_submodule(n), nn.modules.batchnorm._NormBase)]
                atomic_write_text(out / "layers.json", json.dumps({**layers, "frozen_norms_in_eval_mode": norms},
                                                                  indent=2) + "\n")
            write_log(log_path, history)
        net: nn.Module = nn.parallel.DistributedDataParallel(model) if ddp.enabled else model
        hardware = hardware_description(dev, ddp.world)  # on every log line: a resumed run may change machine
        step = start_epoch * steps_per_epoch
        finished, remaining_s = True, 0.0
        title = f"{recipe.model} on {spec.name} ({recipe.name})"  # of curves.png
        for epoch in range(start_epoch, recipe.epochs):
            if max_minutes is not None and epoch > start_epoch:
                spent = time.monotonic() - started
                per_epoch = spent / (epoch - start_epoch)
                if spent + per_epoch > max_minutes * 60:
                    finished, remaining_s = False, per_epoch * (recipe.epochs - epoch)
                    _logger.warning("stopping after epoch %d of %d: the next would end past --max-minutes %g; "
                                    "continue with --resume (about %s left at this pace)",
                                    epoch, recipe.epochs, max_minutes, format_duration(remaining_s))
                    break
            row, step = _train_epoch(net, opt, scheduler, train_data, recipe, epoch, step, steps_per_epoch, dev, ddp,
                                     progress, ema, lookahead, frozen_norms)
            row = {"epoch": epoch + 1, **row}
            # the last epoch is scored once, from the stored file (_finish)
            if (epoch + 1) % recipe.eval_every == 0 and epoch + 1 < recipe.epochs:
                tested = time.perf_counter()
                m = evaluate(model if ema is None else ema.module, test_data, batch_size=1000, device=dev,
                             mean=None if recipe.standardize else (0.0,) * len(spec.mean),
                             std=None if recipe.standardize else (1.0,) * len(spec.std))
                row.update(test_loss=m["loss"], test_top1=m["top1"], test_s=time.perf_counter() - tested)
            history.append({**row, "hardware": hardware})
            _logger.info("epoch %d/%d %s", epoch + 1, recipe.epochs,
                         " ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
            if ddp.main:  # the state first: a log line exists only for an epoch whose state is saved
                extra = {"ema": ema.state_dict()} if ema is not None else {}
                if lookahead is not None:
                    extra["lookahead"] = lookahead.state_dict()
                _atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                                    "history": history, "recipe": json.loads(recipe.to_json()), **extra}, state_path)
                write_log(log_path, history)
                _plot_curves(history, out / "curves.png", title)
            ddp.barrier()
        train_time = sum(r["epoch_s"] for r in history)
        hardware = run_hardware(history, hardware)
        result = None
        if ddp.main and finished:
            final = model if ema is None else ema.module  # with an EMA, the average is what is stored
            if lookahead is not None:
                final = lookahead.store_into(model)
            result = _finish(final, recipe, spec, test_data, out, tag, train_time, hardware,
                             history, dev, save_dtype, ddp.world)
            write_log(log_path, history)  # the last line now holds the stored file's test scores
            _plot_curves(history, out / "curves.png", title)
        ddp.barrier()
        return result if result is not None else TrainResult(str(out), "", "", recipe.to_dict(), {}, history,
                                                             train_time, hardware, 0, 0.0, ddp.world, finished,
                                                             remaining_s)
    finally:
        if lock is not None:
            lock.close()
        ddp.close()


def _load_data(recipe: Recipe, data_dir: str | None, verify: bool) -> tuple[Split, Split]:
    """The train and test splits: a dataset zoo knows, or an image folder (``root/train``, ``root/test``)
    read at the model's input size with its dataset's statistics."""
    if not is_image_folder(recipe.dataset):
        return (load_split(recipe.dataset, "train", data_dir=data_dir, verify=verify),
                load_split(recipe.dataset, "test", data_dir=data_dir, verify=verify))
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


def _same_recipe(saved: dict[str, Any], recipe: Recipe) -> bool:
    """Whether a saved state's recipe is ``recipe``: the same settings (settings added to zoo since keep their
    defaults); an edited description or source does not change a recipe."""
    try:
        a, b = Recipe.from_dict(saved).to_dict(), recipe.to_dict()
    except (InvalidArgumentError, TypeError):
        return False
    return all(a[k] == b[k] for k in a if k not in ("description", "source"))


def _load_state(path: Path, device: torch.device, epochs: int) -> dict[str, Any]:
    """``state.pt`` read with ``weights_only=True``, its entries' types and ranges checked; a damaged file is a
    one-line error."""
    try:
        regular_file(path, "training state")
        check_zip(path, "training state")
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a boundary: truncated zips, refused pickles, I/O errors
        reason = summarize(exc)
        if "weights only load failed" in reason.lower():  # never pass on torch's advice to unpickle anyway
            reason = "it holds objects other than tensors, refused for safety"
        raise ZooError(f"{path} cannot be resumed: it is damaged or not a zoo training state ({reason}); "
                       f"start the run again in a new --out") from None
    keys = {"model", "optimizer", "epoch", "history", "recipe"}
    if not isinstance(state, dict) or not keys <= set(state):
        raise ZooError(f"{path} cannot be resumed: it is not a zoo training state (keys {sorted(keys)} expected)")
    _check_state(state, path, epochs)
    return state


def _check_state(state: dict[str, Any], path: Path, epochs: int) -> None:
    what = "a zoo training state"
    json_field(state, "epoch", int, path, check=lambda v: 0 <= v <= epochs, what=what)
    json_field(state, "recipe", dict, path, what=what)
    history = json_field(state, "history", list, path, check=lambda v: len(v) == state["epoch"], what=what)
    for i, row in enumerate(history):
        json_field(row, "epoch_s", (int, float), f"{path} (history[{i}])", what=what,
                   check=lambda v: math.isfinite(v) and v >= 0)
    model = json_field(state, "model", dict, path, what=what)
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()):
        raise ZooError(f"{path} cannot be read as {what}: field 'model' is not a state dict of tensors")
    json_field(state, "optimizer", dict, path, what=what)  # its inside is the optimizer's (or chain's): _restore
    for key in ("ema", "lookahead"):
        json_field(state, key, dict, path, default=None, what=what)


def _restore(state: dict[str, Any], path: Path, model: nn.Module, opt: Any, ema: Any, lookahead: Any) -> None:
    """The saved model, optimizer, EMA and lookahead put back; a state that does not fit them is one line."""
    parts = [("model", model), ("optimizer", opt), ("ema", ema), ("lookahead", lookahead)]
    for key, target in parts:
        if target is None:
            continue
        if key not in state:
            raise ZooError(f"{path} cannot be resumed: it has no {key!r} entry, which this recipe needs")
        try:
            target.load_state_dict(state[key])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ZooError(f"{path} cannot be resumed: its {key!r} entry does not fit the run "
                           f"({type(exc).__name__}: {summarize(exc)})") from None


def _finish(model: nn.Module, recipe: Recipe, dataset: DatasetSpec, test_data: Split, out: Path, tag: str,
            train_time: float, hardware: str, history: list[dict[str, Any]], dev: torch.device,
            save_dtype: str | None, world: int) -> TrainResult:
    """Save the final weights, then measure the stored file on the full test split; its scores are also the
    last epoch's test scores in ``history``."""
    model = model.to("cpu", memory_format=torch.contiguous_format).eval()
    info = {"recipe": recipe.to_dict(), "train_time_s": round(train_time, 1), "hardware": hardware,
            "epochs": recipe.epochs}
    tmp = out / f".{recipe.model}.{tag}.safetensors"
    sha = save_checkpoint(model, tmp, arch=recipe.model, dataset=dataset, extra_metadata=info, dtype=save_dtype)
    final = out / f"{recipe.model}.{tag}-{sha[:8]}.safetensors"
    os.replace(tmp, final)
    assert sha256_file(final) == sha
    fresh = create(recipe.model, num_classes=test_data.dataset.num_classes)
    load_into(fresh, recipe.model, str(final))
    mean = None if recipe.standardize else (0.0,) * len(test_data.dataset.mean)
    std = None if recipe.standardize else (1.0,) * len(test_data.dataset.std)
    tested = time.perf_counter()
    metrics = evaluate(fresh, test_data, batch_size=500, device=dev, mean=mean, std=std)
    if history:
        history[-1].update(test_loss=metrics["loss"], test_top1=metrics["top1"], test_s=time.perf_counter() - tested)
    result = TrainResult(
        out_dir=str(out), checkpoint=str(final), sha256=sha, recipe=recipe.to_dict(),
        metrics={k: metrics[k] for k in ("top1", "top5", "loss", "num_images", "correct", "per_class")},
        history=history, train_time_s=train_time, hardware=hardware, num_params=count_params(fresh),
        gflops=count_flops(fresh, test_data.dataset.input_size) / 1e9, world_size=world,
    )
    atomic_write_text(out / "result.json", json.dumps(result.to_dict(), indent=2) + "\n")
    _logger.info("%s: top-1 %.2f%% from the stored file %s", recipe.model, metrics["top1"], final)
    return result
