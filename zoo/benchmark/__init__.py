"""Inference throughput and latency per model, device, backend, batch size and thread count: ``bench``.

A *setting* is a backend spec (``zoo.runners``: ``eager``, ``fold-bn+channels-last+bf16-cast``,
``onnxruntime``, ``auto``, ...) and a thread count.

How it measures, per model, device and batch size:

- every setting is prepared (folded, exported, compiled) and warmed up (``warmup`` calls; the first
  call, where ``torch.compile`` compiles, is timed separately as ``first_call_s``);
- timed calls then run **interleaved**, one call of each setting per round, so a background load
  that comes and goes hits every setting alike and the ratios stay comparable;
- each call takes fp32 NCHW on the device and returns fp32 logits: casts and layout changes are inside
  the timed call. CUDA calls are timed with CUDA events and synchronised;
- GFLOP/s come from the model's FLOP count (``zoo.model_info(name).gflops``) and are compared with
  the machine's measured peak of the setting's precision (``measure_peak``: a matmul probe, fp32 and
  bf16, cached per machine, thread count and torch version in ``~/.cache/zoo/peak.json``);
- peak memory: CPU, the growth of the process's resident set during one forward pass, after freed heap
  pages are handed back (Linux: ``malloc_trim``, then ``/proc/self/clear_refs`` resets the peak), i.e.
  activations and workspace, not weights; onnxruntime keeps the arena it grew in the warm-up, so its
  growth reads near 0. CUDA: ``torch.cuda.max_memory_allocated`` during one forward pass (weights included);
- every output is compared with eager fp32 on the same input (max abs difference, argmax agreement).

A device, backend or dependency that is not there gives rows with a ``status`` that says so
("no CUDA device", "not installed: onnxruntime", "failed: ..."), never an exception.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import InvalidArgumentError, one_line
from ..registry import get_entry, parse_model_name
from ..runners import AUTO_SPECS, auto_rule, explain_auto, int8_allowed, parse_backend, precision_of, resolve
from ..runners.peers import PEERS, is_peer
from ..utils.machine import machine_info
from ..utils.measure import Peak, Timer, measure_peak, peak_cache_path, peak_memory_mb, percentile, torch_threads
from .settings import Setting, input_batch, prepare_setting, time_interleaved, warm_up

__all__ = ["BenchRow", "BenchReport", "Peak", "bench", "measure_peak", "peak_cache_path"]

_logger = logging.getLogger(__name__)

MAX_BATCH_SIZE = 65_536  # zoo bench -b: more is a typo, not a benchmark


@dataclass
class BenchRow:
    """One model x device x backend x batch size x thread count. ``status`` is "ok" or why there are no numbers."""

    model: str
    device: str
    backend: str  # as asked, e.g. "auto"
    setting: str  # the modifiers it ran with, e.g. "bf16-cast+fold-bn+channels-last"
    batch_size: int
    threads: int | None
    status: str = "ok"
    precision: str = "fp32"
    gflops_per_image: float = 0.0
    repeats: int = 0
    median_ms: float | None = None
    p90_ms: float | None = None
    best_ms: float | None = None
    images_per_s: float | None = None
    gflop_per_s: float | None = None
    peak_gflop_per_s: float | None = None
    peak_share: float | None = None  # gflop_per_s / peak of this precision (median latency)
    peak_share_best: float | None = None  # the same from the best call (the probe's peak is a best call too)
    peak_memory_mb: float | None = None
    speedup_vs_eager: float | None = None  # eager fp32 median / this median, same model, device, batch, threads
    cuda_speedup: float | None = None  # on CUDA rows: images/s over the CPU row of the same backend and batch
    max_abs_diff: float | None = None  # logits vs eager fp32, same input
    argmax_agreement: float | None = None
    prepare_s: float | None = None
    first_call_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), ok=self.ok)


@dataclass
class BenchReport:
    rows: list[BenchRow]
    machine: dict[str, Any]
    peaks: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    loadavg_end: list[float] | None
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "loadavg_end": self.loadavg_end, "wall_s": self.wall_s,
                "settings": self.settings, "peaks": self.peaks, "rows": [r.to_dict() for r in self.rows]}


def _build_model(name: str, seed: int) -> tuple[nn.Module, tuple[int, ...], float]:
    """The model (eval, CPU), its input size and its GFLOPs per image."""
    from ..builder import count_flops, create, model_info

    torch.manual_seed(seed)
    if parse_model_name(name)[0] == "timm":
        model = create(name, num_classes=10).eval()
        input_size = (3, 32, 32)
        return model, input_size, count_flops(model, input_size) / 1e9
    info = model_info(name)
    return create(name).eval(), tuple(info.input_size), info.gflops


@contextlib.contextmanager
def _compile_cache_room() -> Iterator[None]:
    """Copies of one model class share Dynamo's per-function compile cache (8 entries by default): one
    entry per setting, thread count and batch size would overflow it and fall back to eager silently."""
    import torch._dynamo.config as dynamo_config

    with dynamo_config.patch(recompile_limit=max(dynamo_config.recompile_limit, 64)):
        yield


_Key = tuple[tuple[str, ...], "int | None"]  # (modifiers, threads)


def bench(models: Sequence[str], *, devices: Sequence[str] = ("cpu",), backends: Sequence[str] = ("eager",),
          batch_sizes: Sequence[int] = (1, 32, 256), threads: Sequence[int] | None = None, warmup: int = 2,
          min_time_s: float = 1.0, min_repeats: int = 5, max_repeats: int = 200, seed: int = 0,
          peak: bool = True, refresh_peak: bool = False, peak_cache: Path | None = None,
          peers: bool = False) -> BenchReport:
    """Benchmark every model x device x backend x batch size x thread count; see the module docstring.

    Args:
        models: registered names or ``timm/<name>``.
        devices: ``cpu``, ``cuda``, ``cuda:N``. Without CUDA, the CUDA rows say "no CUDA device".
        backends: specs for ``parse_backend``, or ``auto`` (``resolve_auto`` per device and work per call).
            Eager fp32 is always measured, as the baseline of ``speedup_vs_eager`` and of the output
            comparison; its rows are reported when asked for. Specs that resolve to the same setting
            (``auto`` and what it stands for) share one measurement.
        threads: CPU thread counts to compare (torch intra-op threads, and onnxruntime's); default:
            torch's current setting.
        min_time_s: timed rounds continue until the slowest setting has run about this long
            (at least ``min_repeats``, at most ``max_repeats`` calls per setting).
        peak: measure (or read from the cache) the matmul peak and report the share of it.
        peers: add what a user who never heard of zoo would run: zoo's ONNX file in onnxruntime and in OpenVINO,
            each with its own defaults at the same thread count (``zoo.runners.peers``).

    Returns:
        A ``BenchReport``: one ``BenchRow`` per model, device, backend, batch size and thread count (a setting
        that cannot run is a row whose ``status`` says why), the machine, the peaks and the settings.

    Raises:
        InvalidArgumentError: no model, a batch size or thread count out of range, or an unknown backend or device.
    """
    t_start = time.perf_counter()
    if not models:
        raise InvalidArgumentError("no model to benchmark")
    if not batch_sizes or any(not 1 <= b <= MAX_BATCH_SIZE for b in batch_sizes):
        raise InvalidArgumentError(f"batch sizes must be in 1..{MAX_BATCH_SIZE:,}, got "
                                   f"{one_line(str(list(batch_sizes)), 200)}")
    thread_list = [int(t) for t in threads] if threads else [torch.get_num_threads()]
    if any(not 1 <= t <= 1024 for t in thread_list):
        raise InvalidArgumentError(f"thread counts must be in 1..1024, got {thread_list}")
    asked = list(dict.fromkeys([*backends, *(PEERS if peers else ())]))
    for spec in asked:
        if spec not in AUTO_SPECS and not is_peer(spec):
            parse_backend(spec)
    for dev_name in devices:
        try:
            kind = torch.device(dev_name).type
        except (RuntimeError, TypeError):
            kind = None
        if kind not in ("cpu", "cuda"):
            raise InvalidArgumentError(f"unsupported device {dev_name!r}; use cpu or cuda")
    info = machine_info()
    rows: list[BenchRow] = []
    peaks: dict[str, dict[str, Any]] = {}
    for dev_name in devices:
        device = torch.device(dev_name)
        dev_threads: list[int | None] = list(thread_list) if device.type == "cpu" else [None]
        if device.type == "cuda" and not torch.cuda.is_available():
            rows += [BenchRow(name, str(device), spec, "+".join(_mods(spec, device, b)), b, None,
                              status="no CUDA device", precision=precision_of(_mods(spec, device, b)))
                     for name in models for spec in asked for b in batch_sizes]
            continue
        dev_peaks: dict[int | None, Peak | None] = {}
        for t in dev_threads:
            dev_peaks[t] = measure_peak(device, threads=t, refresh=refresh_peak, cache=peak_cache) if peak else None
            if dev_peaks[t] is not None:
                peaks[f"{device}, {t} threads" if t else str(device)] = asdict(dev_peaks[t])
        for name in models:
            with _compile_cache_room():
                rows += _bench_model(name, device, asked, batch_sizes, dev_threads, dev_peaks, warmup, min_time_s,
                                     min_repeats, max_repeats, seed)
    _cuda_speedups(rows, thread_list[0])
    above = [r for r in rows if r.peak_share and r.peak_share > 1.2]
    if above:
        _logger.warning("%d rows ran above 120%% of the cached matmul peak (up to %.0f%%): the peak was probably "
                        "measured under more load than now; measure it again with refresh_peak=True "
                        "(zoo bench --refresh-peak)", len(above), 100 * max(r.peak_share for r in above))
    settings = {"devices": list(devices), "backends": asked, "batch_sizes": list(batch_sizes), "threads": thread_list,
                "warmup": warmup, "min_time_s": min_time_s, "min_repeats": min_repeats, "max_repeats": max_repeats,
                "seed": seed, "auto": auto_rule(), "peers": list(PEERS) if peers else []}
    return BenchReport(rows, info, peaks, settings, list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                       round(time.perf_counter() - t_start, 1))


def _mods(spec: str, device: torch.device, batch_size: int, gflops: float | None = None, name: str | None = None,
          threads: int | None = None) -> tuple[str, ...]:
    if is_peer(spec):
        return (spec,)
    return resolve(spec, device=device, batch_size=batch_size, gflops=gflops, name=name, threads=threads,
                   int8=_int8(spec, name))


def _int8(spec: str, name: str | None) -> tuple[str, ...]:
    """The int8 runners ``auto-int8`` may pick for ``name``: bench times random weights, so its default released
    checkpoint's record decides (``zoo.runners.auto.int8_allowed``)."""
    if spec != "auto-int8" or not name or parse_model_name(name)[0] != "zoo" or not get_entry(name).weights:
        return ()
    w = get_entry(name).weights[0]
    return int8_allowed(w.name, w.sha256)[0]


def _bench_model(name: str, device: torch.device, asked: list[str], batch_sizes: Sequence[int],
                 dev_threads: list[int | None], dev_peaks: dict[int | None, Peak | None], warmup: int,
                 min_time_s: float, min_repeats: int, max_repeats: int, seed: int) -> list[BenchRow]:
    model, input_size, gflops = _build_model(name, seed)
    specs = ["eager", *[s for s in asked if s != "eager"]]
    settings: dict[_Key, Setting] = {}
    rows: list[BenchRow] = []
    timer = Timer(device)
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        for b in batch_sizes:
            wanted: dict[tuple[str, int | None], _Key] = {}
            for t in dev_threads:
                for spec in specs:
                    key = (_mods(spec, device, b, gflops, name, t), t)
                    wanted[(spec, t)] = key
                    if key not in settings:
                        settings[key] = prepare_setting(model, name, key[0], device, input_size, t, Path(tmp))
                        _logger.info("%s on %s, %s threads: prepared %s (%s)", name, device, t, "+".join(key[0]),
                                     settings[key].status)
            live = [settings[k] for k in dict.fromkeys(wanted.values()) if settings[k].status == "ok"]
            x = input_batch(b, input_size, seed, device)
            for s in live:
                warm_up(s, x, timer, warmup)
            live = [s for s in live if s.batch_status == "ok"]
            time_interleaved(live, x, timer, min_time_s, min_repeats, max_repeats)
            for s in live:
                with torch_threads(s.threads), torch.inference_mode():
                    s.memory_mb = peak_memory_mb(s.run, x, device)
            group: dict[tuple[str, int | None], BenchRow] = {}
            for (spec, t), key in wanted.items():
                group[(spec, t)] = _row(name, device, spec, b, gflops, settings[key], settings[wanted[("eager", t)]],
                                        dev_peaks.get(t))
            for (spec, t), row in group.items():
                if spec in AUTO_SPECS and device.type == "cpu":
                    why = explain_auto(device, b, gflops, None, name, t, _int8(spec, name))[1]
                    row.notes.insert(0, f"{spec} ran {row.setting}: {why}")
            rows += [r for (spec, _), r in group.items() if spec in asked]
            _logger.info("%s on %s, batch %d: %s", name, device, b,
                         ", ".join(f"{r.backend}@{r.threads}: {r.images_per_s or 0:.0f} img/s" for r in group.values()))
    return rows


def _row(name: str, device: torch.device, spec: str, b: int, gflops: float, s: Setting, eager: Setting,
         peak: Peak | None) -> BenchRow:
    status = s.status if s.status != "ok" else s.batch_status
    row = BenchRow(name, str(device), spec, "+".join(s.mods), b, s.threads, status=status,
                   gflops_per_image=round(gflops, 6), prepare_s=_round(s.prepare_s, 2),
                   notes=list(s.prepared.notes) if s.prepared else [])
    if status != "ok" or not s.times:
        return row
    row.precision = s.prepared.precision
    row.first_call_s = _round(s.first_call_s, 3)
    row.repeats = len(s.times)
    median, best = percentile(s.times, 0.5), min(s.times)
    row.median_ms, row.p90_ms, row.best_ms = _ms(median), _ms(percentile(s.times, 0.9)), _ms(best)
    row.images_per_s = round(b / median, 2)
    row.gflop_per_s = round(gflops * b / median, 2)
    row.peak_memory_mb = _round(s.memory_mb, 1)
    if peak is not None and peak.of(row.precision):
        row.peak_gflop_per_s = peak.of(row.precision)
        row.peak_share = round(row.gflop_per_s / row.peak_gflop_per_s, 4)
        row.peak_share_best = round(gflops * b / best / row.peak_gflop_per_s, 4)
    if eager.batch_status == "ok" and eager.status == "ok" and eager.times:
        row.speedup_vs_eager = round(percentile(eager.times, 0.5) / median, 3)
        row.max_abs_diff = float((s.output.float() - eager.output.float()).abs().max())
        row.argmax_agreement = float((s.output.argmax(1) == eager.output.argmax(1)).float().mean())
    return row


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 4)


def _round(v: float | None, n: int) -> float | None:
    return None if v is None else round(v, n)


def _cuda_speedups(rows: list[BenchRow], cpu_threads: int) -> None:
    cpu = {(r.model, r.backend, r.batch_size): r for r in rows
           if r.device == "cpu" and r.ok and r.threads == cpu_threads}
    for r in rows:
        if r.device.startswith("cuda") and r.ok:
            c = cpu.get((r.model, r.backend, r.batch_size))
            if c is not None and c.images_per_s:
                r.cuda_speedup = round(r.images_per_s / c.images_per_s, 2)
