"""Report 003's transfer-learning comparison (section 3), within this machine's data.

Report 003 fine-tunes an ImageNet ResNet-18 with its first layers frozen (Adam, batch 64, lr 5e-4, no
augmentation) and finds that it learns much faster and reaches a lower validation loss than its best
network trained from scratch (Figures 5-7). No ImageNet weights can be downloaded here, so the study
builds its own source task from CIFAR-10:

1. **source**: the model is trained on the five classes ``source_classes`` (airplane, automobile,
   bird, cat, deer), all their training images;
2. **target**: the other five classes (dog, frog, horse, ship, truck), with only
   ``target_images`` labelled training images (balanced), the situation where transfer matters;
3. two runs on the target with the same data, batches, steps and optimiser (the report's Adam,
   batch 64, lr 5e-4, no augmentation): **transfer** starts from the source model with a fresh
   5-class classifier and the layers ``freeze`` frozen (frozen BatchNorm keeps its statistics),
   **scratch** starts from a random initialisation with everything trained.

Every ``probe_every`` steps both runs are scored on the target classes' test images: loss and top-1.
``transfer.json`` holds the settings, the curves, the final scores, the steps each run needed to reach
``accuracy_levels``, and per claim of the report whether this run agrees.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..builder import create
from ..data.datasets import Split, batches, load_split
from ..errors import InvalidArgumentError, one_line
from ..scoring import evaluate
from ..utils.fileio import atomic_write_text, read_json, strict_json
from ..utils.machine import hardware_description

__all__ = ["TransferConfig", "PRESETS", "transfer_config", "run_transfer", "redraw_transfer", "transfer_figure"]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferConfig:
    model: str = "resnet20"
    source_classes: tuple[int, ...] = (0, 1, 2, 3, 4)
    target_classes: tuple[int, ...] = (5, 6, 7, 8, 9)
    source_epochs: int = 3
    source_images: int = 0  # source training images (balanced; 0 = all 25,000)
    source_lr: float = 2e-3
    target_images: int = 1000  # labelled target training images (balanced over the target classes)
    target_steps: int = 300
    batch_size: int = 64
    lr: float = 5e-4  # report 003: Adam, batch 64, lr 5e-4, no augmentation
    freeze: str = "conv1,bn1,layer1,layer2"
    probe_every: int = 20
    test_images: int = 2000  # target-class test images scored at each probe (0 = all 5,000)
    accuracy_levels: tuple[float, ...] = (50.0, 60.0, 70.0)
    seed: int = 0


PRESETS = {
    "short": TransferConfig(),  # minutes on 2 CPU cores (wall time recorded in transfer.json)
    "full": TransferConfig(source_epochs=15, target_images=2500, target_steps=1000, test_images=0, probe_every=25),
}


def transfer_config(preset: str = "short", **overrides: Any) -> TransferConfig:
    if preset not in PRESETS:
        raise InvalidArgumentError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    config = dataclasses.replace(PRESETS[preset], **changes)
    if set(config.source_classes) & set(config.target_classes):
        raise InvalidArgumentError("the source and target classes must not overlap")
    return config


def _classes(split: Split, keep: tuple[int, ...], limit: int = 0, seed: int = 0) -> Split:
    """The images of ``keep`` relabelled 0..len(keep)-1; ``limit`` keeps a balanced random subset."""
    chosen = []
    gen = torch.Generator().manual_seed(seed)
    for c in keep:
        idx = (split.labels == c).nonzero().flatten()
        if limit:
            idx = idx[torch.randperm(len(idx), generator=gen)[:limit // len(keep)]].sort().values
        chosen.append(idx)
    idx = torch.cat(chosen).sort().values
    relabel = torch.full((int(split.labels.max()) + 1,), -1, dtype=torch.int64)
    relabel[list(keep)] = torch.arange(len(keep))
    spec = dataclasses.replace(split.dataset, num_classes=len(keep),
                               classes=tuple(split.dataset.classes[c] for c in keep))
    return dataclasses.replace(split, dataset=spec, images=split.images[idx], labels=relabel[split.labels[idx]],
                               indices=None)


def _score(model: nn.Module, data: Split) -> tuple[float, float]:
    """Mean cross-entropy and top-1 on ``data`` (``zoo.scoring.evaluate``, which switches to eval mode)."""
    was = model.training
    metrics = evaluate(model, data, batch_size=500)
    model.train(was)
    return metrics["loss"], metrics["top1"]


def _train(model: nn.Module, data: Split, steps: int, lr: float, config: TransferConfig,
           probe: Split | None = None, frozen_norms: tuple[nn.Module, ...] = ()) -> dict[str, list[float]]:
    """Adam on ``data`` (batches of ``batch_size``, reshuffled per pass, seeded), scored on ``probe``."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    gen = torch.Generator().manual_seed(config.seed)
    curve: dict[str, list[float]] = {"step": [], "train_loss": [], "test_loss": [], "test_top1": []}

    def record(at: int, train_loss: float) -> None:
        for key, value in zip(curve, (at, train_loss, *_score(model, probe))):
            curve[key].append(value)

    if probe is not None:
        record(0, float("nan"))
    step, running = 0, []
    while step < steps:
        for x, y in batches(data, config.batch_size, shuffle=True, generator=gen, drop_last=True):
            model.train()
            for norm in frozen_norms:
                norm.eval()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            running.append(loss.item())
            if probe is not None and (step % config.probe_every == 0 or step == steps):
                record(step, sum(running) / len(running))
                running = []
            if step == steps:
                break
    return curve


