"""What ``auto`` stands for: the backend measured fastest for the work of one call, on this very machine when it
was tuned here (``zoo.runners.tuned``), else on this machine's CPU class (``auto.json``), else by a rule.

``resolve`` is the one place a backend spec, ``auto`` included, becomes the modifiers that run.
``benchmarks/results/throughput.md`` holds the measurements behind the shipped table.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import summarize
from ..utils.machine import cpu_class, cpu_has_bf16
from .base import missing_dependency, parse_backend, precision_of
from .tuned import tuned_point

__all__ = ["AUTO_CANDIDATES", "AUTO_ORT_MAX_GFLOP", "AUTO_CUDA", "AUTO_CPU_BF16", "AUTO_CPU_FP32", "auto_table",
           "resolve_auto", "explain_auto", "auto_choices", "auto_rule", "resolve", "fallbacks", "model_gflops",
           "AUTO_SPECS", "AUTO_INT8_CANDIDATES", "AUTO_INT8_MAX_CHANGE", "int8_allowed", "int8_of", "int8_table"]

_logger = logging.getLogger(__name__)

# What ``auto`` stands for is chosen by measurement. ``benchmarks/throughput.py`` (part ``sweep``) times the
# AUTO_CANDIDATES side by side per model and batch size on the machine at hand and writes ``zoo/runners/auto.json``:
# per CPU class (``zoo.utils.machine.cpu_class``), the measured points (GFLOP per call) with each candidate's
# images/s and setup time (export, compilation, first call). ``resolve_auto`` takes the measured point
# nearest in GFLOP per call (log scale) and picks the fastest installed candidate there; a candidate whose
# results are fp32 wins when it is within AUTO_TIE of the fastest. For a pass over ``images`` images, the
# setup time counts too. A CPU class not measured yet gets the fallback rule below.
AUTO_CANDIDATES = ("eager", "fold-bn+channels-last", "fold-bn+channels-last+bf16-cast", "onnxruntime", "openvino",
                   "openvino-bf16")
AUTO_TIE = 0.05
AUTO_TABLE = Path(__file__).with_name("auto.json")
# ``auto-int8`` also weighs the int8 runners, for a checkpoint whose recorded int8 top-1 (part int8 of
# benchmarks/throughput.py, this exact file by sha256, full test split) is within AUTO_INT8_MAX_CHANGE points.
AUTO_SPECS = ("auto", "auto-int8")
AUTO_INT8_CANDIDATES = ("onnxruntime-int8", "openvino-int8")
AUTO_INT8_MAX_CHANGE = 0.3
INT8_TABLE = Path(__file__).with_name("int8.json")
# Fallback (no measurement for this CPU class): the rule measured on an AMD EPYC (Zen 4) with torch alone:
# onnxruntime up to 1 GFLOP per call (its per-operator overhead is far below eager PyTorch's), else BatchNorm
# folded, channels_last and bf16 (fp32 on a CPU without native bf16).
AUTO_ORT_MAX_GFLOP = 1.0
AUTO_CPU_SMALL = "onnxruntime"
AUTO_CPU_BF16 = "fold-bn+channels-last+bf16-cast"
AUTO_CPU_FP32 = "fold-bn+channels-last"
AUTO_CUDA = "channels-last+bf16"  # AMP; not measured (no GPU on the machines of the recorded results)



def _shipped(path: Path, key: str, otherwise: str) -> dict[str, Any]:
    """``path``'s ``key`` (a table shipped in the package), or {} when it is absent or damaged (with a warning)."""
    try:
        return json.loads(path.read_text())[key]
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError) as e:
        _logger.warning("ignoring %s (%s): %s", path, summarize(e), otherwise)
        return {}


@functools.cache
def auto_table(path: Path = AUTO_TABLE) -> dict[str, Any]:
    """The recorded measurements behind ``auto``: {cpu class: {"machine", "recorded", "threads", "points"}}."""
    return _shipped(path, "cpus", "auto uses its fallback rule")


@functools.cache
def int8_table(path: Path = INT8_TABLE) -> dict[str, Any]:
    """The recorded int8 top-1 change per released checkpoint: {weights: {"sha256", "eager_top1", "int8"}}."""
    return _shipped(path, "checkpoints", "auto-int8 runs as auto")


def int8_allowed(weights: str | None, sha256: str | None) -> tuple[tuple[str, ...], str]:
    """The int8 runners ``auto-int8`` may weigh for the checkpoint ``weights`` (its file ``sha256``), and why."""
    record = int8_table().get(weights or "")
    if record is None or sha256 is None or record.get("sha256") != sha256:
        return (), f"no int8 record for {weights or 'these weights'} (benchmarks/throughput.py --part int8)"
    changes = {spec: r["change"] for spec, r in record.get("int8", {}).items() if spec in AUTO_INT8_CANDIDATES}
    allowed = tuple(s for s, c in changes.items() if abs(c) <= AUTO_INT8_MAX_CHANGE)
    words = ", ".join(f"{s} {c:+.2f}" for s, c in changes.items())
    return allowed, (f"recorded int8 top-1 change of {weights} on {record['images']:,} test images: {words} points "
                     f"(allowed within {AUTO_INT8_MAX_CHANGE:g})")


