"""Report 002's BatchNorm study (section 2.2-2.4): loss landscape, gradient predictiveness, beta-smoothness.

Report 002 (``../shared/seeds/002_12318041e45b9a7a.txt``), after Santurkar et al., "How Does Batch
Normalization Help Optimization?" (NeurIPS 2018), trains VGG-A with and without BatchNorm (``vgga``,
``vgga_bn``) with Adam at each of the learning rates 1e-3, 2e-3, 1e-4 and 5e-4, and plots per step:

- the *loss landscape*: the largest and the smallest training loss over the learning rates (a band);
- the *gradient predictiveness*: how far the gradient moves along a step, ``||g(w_t+1) - g(w_t)||``;
- the *beta-smoothness*: ``||g(w_t+1) - g(w_t)|| / ||w_t+1 - w_t||``, whose maximum estimates beta.

The report's claim: with BatchNorm the band is narrower, the gradient changes less and beta is lower.

How it is measured here. Every run of one model starts from the same initialisation and sees the same
batches in the same order, so the band reflects the learning rate only. At a probed step, after the
optimiser has moved ``w_t`` to ``w_t+1``, the gradient is computed again on the *same* batch at
``w_t+1`` (with the same dropout masks, for models that have dropout; BatchNorm in train mode in
both passes), so the change is caused by the step and not by a new batch. Both distances are
recorded over all parameters and over the last Linear layer alone (the layer report 002 looked at).
A probe costs one more forward and backward pass; ``probe_every`` thins them.

``LandscapeConfig`` (``zoo.studies.landscape``) holds the settings; ``PRESETS["short"]`` runs in under
15 minutes on two busy CPU cores, ``PRESETS["full"]`` is the report's 25 epochs on the whole training set.
``run_landscape`` writes ``landscape.json`` (atomically, after every run) and the figures;
``redraw_landscape`` redraws the figures from a saved JSON.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..builder import create
from ..data.augment import augment_flip_crop
from ..data.datasets import load_split
from ..data.splits import Split, batches
from ..errors import InvalidArgumentError, one_line
from ..utils.fileio import atomic_write_text, read_json
from ..utils.machine import hardware_description, resolve_device
from .landscape import PRESETS, LandscapeConfig, LandscapeResult, RunTrace, landscape_config

__all__ = ["LandscapeConfig", "PRESETS", "landscape_config", "RunTrace", "LandscapeResult", "run_landscape",
           "summarize_runs", "landscape_figures", "redraw_landscape"]

_logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# One run


def _stream(data: Split, config: LandscapeConfig, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches for ever, reshuffled each epoch; the same seed gives every run the same sequence."""
    gen = torch.Generator().manual_seed(config.seed)
    while True:
        for x, y in batches(data, config.batch_size, device=device, shuffle=True, generator=gen, drop_last=True):
            if config.augment and x.dim() == 4:
                x = augment_flip_crop(x, pad=4, flip=True, generator=gen)
            yield x, y


def _grad_vector(params: list[nn.Parameter]) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in params if p.grad is not None]).clone()


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _loss_and_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach()


def _run_one(name: str, lr: float, config: LandscapeConfig, data: Split, device: torch.device,
             progress: bool) -> RunTrace:
    torch.manual_seed(config.seed)  # the same initialisation for every learning rate
    model = create(name, num_classes=data.dataset.num_classes).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    n_last = sum(p.numel() for p in last.parameters())  # weight then bias: the end of the parameter vector
    if [id(p) for p in params[-2:]] != [id(last.weight), id(last.bias)]:
        raise InvalidArgumentError(f"{name}: the last Linear layer is not the last in parameter order")
    opt = (torch.optim.Adam(params, lr=lr) if config.optimizer == "adam"
           else torch.optim.SGD(params, lr=lr, momentum=0.9))
    trace = RunTrace(name, lr, [], [], [], [], [], [], [])
    it: Any = range(config.steps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"{name} lr={lr:g}", unit="step", leave=False)
    stream = _stream(data, config, device)
    t0 = time.perf_counter()
    for step in it:
        x, y = next(stream)
        rng = _rng_state(device)  # a probe replays the step's dropout masks
        loss = _loss_and_grad(model, x, y)
        if not torch.isfinite(loss):
            trace.diverged_at = step
            _logger.warning("%s lr=%g diverged at step %d", name, lr, step)
            break
        trace.loss.append(float(loss))
        probe = step % config.probe_every == 0
        if probe:
            g0 = _grad_vector(params)
            w0 = nn.utils.parameters_to_vector(params).detach().clone()
        opt.step()
        if probe:
            after = _rng_state(device)
            _set_rng_state(rng, device)
            _loss_and_grad(model, x, y)  # the same batch (and dropout masks) at w_t+1
            _set_rng_state(after, device)
            dg = _grad_vector(params) - g0
            dw = float((nn.utils.parameters_to_vector(params).detach() - w0).norm())
            change, change_last = float(dg.norm()), float(dg[-n_last:].norm())
            trace.probe_steps.append(step)
            trace.grad_change.append(change)
            trace.grad_change_last.append(change_last)
            trace.step_norm.append(dw)
            trace.beta.append(change / dw if dw > 0 else float("nan"))
            trace.beta_last.append(change_last / dw if dw > 0 else float("nan"))
    trace.wall_s = time.perf_counter() - t0
    trace.loss += [float("nan")] * (config.steps - len(trace.loss))
    return trace


