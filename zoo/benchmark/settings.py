"""One setting of ``zoo bench``: a backend spec prepared for a model (or a peer, ``zoo.runners.peers``), warmed
up, and timed in rounds interleaved with the other settings (``zoo.benchmark``'s module docstring says how)."""

from __future__ import annotations

import importlib.util
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import InvalidArgumentError, summarize
from ..registry import get_entry, parse_model_name
from ..runners import EXPORTED, INT8, RunFn, Runner, calibration_images, missing_dependency, prepare
from ..runners.peers import PEERS, is_peer, peer_runner
from ..utils.measure import Timer, torch_threads

__all__ = ["MAX_INPUT_BYTES", "Setting", "input_batch", "prepare_setting", "time_interleaved", "unavailable",
           "warm_up"]

_logger = logging.getLogger(__name__)

MAX_INPUT_BYTES = 2 << 30  # one input batch


@dataclass
class Setting:
    """A prepared setting and what it measured at the current batch size."""

    mods: tuple[str, ...]
    threads: int | None
    prepared: Runner | None = None
    run: RunFn | None = None
    status: str = "ok"
    prepare_s: float | None = None
    # per batch size
    batch_status: str = "ok"
    output: torch.Tensor | None = None
    first_call_s: float | None = None
    times: list[float] = field(default_factory=list)
    memory_mb: float | None = None


def unavailable(mods: tuple[str, ...], device: torch.device) -> str | None:
    """Why setting ``mods`` cannot run on ``device`` here (a row's status), or None."""
    if is_peer(mods):
        if device.type != "cpu":
            return "CPU only (a peer runs zoo's ONNX file on the CPU)"
        return f"not installed: {PEERS[mods[0]]}" if importlib.util.find_spec(PEERS[mods[0]]) is None else None
    missing = missing_dependency(mods)
    if missing:
        return f"not installed: {missing}"
    if device.type == "cuda" and set(mods) & set(EXPORTED):
        return "CPU only (zoo.runners runs exported models on the CPU)"
    if device.type != "cuda" and "cuda-graph" in mods:
        return "CUDA only (CUDA graphs)"
    return None


def prepare_setting(model: nn.Module, name: str, mods: tuple[str, ...], device: torch.device,
                    input_size: tuple[int, ...], threads: int | None, tmp: Path) -> Setting:
    setting = Setting(mods, threads)
    setting.status = unavailable(mods, device) or "ok"
    if setting.status != "ok":
        return setting
    t0 = time.perf_counter()
    try:
        calibration, note = None, None
        if set(mods) & set(INT8):  # the model's training images when they are here, else random inputs
            dataset = get_entry(name).dataset if parse_model_name(name)[0] == "zoo" else None
            calibration, note = calibration_images(dataset, 300, random_shape=input_size)
        with torch_threads(threads):
            if is_peer(mods):  # zoo's ONNX file in a runtime with its own defaults (zoo.runners.peers)
                setting.prepared = peer_runner(mods[0], model, input_size=input_size, threads=threads, workdir=tmp,
                                               name=name)
            else:
                setting.prepared = prepare(model, mods, input_size=input_size, device=device, threads=threads,
                                           workdir=tmp, name=name, calibration=calibration)
        if note:
            setting.prepared.notes.append(note)
        setting.run = setting.prepared
    except Exception as e:  # a backend that fails is a row that says why, never a crash
        setting.status = f"failed: {type(e).__name__}: {summarize(e)}"
        _logger.warning("%s %s on %s: %s", name, "+".join(mods), device, setting.status)
    setting.prepare_s = time.perf_counter() - t0
    return setting


def input_batch(b: int, input_size: tuple[int, ...], seed: int, device: torch.device) -> torch.Tensor:
    """A random batch of ``b`` inputs; one beyond ``MAX_INPUT_BYTES`` or the memory at hand is a one-line error."""
    size = 4 * b * math.prod(input_size)
    if size > MAX_INPUT_BYTES:
        raise InvalidArgumentError(f"batch size {b:,} needs {size / 2**30:,.1f} GiB of input alone, more than the "
                                   f"{MAX_INPUT_BYTES / 2**30:g} GiB zoo bench allows; choose a smaller -b")
    try:
        return torch.randn(b, *input_size, generator=torch.Generator().manual_seed(seed)).to(device)
    except (RuntimeError, MemoryError) as e:  # torch.OutOfMemoryError is a RuntimeError
        raise InvalidArgumentError(f"batch size {b:,} does not fit in memory ({summarize(e)}); choose a smaller -b"
                                   ) from None


def warm_up(s: Setting, x: torch.Tensor, timer: Timer, warmup: int) -> None:
    s.batch_status, s.output, s.first_call_s, s.times, s.memory_mb = "ok", None, None, [], None
    try:
        with torch_threads(s.threads), torch.inference_mode():
            t0 = time.perf_counter()
            s.output = s.run(x)  # torch.compile compiles here, once per batch size
            if x.device.type == "cuda":
                torch.cuda.synchronize(x.device)
            s.first_call_s = time.perf_counter() - t0
            for _ in range(max(0, warmup - 1)):
                timer(s.run, x)
    except Exception as e:
        s.batch_status = f"failed: {type(e).__name__}: {summarize(e)}"
        _logger.warning("%s at batch %d: %s", "+".join(s.mods), x.shape[0], s.batch_status)


def time_interleaved(live: list[Setting], x: torch.Tensor, timer: Timer, min_time_s: float, min_repeats: int,
                      max_repeats: int) -> None:
    """Round-robin timed calls: one call of each setting per round."""
    rounds = 0
    while live and rounds < max_repeats:
        for s in live:
            with torch_threads(s.threads), torch.inference_mode():
                s.times.append(timer(s.run, x))
        rounds += 1
        if rounds >= min_repeats and max(sum(s.times) for s in live) >= min_time_s:
            break