def _measured() -> dict[str, Any] | None:
    """This machine's CPU class in the recorded table, if it was measured."""
    return auto_table().get(cpu_class())


def _pick(candidates: dict[str, dict[str, float]], images: int | None, bf16: bool | None = None,
          int8: Sequence[str] = ()) -> str | None:
    """The fastest installed candidate (fp32 preferred within AUTO_TIE); ``images``: count setup time too.

    ``bf16``: whether bf16 candidates may be picked (default: whether this CPU runs bf16 natively; a report
    of another machine's measurements passes that machine's). ``int8``: the int8 candidates that may be picked.
    """
    bf16 = cpu_has_bf16() if bf16 is None else bf16
    allowed = {"fp32": True, "bf16": bf16}
    usable = {spec: c for spec, c in candidates.items()
              if c.get("images_per_s") and missing_dependency(parse_backend(spec)) is None
              and (allowed.get(precision_of(parse_backend(spec)), False) or spec in int8)}
    if not usable:
        return None
    cost = {spec: (c.get("setup_s", 0.0) if images else 0.0) + (images or 1) / c["images_per_s"]
            for spec, c in usable.items()}
    best = min(cost.values())
    close = [s for s in cost if cost[s] <= best * (1 + AUTO_TIE)]
    return min(close, key=lambda s: ({"fp32": 0, "bf16": 1}.get(precision_of(parse_backend(s)), 2), cost[s]))


def explain_auto(device: str | torch.device = "cpu", batch_size: int = 256, gflops: float | None = None,
                 images: int | None = None, model: str | None = None, threads: int | None = None,
                 int8: Sequence[str] = ()) -> tuple[str, str]:
    """``resolve_auto``'s choice and why, in words: which table or rule chose it. ``int8``: the int8 runners
    that may be chosen too (``auto-int8``: ``int8_allowed``)."""
    if torch.device(device).type == "cuda":
        return AUTO_CUDA, "CUDA: channels_last with bf16 autocast (not measured)"
    local = tuned_point(model, threads, batch_size)
    setup = f"; setup time counted for a pass over {images:,} images" if images else ""
    if local is not None:
        picked = _pick(local[0]["candidates"], images, int8=int8)
        if picked:
            return picked, local[1] + setup
    measured = _measured()
    if measured and measured.get("points"):
        points = measured["points"]
        if gflops is None:
            point = max(points, key=lambda p: p["gflop_per_call"])
        else:
            work = max(batch_size * gflops, 1e-9)
            point = min(points, key=lambda p: abs(math.log(max(p["gflop_per_call"], 1e-9) / work)))
        picked = _pick(point["candidates"], images, int8=int8)
        if picked:
            return picked, (f"the shipped table for {cpu_class()} (measured on {measured['machine']} on "
                            f"{measured['recorded']}), nearest point {point['model']} at batch {point['batch_size']}"
                            + setup)
    small = gflops is not None and batch_size * gflops <= AUTO_ORT_MAX_GFLOP
    if small and missing_dependency(parse_backend(AUTO_CPU_SMALL)) is None:
        return AUTO_CPU_SMALL, f"the fallback rule ({cpu_class()} not measured): at most {AUTO_ORT_MAX_GFLOP:g} GFLOP"
    return (AUTO_CPU_BF16 if cpu_has_bf16() else AUTO_CPU_FP32), f"the fallback rule ({cpu_class()} not measured)"


def resolve_auto(device: str | torch.device = "cpu", batch_size: int = 256, gflops: float | None = None,
                 images: int | None = None, model: str | None = None, threads: int | None = None) -> str:
    """The backend spec ``auto`` stands for on ``device`` for calls of ``batch_size`` images of ``gflops`` GFLOPs.

    CPU: this machine's own tuning of ``model`` at ``threads`` when there is one near ``batch_size``
    (``zoo.runners.tuned``); else the fastest candidate at the shipped table's point for this CPU class nearest
    in GFLOP per call (unknown ``gflops``: the largest measured call); ``images``: a pass over that many images,
    where a backend's setup time (an export) counts too. Without either: onnxruntime up to
    ``AUTO_ORT_MAX_GFLOP`` per call, else ``AUTO_CPU_BF16`` (``AUTO_CPU_FP32`` without native bf16).
    CUDA: channels_last with bf16 autocast.
    """
    return explain_auto(device, batch_size, gflops, images, model, threads)[0]


