"""Tuning ``auto`` on the machine at hand: ``zoo bench --tune``, and once on its own before a large pass.

``tune`` times the installed ``AUTO_CANDIDATES`` side by side for one model at the batch sizes in use
(``zoo.benchmark.bench``: interleaved calls, each setting's export and first call counted as its setup) and
stores the result in this machine's tuning table (``zoo.runners.tuned``), which ``auto`` reads first.
``maybe_tune`` does it before a ``zoo-eval`` pass of at least ``AUTOTUNE_MIN_IMAGES`` images (a test split, not
a single ``zoo predict``) of a model untuned here at that batch size; ``ZOO_AUTOTUNE=0`` turns that off and
``ZOO_AUTOTUNE=1`` tunes before any pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..errors import InvalidArgumentError
from ..registry import get_entry, parse_model_name
from ..runners import (
    AUTO_CANDIDATES,
    AUTO_INT8_CANDIDATES,
    autotune_mode,
    missing_dependency,
    parse_backend,
    precision_of,
    resolve_auto,
    tuning_path,
    write_points,
)
from ..runners.tuned import tuned_point
from ..utils.machine import cpu_has_bf16, cpu_name
from . import bench

__all__ = ["AUTOTUNE_MIN_IMAGES", "TuneResult", "maybe_tune", "tune"]

_logger = logging.getLogger(__name__)

AUTOTUNE_MIN_IMAGES = 5_000  # a pass this large pays for tuning once (seconds); a prediction of a few images does not


@dataclass
class TuneResult:
    """What ``tune`` measured and stored: per batch size, each candidate's images/s and setup time, the winner."""

    model: str
    threads: int
    machine: str
    path: str
    points: list[dict[str, Any]]
    winners: dict[int, str]
    wall_s: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def summary(self) -> str:
        won = ", ".join(f"batch {b}: {w}" for b, w in self.winners.items())
        return (f"auto tuned for {self.model} on this machine in {self.wall_s:.1f} s (fastest per call: {won}); "
                f"stored in {self.path}")


def _candidates(int8: bool) -> list[str]:
    """The installed candidates that can win here (bf16 ones only where the CPU runs bf16 natively; the int8
    runners when ``int8``, for ``auto-int8``)."""
    bf16 = cpu_has_bf16()
    return [c for c in (*AUTO_CANDIDATES, *(AUTO_INT8_CANDIDATES if int8 else ()))
            if missing_dependency(parse_backend(c)) is None and (bf16 or precision_of(parse_backend(c)) != "bf16")]


def tune(name: str, *, batch_sizes: Sequence[int] = (1, 64, 256), threads: int | None = None,
         min_time_s: float = 0.3, int8: bool = False) -> TuneResult:
    """Time ``auto``'s candidates for ``name`` at ``batch_sizes`` on this machine and store the result.

    Args:
        name: a registered architecture (its speed does not depend on the weights: it is built with random ones).
        batch_sizes: the batch sizes to tune at.
        threads: CPU threads (default: torch's current count); the result is stored for this count.
        min_time_s: seconds of timed calls for the slowest candidate at each batch size (at least 3 calls each).
        int8: time the int8 runners too (calibrated on training images when they are here, else on random
            inputs: enough for their speed), for ``auto-int8``.

    Returns:
        A ``TuneResult``: the stored points, the winner per batch size and where they are stored.

    Raises:
        InvalidArgumentError: ``name`` is not a registered zoo model (``timm/...`` and hub models are not tuned).
    """
    if parse_model_name(name)[0] != "zoo":
        raise InvalidArgumentError(f"only zoo's registered models are tuned, not {name!r}")
    get_entry(name)
    t = int(threads or torch.get_num_threads())
    t0 = time.perf_counter()
    report = bench([name], backends=_candidates(int8), batch_sizes=batch_sizes, threads=[t], warmup=1,
                   min_time_s=min_time_s, min_repeats=3, peak=False)
    points = []
    for b in batch_sizes:
        rows = [r for r in report.rows if r.batch_size == b and r.ok and r.images_per_s]
        if rows:
            points.append({"model": name, "batch_size": b, "gflop_per_call": round(rows[0].gflops_per_image * b, 6),
                           "candidates": {r.setting: {"images_per_s": r.images_per_s,
                                                      "setup_s": round((r.prepare_s or 0) + (r.first_call_s or 0), 3)}
                                          for r in rows}})
    if not points:
        raise InvalidArgumentError(f"no candidate ran {name} here; auto keeps the shipped table")
    path = write_points(name, points, t)
    winners = {p["batch_size"]: resolve_auto("cpu", p["batch_size"], model=name, threads=t) for p in points}
    failed = [f"{r.backend} at batch {r.batch_size}: {r.status}" for r in report.rows if not r.ok]
    result = TuneResult(name, t, cpu_name(), str(path), points, winners, round(time.perf_counter() - t0, 1), failed)
    _logger.info("%s", result.summary)
    return result


def maybe_tune(name: str, *, batch_size: int, images: int, device: str | torch.device = "cpu",
               threads: int | None = None, int8: bool = False) -> TuneResult | None:
    """Tune ``name`` at ``batch_size`` before a pass over ``images`` images, when that pays and is allowed.

    Only on the CPU, for a registered model untuned here at that batch size, with ``ZOO_AUTOTUNE`` not ``0``,
    and (unless ``ZOO_AUTOTUNE=1``) for at least ``AUTOTUNE_MIN_IMAGES`` images. A failure to tune is logged and
    leaves ``auto`` on the shipped table.
    """
    mode = autotune_mode()
    if torch.device(device).type != "cpu" or mode == "off" or parse_model_name(name)[0] != "zoo":
        return None
    if mode == "auto" and images < AUTOTUNE_MIN_IMAGES:
        return None
    point = tuned_point(name, threads, batch_size)
    if point is not None and (not int8 or set(AUTO_INT8_CANDIDATES) & set(point[0]["candidates"])):
        return None
    _logger.info("tuning auto for %s at batch %d on this machine, once (ZOO_AUTOTUNE=0 turns it off; stored in %s)",
                 name, batch_size, tuning_path(name))
    try:
        return tune(name, batch_sizes=(batch_size,), threads=threads, int8=int8)
    except Exception as e:  # noqa: BLE001  (tuning is an optimisation: the pass goes on with the shipped table)
        _logger.warning("tuning auto for %s failed (%s); using the shipped table", name, e)
        return None