def _first_step(curve: dict[str, list[float]], level: float) -> int | None:
    return next((s for s, a in zip(curve["step"], curve["test_top1"]) if a >= level), None)


def _final(runs: dict[str, dict[str, list[float]]], levels: tuple[float, ...]) -> dict[str, dict[str, Any]]:
    return {name: {"test_loss": c["test_loss"][-1], "test_top1": c["test_top1"][-1],
                   "best_test_loss": min(c["test_loss"]),
                   "mean_train_loss": sum(c["train_loss"][1:]) / max(1, len(c["train_loss"]) - 1),
                   "steps_to": {f"{lv:g}": _first_step(c, lv) for lv in levels}}
            for name, c in runs.items()}


def _claims(runs: dict[str, dict[str, list[float]]], final: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Report 003's findings (section 3.4), each checked against this run's curves."""
    t, s = final["transfer"], final["scratch"]
    reached = [(t["steps_to"][lv], s["steps_to"][lv]) for lv in t["steps_to"]]
    reached = [(a, b) for a, b in reached if a is not None or b is not None]  # levels neither run reached: no evidence
    return {
        "has a lower training loss as it trains (mean over the run)": t["mean_train_loss"] < s["mean_train_loss"],
        "reaches each accuracy level (that either run reached) in fewer steps":
            bool(reached) and all(a is not None and (b is None or a < b) for a, b in reached),
        "reaches a lower validation loss": t["best_test_loss"] < s["best_test_loss"],
        "performs better at the end (top-1)": t["test_top1"] > s["test_top1"],
    }


def run_transfer(config: TransferConfig, *, out_dir: str | os.PathLike[str], data_dir: str | None = None,
                 threads: int | None = None) -> dict[str, Any]:
    """Run the study (see the module docstring); writes ``transfer.json`` and ``transfer.png`` in ``out_dir``."""
    from ..train.freeze import freeze, frozen_norm_layers

    if threads is not None:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    train_split, test_split = load_split("cifar10", "train", data_dir=data_dir), load_split("cifar10", "test",
                                                                                           data_dir=data_dir)
    source = _classes(train_split, config.source_classes, config.source_images, config.seed)
    target = _classes(train_split, config.target_classes, config.target_images, config.seed)
    probe = _classes(test_split, config.target_classes, config.test_images, config.seed)
    n_source = len(config.source_classes)
    torch.manual_seed(config.seed)
    source_model = create(config.model, num_classes=n_source)
    steps = config.source_epochs * (len(source) // config.batch_size)
    _logger.info("source: %s on %d images of %d classes, %d steps", config.model, len(source), n_source, steps)
    _train(source_model, source, steps, config.source_lr, config)
    source_loss, source_top1 = _score(source_model, _classes(test_split, config.source_classes))
    _logger.info("source model: top-1 %.2f%% on its %d classes' test images", source_top1, n_source)

    runs = {}
    torch.manual_seed(config.seed + 1)
    transfer = create(config.model, num_classes=n_source)
    transfer.load_state_dict(source_model.state_dict())
    transfer.reset_classifier(len(config.target_classes))
    layers = freeze(transfer, config.freeze)
    before = {k: t.clone() for k, t in transfer.state_dict().items()
              if any(k.startswith(f"{n}.") for n in layers["frozen"])}
    runs["transfer"] = _train(transfer, target, config.target_steps, config.lr, config, probe,
                              tuple(frozen_norm_layers(transfer, layers["frozen"])))
    state = transfer.state_dict()
    layers["frozen_tensors_unchanged"] = all(torch.equal(state[k], t) for k, t in before.items())
    torch.manual_seed(config.seed + 1)
    scratch = create(config.model, num_classes=len(config.target_classes))
    runs["scratch"] = _train(scratch, target, config.target_steps, config.lr, config, probe)

    final = _final(runs, config.accuracy_levels)
    claims = _claims(runs, final)
    result = {
        "config": asdict(config), "hardware": hardware_description(), "wall_s": time.perf_counter() - t0,
        "source": {"images": len(source), "steps": steps, "test_loss": source_loss, "test_top1": source_top1},
        "target": {"train_images": len(target), "test_images": len(probe),
                   "classes": list(target.dataset.classes)},
        "layers": layers, "runs": runs, "final": final, "agrees_with_report_003": claims,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "transfer.json", json.dumps(strict_json(result), indent=2) + "\n")
    result["paths"] = [str(out / "transfer.json"), str(transfer_figure(result, out / "transfer.png"))]
    return result


def redraw_transfer(json_path: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None
                    ) -> dict[str, Any]:
    """Redraw the figure of a saved ``transfer.json`` and re-derive its summary from the curves (nothing is
    trained). A file whose values are not what zoo wrote is one ``InvalidArgumentError`` naming it."""
    result = read_json(json_path, "a transfer.json written by zoo analyze transfer")
    out = Path(out_dir) if out_dir else Path(json_path).parent
    try:
        levels = tuple(float(v) for v in result["config"]["accuracy_levels"])
        result["final"] = _final(result["runs"], levels)  # derived from the recorded curves, so re-derived here
        result["agrees_with_report_003"] = _claims(result["runs"], result["final"])
        figure = transfer_figure(result, out / "transfer.png")
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError) as exc:
        what = f"field {exc.args[0]!r} is missing" if isinstance(exc, KeyError) and exc.args else \
            f"{type(exc).__name__}: {one_line(str(exc), 200)}"
        raise InvalidArgumentError(f"{json_path} is not a transfer.json written by zoo analyze transfer "
                                   f"({what})") from None
    atomic_write_text(Path(json_path), json.dumps(strict_json(result), indent=2) + "\n")
    result["paths"] = [str(json_path), str(figure)]
    return result


def transfer_figure(result: dict[str, Any], path: Path) -> Path:
    """Loss and top-1 on the target test images per step, transfer vs scratch, on one figure."""
    from ..utils.plots import plot_lines

    runs, cfg = result["runs"], result["config"]
    panels = [("training loss (mean since the last probe)", "cross-entropy", "train_loss", 1),
              (f"test loss ({result['target']['test_images']:,} images)", "cross-entropy", "test_loss", 0),
              ("test top-1", "top-1 (%)", "test_top1", 0)]
    return plot_lines([{"title": title, "ylabel": ylabel,
                        "lines": {name: (c["step"][skip:], c[key][skip:]) for name, c in runs.items()}}
                       for title, ylabel, key, skip in panels], path, sharey=False,
                      title=f"{cfg['model']}: transfer from classes {tuple(cfg['source_classes'])} (frozen: "
                            f"{cfg['freeze']}) vs scratch, {result['target']['train_images']:,} target images")