def auto_choices(model: str, gflops: float, batch_sizes: Sequence[int] = (1, 64, 256),
                 threads: int | None = None) -> list[dict[str, Any]]:
    """What ``auto`` runs for ``model`` (``gflops`` per image) on this machine's CPU per batch size, and why:
    ``zoo info MODEL`` shows it."""
    return [dict(zip(("batch_size", "backend", "why"), (b, *explain_auto("cpu", b, gflops, None, model, threads))))
            for b in batch_sizes]


def auto_rule() -> dict[str, str]:
    """What ``auto`` stands for on this machine, in words, per device."""
    measured = _measured()
    large = AUTO_CPU_BF16 if cpu_has_bf16() else AUTO_CPU_FP32
    if measured and measured.get("points"):
        points = sorted(measured["points"], key=lambda p: p["gflop_per_call"])
        spans: list[list[Any]] = []  # [winner, low, high]
        for p in points:
            won = _pick(p["candidates"], None) or large
            if spans and spans[-1][0] == won:
                spans[-1][2] = p["gflop_per_call"]
            else:
                spans.append([won, p["gflop_per_call"], p["gflop_per_call"]])
        words = "; ".join(f"{w} ({lo:.2g}-{hi:.3g} GFLOP per call)" if lo != hi else f"{w} ({lo:.3g} GFLOP)"
                          for w, lo, hi in spans)
        where = measured["machine"] if cpu_class() in measured["machine"] else f"{measured['machine']} ({cpu_class()})"
        cpu = (f"measured on {where} on {measured['recorded']}: {words}; "
               "a pass over a dataset counts setup time too")
    else:
        missing = missing_dependency(parse_backend(AUTO_CPU_SMALL))
        cpu = (f"not measured for {cpu_class()}: "
               + (large if missing else f"{AUTO_CPU_SMALL} up to {AUTO_ORT_MAX_GFLOP:g} GFLOP per call, else {large}"))
    return {"cpu": cpu, "cuda": AUTO_CUDA}



def resolve(spec: str | Sequence[str], model: nn.Module | None = None, *, input_size: tuple[int, ...] | None = None,
            device: str | torch.device = "cpu", batch_size: int = 256, gflops: float | None = None,
            images: int | None = None, name: str | None = None, threads: int | None = None,
            int8: Sequence[str] | None = None) -> tuple[str, ...]:
    """The modifiers that backend ``spec`` runs: a spec string, ``auto``, ``auto-int8``, or modifiers already parsed.

    ``auto`` is resolved for calls of ``batch_size`` images of ``gflops`` GFLOPs each (counted on ``model`` at
    ``input_size`` when not given), and for a pass over ``images`` images, where setup time counts too;
    ``name`` (the registered model) and ``threads`` find this machine's own tuning. ``auto-int8`` also weighs
    the int8 runners ``int8`` names (default: those the checkpoint ``model`` was built with may use, ``int8_of``).
    """
    if not isinstance(spec, str):
        return tuple(spec)
    if spec not in AUTO_SPECS:
        return parse_backend(spec)
    if gflops is None:
        gflops = model_gflops(model, input_size, device)
    allowed = () if spec == "auto" else (int8_of(model)[0] if int8 is None else tuple(int8))
    return parse_backend(explain_auto(device, batch_size, gflops, images, name, threads, allowed)[0])


def int8_of(model: nn.Module | None) -> tuple[tuple[str, ...], str]:
    """``int8_allowed`` for the checkpoint ``model`` was built with (``model.pretrained_cfg``: its name and sha256)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return int8_allowed(cfg.get("weights"), cfg.get("sha256"))


def model_gflops(model: nn.Module | None, input_size: tuple[int, ...] | None,
                 device: str | torch.device = "cpu") -> float | None:
    """GFLOPs of one image through ``model`` (what ``auto`` weighs on the CPU), or None when unknown."""
    if model is None or input_size is None or torch.device(device).type != "cpu":
        return None
    from ..builder import count_flops

    try:
        return count_flops(model, tuple(input_size)) / 1e9
    except Exception:  # noqa: BLE001  (input the model cannot take: the caller's shape check says so in one line)
        return None


def fallbacks(mods: tuple[str, ...], device: str | torch.device) -> list[tuple[str, ...]]:
    """``auto``'s choice, then the simpler settings to try should it fail on a model (an export, or torch.fx
    tracing for fold-bn): BatchNorm folded and channels_last, then channels_last alone."""
    tries = [mods]
    if torch.device(device).type == "cpu":
        plain = parse_backend(AUTO_CPU_BF16 if cpu_has_bf16() else AUTO_CPU_FP32)
        tries += [plain, tuple(m for m in plain if m != "fold-bn")]
    return list(dict.fromkeys(tries))
