"""Measuring on the machine: its matmul peak in GFLOP/s (``measure_peak``, cached per machine, thread count and
torch version), the memory one forward pass needs (``peak_memory_mb``), one call's time (``Timer``), and
percentiles. ``zoo.benchmark`` measures with them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ZooError
from .fileio import atomic_write_text, read_json
from .machine import cpu_description, cpu_has_bf16, device_name

__all__ = ["Peak", "measure_peak", "peak_cache_path", "peak_memory_mb", "Timer", "percentile", "torch_threads"]

_logger = logging.getLogger(__name__)


@dataclass
class Peak:
    """Measured matmul peak of a device in GFLOP/s per precision (best of repeated runs)."""

    key: str
    fp32: float
    bf16: float | None
    method: str
    loadavg: list[float] | None
    measured_at: str

    def of(self, precision: str) -> float | None:
        """The peak of ``precision`` (fp32 or bf16); None for int8, which the probe does not measure."""
        return {"bf16": self.bf16, "fp32": self.fp32}.get(precision)


def peak_cache_path() -> Path:
    """``$XDG_CACHE_HOME/zoo/peak.json`` (``~/.cache/zoo/peak.json``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "zoo" / "peak.json"


def _read_peaks(cache: Path) -> dict[str, Any]:
    """The peak cache's entries; a damaged or foreign file is ignored with a warning (and rewritten)."""
    if not cache.is_file():
        return {}
    try:
        stored = read_json(cache, "zoo's peak cache")
    except ZooError as e:
        _logger.warning("ignoring the unreadable peak cache: %s", e)
        return {}
    if not isinstance(stored, dict):
        _logger.warning("ignoring the peak cache %s: it holds a %s, not an object", cache, type(stored).__name__)
        return {}
    return stored


def _peak_of(entry: Any) -> Peak:
    peak = Peak(**entry)
    for value in (peak.fp32, peak.bf16):
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and math.isfinite(value) and value > 0):
            raise ValueError(f"not a peak: {value!r}")
    return peak


def _peak_key(device: torch.device, threads: int) -> str:
    what = device_name(device) if device.type == "cuda" else cpu_description(threads)
    return f"{what} | torch {torch.__version__}"


def _best_gflops(fn: Callable[[], Any], flops: float, device: torch.device, seconds: float) -> float:
    """Best GFLOP/s of ``fn`` over repeated calls for about ``seconds`` (at least 3 calls)."""
    fn()
    best, spent, calls = math.inf, 0.0, 0
    while calls < 3 or spent < seconds:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        took = time.perf_counter() - start
        best, spent, calls = min(best, took), spent + took, calls + 1
    return flops / best / 1e9


def _probe(device: torch.device, dtype: torch.dtype, seconds: float) -> float:
    """Best GFLOP/s of square matmuls (torch.mm, and oneDNN's linear on the CPU) at two sizes.

    The best call, not the median: on a shared machine the probe should find what the hardware can do
    when it gets the core, which is also what the fastest model runs get.
    """
    best = 0.0
    sizes = (1024, 2048) if device.type == "cpu" else (4096, 8192)
    with torch.inference_mode():
        for n in sizes:
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            best = max(best, _best_gflops(lambda: torch.mm(a, b), 2 * n**3, device, seconds))
            if device.type == "cpu" and torch.backends.mkldnn.is_available():
                # oneDNN's kernels (what convolutions and compiled linears use) beat MKL's sgemm on some CPUs
                try:
                    am, bm = a.to_mkldnn(), b.to_mkldnn()
                    best = max(best, _best_gflops(lambda: torch._C._nn.mkldnn_linear(am, bm, None),
                                                  2 * n**3, device, seconds))
                    packed = torch.ops.mkldnn._reorder_linear_weight(b, n)  # as inductor's frozen linears
                    best = max(best, _best_gflops(
                        lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], ""),
                        2 * n**3, device, seconds))
                except (RuntimeError, AttributeError) as e:
                    _logger.debug("oneDNN linear probe failed: %s", e)
    return best


def measure_peak(device: str | torch.device = "cpu", *, threads: int | None = None, refresh: bool = False,
                 cache: Path | None = None, seconds: float = 1.5) -> Peak:
    """The matmul peak of ``device`` (fp32, bf16), measured once and cached per machine, threads and torch.

    ``refresh`` measures again (do it when the machine's load has changed: the probe sees the same
    contention as the models do). ``cache``: the JSON file (default ``peak_cache_path()``).
    ``seconds``: time spent per matmul size, method and precision (12 of them on a CPU with bf16).
    """
    device = torch.device(device)
    threads = threads or torch.get_num_threads()
    cache = cache or peak_cache_path()
    key = _peak_key(device, threads)
    stored = _read_peaks(cache)
    if key in stored and not refresh:
        try:
            return _peak_of(stored[key])
        except (TypeError, ValueError):  # written by another version of zoo, or damaged: measure again
            _logger.warning("ignoring the damaged entry %r of the peak cache %s: measuring again", key, cache)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _logger.info("measuring the matmul peak of %s (fp32, bf16)", key)
        fp32 = _probe(device, torch.float32, seconds)
        has_bf16 = device.type == "cuda" or cpu_has_bf16()
        bf16 = _probe(device, torch.bfloat16, seconds) if has_bf16 else None
    finally:
        torch.set_num_threads(previous)
    method = (f"best call of square matmuls repeated for {seconds:g} s each, n in 1024, 2048: torch.mm, oneDNN "
              "linear, oneDNN linear with a pre-packed weight" if device.type == "cpu" else
              f"best call of square torch.mm repeated for {seconds:g} s each, n in 4096, 8192 (fp32: TF32 as "
              f"configured, allow_tf32={torch.backends.cuda.matmul.allow_tf32})")
    peak = Peak(key, round(fp32, 1), round(bf16, 1) if bf16 else None, method,
                list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                time.strftime("%Y-%m-%dT%H:%M:%S"))
    stored[key] = asdict(peak)
    atomic_write_text(cache, json.dumps(stored, indent=2) + "\n")
    return peak


def _rss_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise OSError(field_name)


def _malloc_trim() -> None:
    try:
        import ctypes
        import ctypes.util

        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def peak_memory_mb(run: Callable[[torch.Tensor], Any], x: torch.Tensor, device: torch.device) -> float | None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        run(x)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        _malloc_trim()  # return freed heap pages, so that reused free memory does not hide the forward's needs
        before = _rss_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak resident set (VmHWM) to now
        run(x)
        return max(0, _rss_kib("VmHWM") - before) / 1024
    except OSError:
        return None


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if n and n != previous:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and n != previous:
            torch.set_num_threads(previous)


class Timer:
    """Seconds of one call of ``run(x)`` on ``device`` (CUDA: CUDA events, synchronised)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self, run: Callable[[torch.Tensor], Any], x: torch.Tensor) -> float:
        """Seconds for one call."""
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run(x)
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        run(x)
        return time.perf_counter() - t0


def percentile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
