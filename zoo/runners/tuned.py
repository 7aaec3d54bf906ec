"""The local tuning table: what ``auto`` measured on this very machine, read before the shipped table.

``zoo bench --tune`` (and, once, a large ``zoo-eval`` of an untuned model: ``zoo.benchmark.maybe_tune``) times
``AUTO_CANDIDATES`` side by side for one model at the batch sizes in use and stores the result here; ``auto``
(``zoo.runners.auto.resolve_auto``) reads it first, then ``zoo/runners/auto.json``, then its fallback rule.

One file per model, ``$XDG_CACHE_HOME/zoo/tuning/<model>.json`` (``~/.cache/zoo/tuning/``, or
``$ZOO_TUNING_DIR``), holds one entry per
machine, keyed by what decides speed (``machine_key``): the CPU's name, family and model, its SIMD flags, the
thread count and the versions of torch, onnxruntime and OpenVINO. A file is written whole and atomically
(``zoo.utils.fileio``): two processes tuning at once leave one complete file, the last writer's. A damaged
file, or an entry whose recorded machine is not this one, is ignored with a one-line warning.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidArgumentError, ZooError
from ..utils.fileio import atomic_write_text, check_name, read_json
from ..utils.machine import cpu_family_model, cpu_flags, device_name

__all__ = ["LOCAL_BATCH_SPAN", "TUNING_FORMAT", "autotune_mode", "machine_key", "read_entry", "tuned_point",
           "tuning_dir", "tuning_path", "write_points"]

_logger = logging.getLogger(__name__)

TUNING_FORMAT = "zoo-tuning-1"
# The flags whose presence changes which kernels run (oneDNN, onnxruntime's MLAS, OpenVINO's CPU plugin).
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
               "amx_int8", "asimd", "sve")
LOCAL_BATCH_SPAN = 2.0  # a tuned point stands for batch sizes within this factor of its own
_warned: set[str] = set()


def tuning_dir() -> Path:
    """``$ZOO_TUNING_DIR``, else ``$XDG_CACHE_HOME/zoo/tuning`` (``~/.cache/zoo/tuning``)."""
    if os.environ.get("ZOO_TUNING_DIR"):
        return Path(os.environ["ZOO_TUNING_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "zoo" / "tuning"


def tuning_path(model: str) -> Path:
    """The tuning file of ``model`` (a registered name: it becomes a file name, so it is checked as one)."""
    return tuning_dir() / f"{check_name(model, 'model name')}.json"


def autotune_mode() -> str:
    """``ZOO_AUTOTUNE``: ``off`` (``0``, ``off``, ``false``, ``no``), ``always`` (``1``, ``always``: tune any untuned
    pass, however small), else ``auto`` (the default: tune before a pass large enough to pay for it)."""
    value = os.environ.get("ZOO_AUTOTUNE", "").strip().lower()
    if value in ("0", "off", "false", "no"):
        return "off"
    return "always" if value in ("1", "always", "yes", "true") else "auto"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_key(threads: int | None = None) -> dict[str, Any]:
    """What decides which backend is fastest here: the CPU, its SIMD flags, the thread count, the packages."""
    flags = cpu_flags()
    return {"cpu": device_name("cpu"), "family_model": list(cpu_family_model() or ()),
            "flags": [f for f in SPEED_FLAGS if f in flags], "threads": int(threads or torch.get_num_threads()),
            "torch": torch.__version__, "onnxruntime": _version("onnxruntime"), "openvino": _version("openvino")}


def _key_id(machine: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:16]


def _warn_once(message: str, *args: Any) -> None:
    text = message % args
    if text not in _warned:
        _warned.add(text)
        _logger.warning(text)


def _read_file(path: Path) -> dict[str, Any]:
    """The file's entries, or {} (a damaged file warns once)."""
    if not path.is_file():
        return {}
    try:
        data = read_json(path, "zoo's tuning table")
        if not isinstance(data, dict) or data.get("format") != TUNING_FORMAT or not isinstance(data.get("entries"),
                                                                                                dict):
            raise ZooError(f"{path} is not a zoo tuning table ({TUNING_FORMAT})")
    except ZooError as e:
        _warn_once("ignoring the tuning table %s: auto uses the shipped table until it is tuned again", e)
        return {}
    return data["entries"]


def _valid_points(points: Any) -> bool:
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0

    return isinstance(points, list) and bool(points) and all(
        isinstance(p, dict) and isinstance(p.get("batch_size"), int) and p["batch_size"] >= 1
        and number(p.get("gflop_per_call")) and isinstance(p.get("candidates"), dict) and p["candidates"]
        and all(isinstance(c, dict) and number(c.get("images_per_s")) and number(c.get("setup_s", 0.0))
                for c in p["candidates"].values()) for p in points)


def read_entry(model: str, threads: int | None = None) -> dict[str, Any] | None:
    """This machine's entry for ``model`` (``{"machine", "recorded", "points"}``), or None when it is untuned.

    An entry under this machine's key whose recorded machine differs (a copied or edited cache), or whose
    points are malformed, is ignored with a one-line warning."""
    path = tuning_path(model)
    machine = machine_key(threads)
    entry = _read_file(path).get(_key_id(machine))
    if entry is None:
        return None
    if not isinstance(entry, dict) or entry.get("machine") != machine:
        _warn_once("ignoring %s's tuning in %s: it was recorded on another machine (%s); auto uses the shipped table",
                   model, path, entry.get("machine", {}).get("cpu", "unknown") if isinstance(entry, dict) else "?")
        return None
    if not _valid_points(entry.get("points")):
        _warn_once("ignoring %s's tuning in %s: its points are malformed; auto uses the shipped table", model, path)
        return None
    return entry


def write_points(model: str, points: list[dict[str, Any]], threads: int | None = None) -> Path:
    """Store ``points`` (``{"batch_size", "gflop_per_call", "candidates": {spec: {"images_per_s", "setup_s"}}}``)
    as this machine's tuning of ``model``, replacing points of the same batch size; atomically."""
    path = tuning_path(model)
    machine = machine_key(threads)
    entries = _read_file(path)
    key = _key_id(machine)
    old = read_entry(model, threads) if key in entries else None
    merged = {p["batch_size"]: p for p in (old["points"] if old else [])}
    merged.update({p["batch_size"]: p for p in points})
    entries[key] = {"machine": machine, "recorded": datetime.date.today().isoformat(),
                    "points": [merged[b] for b in sorted(merged)]}
    atomic_write_text(path, json.dumps({"format": TUNING_FORMAT, "model": model, "entries": entries}, indent=1) + "\n")
    return path


def tuned_point(model: str | None, threads: int | None, batch_size: int) -> tuple[dict[str, Any], str] | None:
    """The point of this machine's own tuning of ``model`` nearest ``batch_size`` (within a factor of
    ``LOCAL_BATCH_SPAN``) and where it comes from, in words; None when ``model`` is untuned here at that size."""
    if not model:
        return None
    try:
        entry = read_entry(model, threads)
    except InvalidArgumentError:  # timm/..., hf-hub:...: not a name a tuning file can have
        return None
    if entry is None:
        return None
    point = min(entry["points"], key=lambda p: abs(math.log(p["batch_size"] / batch_size)))
    if abs(math.log(point["batch_size"] / batch_size)) > math.log(LOCAL_BATCH_SPAN):
        return None
    t = entry["machine"]["threads"]
    return point, (f"tuned on this machine on {entry['recorded']} for {model} at batch {point['batch_size']}, "
                   f"{t} thread{'s' if t != 1 else ''} ({tuning_path(model)})")