# --------------------------------------------------------------------------------------------------
# Summary and verdict


def _matrix(runs: list[RunTrace], key: str) -> np.ndarray:
    """Runs x steps, NaN where missing (a diverged run stops early)."""
    rows = [[np.nan if v is None else v for v in getattr(r, key)] for r in runs]
    width = max((len(r) for r in rows), default=0)
    return np.array([r + [np.nan] * (width - len(r)) for r in rows], dtype=np.float64)


def _nan(fn: Any, a: np.ndarray, **kw: Any) -> np.ndarray:
    """``fn`` ignoring NaN; a column that is all NaN gives NaN, without numpy's warning."""
    if a.size == 0:
        return np.array(np.nan) if not kw else fn(np.full((1, *a.shape[1:]), np.nan), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(a, **kw)


def _probe_steps(runs: list[RunTrace]) -> np.ndarray:
    """The probed steps of the longest run (a diverged run stops early)."""
    return np.asarray(max((r.probe_steps for r in runs), key=len), dtype=np.int64)


def band(runs: list[RunTrace], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Per step, the smallest and largest value of ``key`` over ``runs`` (the learning rates)."""
    m = _matrix(runs, key)
    return _nan(np.nanmin, m, axis=0), _nan(np.nanmax, m, axis=0)


_CHECKS = {  # bn_effect key: (what, summary metric, the word for "BatchNorm is better")
    "narrower_loss_band": ("loss band (mean over steps of max - min over learning rates)", "loss_band_mean",
                           "narrower"),
    "smaller_gradient_change": ("gradient change (mean over steps of the largest over learning rates)",
                                "grad_change_mean_of_max", "smaller"),
    "lower_beta": ("beta (largest ||dg||/||dw|| seen)", "beta_max", "lower"),
}


def _metrics(runs: list[RunTrace], first_step: int) -> dict[str, float]:
    """Band statistics over the steps from ``first_step`` on."""
    lo, hi = band(runs, "loss")
    keep = _probe_steps(runs) >= first_step
    uppers = {key: band(runs, key)[1][keep] for key in ("grad_change", "grad_change_last", "beta", "beta_last")}
    return {
        "loss_band_mean": float(_nan(np.nanmean, (hi - lo)[first_step:])),
        "grad_change_mean_of_max": float(_nan(np.nanmean, uppers["grad_change"])),
        "grad_change_last_mean_of_max": float(_nan(np.nanmean, uppers["grad_change_last"])),
        "beta_max": float(_nan(np.nanmax, uppers["beta"])),
        "beta_mean_of_max": float(_nan(np.nanmean, uppers["beta"])),
        "beta_last_max": float(_nan(np.nanmax, uppers["beta_last"])),
    }


def _compare(a: dict[str, float], b: dict[str, float]) -> tuple[dict[str, bool], list[str]]:
    flags, parts = {}, []
    for key, (label, metric, word) in _CHECKS.items():
        flags[key] = bool(b[metric] < a[metric])
        ratio = a[metric] / b[metric] if b[metric] else float("inf")
        parts.append(f"{label}: {a[metric]:.4g} without, {b[metric]:.4g} with BatchNorm "
                     f"({'' if flags[key] else 'NOT '}{word}, x{ratio:.2f})")
    return flags, parts


def summarize_runs(runs: list[RunTrace], config: LandscapeConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per model: band statistics over all steps and over the second half; then the report's comparison.

    ``bn_effect`` holds one flag per claim of the report, decided over all steps, the same flags over
    the second half of the steps (once the early transient is over), and a sentence (``verdict``).
    """
    summary: dict[str, Any] = {}
    for name in config.models:
        mine = [r for r in runs if r.model == name]
        if not mine:
            continue
        tail = max(1, config.steps // 10)
        summary[name] = {
            "all_steps": _metrics(mine, 0),
            "second_half": _metrics(mine, config.steps // 2),
            "final_loss": {f"{r.lr:g}": float(_nan(np.nanmean, np.array(r.loss[-tail:], dtype=np.float64)))
                           for r in mine},
            "diverged": {f"{r.lr:g}": r.diverged_at for r in mine if r.diverged_at is not None},
        }
    plain, bn = config.models
    if plain not in summary or bn not in summary:
        return summary, {}
    effect: dict[str, Any]
    effect, parts = _compare(summary[plain]["all_steps"], summary[bn]["all_steps"])
    late, late_parts = _compare(summary[plain]["second_half"], summary[bn]["second_half"])
    effect["second_half"] = late
    shown = sum(v for k, v in effect.items() if k in _CHECKS)
    head = {3: "BatchNorm shows all three effects report 002 describes",
            0: "BatchNorm shows NONE of the effects report 002 describes"}.get(
        shown, f"BatchNorm shows {shown} of the 3 effects report 002 describes")
    effect["verdict"] = (f"{head} ({plain} vs {bn}, {len(config.lrs)} learning rates, {config.steps} steps): "
                         + "; ".join(parts) + f". Over the second half of the steps ({sum(late.values())} of 3): "
                         + "; ".join(late_parts) + ".")
    return summary, effect


# --------------------------------------------------------------------------------------------------
# The study


def _write_json(result: LandscapeResult, path: Path) -> None:
    atomic_write_text(path, json.dumps(result.to_dict(), indent=1, allow_nan=False) + "\n")


def run_landscape(config: LandscapeConfig, *, out_dir: str | os.PathLike[str], data_dir: str | None = None,
                  device: str = "cpu", progress: bool = True, figures: bool = True, data: Split | None = None,
                  threads: int | None = None) -> LandscapeResult:
    """Train every (model, learning rate) pair of ``config``; write ``landscape.json`` and the figures to ``out_dir``.

    ``data`` replaces the training split of ``config.dataset`` (tests pass a small one); ``train_images``
    still applies to it. ``threads`` sets torch's CPU threads for the study (default: torch's).
    """
    if threads is not None:
        if threads < 1:
            raise InvalidArgumentError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    if data is None:
        data = load_split(config.dataset, "train", data_dir=data_dir)
    data = data.head(config.train_images or None)
    if len(data) < config.batch_size:
        raise InvalidArgumentError(f"batch_size {config.batch_size} exceeds the {len(data)} training images")
    result = LandscapeResult(config.to_dict(), [], {}, {}, hardware_description(dev),
                             f"torch {torch.__version__}, Python {platform.python_version()}", 0.0, False)
    json_path = out / "landscape.json"
    t0 = time.perf_counter()
    for name in config.models:
        for lr in config.lrs:
            trace = _run_one(name, lr, config, data, dev, progress)
            result.runs.append(trace)
            result.wall_s = time.perf_counter() - t0
            _logger.info("%s lr=%g: %d steps in %.0f s, last loss %s", name, lr, config.steps, trace.wall_s,
                         trace.loss[-1])
            result.summary, result.bn_effect = summarize_runs(result.runs, config)
            _write_json(result, json_path)  # partial results survive an interruption
    result.complete = True
    result.paths = [str(json_path)]
    if figures:
        result.paths += [str(p) for p in landscape_figures(result, out)]
    result.wall_s = time.perf_counter() - t0
    _write_json(result, json_path)
    return result


_NOT_OURS = "is not a landscape.json written by zoo"
# What recorded values that are not what zoo wrote (strings for numbers, short lists) raise while recomputing.
_BAD_VALUES = (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError)


def _load_result(path: str | os.PathLike[str]) -> LandscapeResult:
    d = read_json(path, "a landscape.json written by zoo")
    try:
        runs = [RunTrace(**r) for r in d.pop("runs")]
        result = LandscapeResult(runs=runs, **d)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise InvalidArgumentError(f"{path} {_NOT_OURS}: {one_line(str(e), 200)}") from None
    if not isinstance(result.config, dict):
        raise InvalidArgumentError(f"{path} {_NOT_OURS}: field 'config' is not an object")
    return result


def _config_of(result: LandscapeResult, path: str | os.PathLike[str]) -> LandscapeConfig:
    """The recorded config, checked as a new one is (unknown keys, types and ranges); missing keys take defaults."""
    try:
        return LandscapeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in result.config.items()})
    except (*_BAD_VALUES, InvalidArgumentError) as e:
        raise InvalidArgumentError(f"{path} {_NOT_OURS}: its config: {one_line(str(e), 200)}") from None


def redraw_landscape(json_path: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None
                     ) -> LandscapeResult:
    """Redraw the figures of a saved study; nothing is trained.

    The summary is recomputed from the recorded runs and ``landscape.json`` is written again, with the
    figures, to ``out_dir`` (default: the JSON's folder). A file whose values are not what zoo wrote is
    one ``InvalidArgumentError`` naming it.
    """
    result = _load_result(json_path)
    config = _config_of(result, json_path)
    result.config = {**asdict(config), **{k: v for k, v in result.config.items() if k not in asdict(config)}}
    out = Path(out_dir) if out_dir is not None else Path(json_path).parent
    try:
        result.summary, result.bn_effect = summarize_runs(result.runs, config)
        out.mkdir(parents=True, exist_ok=True)
        result.paths = [str(out / "landscape.json")] + [str(p) for p in landscape_figures(result, out)]
    except _BAD_VALUES as e:
        raise InvalidArgumentError(f"{json_path} {_NOT_OURS}: its runs cannot be redrawn "
                                   f"({type(e).__name__}: {one_line(str(e), 200)})") from None
    _write_json(result, out / "landscape.json")
    return result


def landscape_figures(result: LandscapeResult, out_dir: str | os.PathLike[str]) -> list[Path]:
    """``loss_landscape.png``, ``gradient_predictiveness.png``, ``beta_smoothness.png`` and ``loss_curves.png``."""
    from ..utils.plots import plot_bands, plot_lines

    out = Path(out_dir)
    cfg = result.config
    models = list(cfg["models"])
    lrs = ", ".join(f"{lr:g}" for lr in cfg["lrs"])
    what = (f"{cfg['optimizer']} at lr {{{lrs}}}, batch {cfg['batch_size']}, "
            f"{cfg['train_images'] or 'all'} {cfg['dataset']} training images")
    by_model = {m: [r for r in result.runs if r.model == m] for m in models}

    def series(key: str, probed: bool) -> dict[str, tuple[Any, Any, Any]]:
        out_s = {}
        for m, runs in by_model.items():
            if not runs:
                continue
            lo, hi = band(runs, key)
            x = _probe_steps(runs) if probed else np.arange(len(lo))
            out_s[m] = (x, lo, hi)
        return out_s

    paths = [plot_bands(
        [{"title": "training loss: band between the largest and smallest over the learning rates",
          "ylabel": "cross-entropy of the step's batch", "series": series("loss", False)}],
        out / "loss_landscape.png", title=f"Loss landscape (report 002, Figure 13): {what}")]
    paths.append(plot_bands(
        [{"title": "all parameters", "ylabel": "||g(w_t+1) - g(w_t)||, same batch", "logy": True,
          "series": series("grad_change", True)},
         {"title": "last Linear layer (report 002's choice)", "ylabel": "||g(w_t+1) - g(w_t)||, same batch",
          "logy": True, "series": series("grad_change_last", True)}],
        out / "gradient_predictiveness.png",
        title=f"Gradient predictiveness (report 002, Figure 14): gradient change over one step, band over the "
              f"learning rates\n{what}"))
    paths.append(plot_bands(
        [{"title": "all parameters", "ylabel": "||g(w_t+1) - g(w_t)|| / ||w_t+1 - w_t||", "logy": True,
          "series": series("beta", True)},
         {"title": "last Linear layer's gradient over the whole step", "logy": True,
          "ylabel": "||g_last(w_t+1) - g_last(w_t)|| / ||w_t+1 - w_t||", "series": series("beta_last", True)}],
        out / "beta_smoothness.png",
        title=f"Beta-smoothness (report 002, Figure 15): gradient change per unit of parameter change, band over "
              f"the learning rates\n{what}"))
    paths.append(plot_lines(
        [{"title": m, "ylabel": "cross-entropy of the step's batch",
          "lines": {f"lr {r.lr:g}" + (f" (diverged at step {r.diverged_at})" if r.diverged_at is not None else ""):
                    (np.arange(len(r.loss)), [np.nan if v is None else v for v in r.loss]) for r in by_model[m]}}
         for m in models],
        out / "loss_curves.png", title=f"Training loss per learning rate: {what}"))
    return paths
