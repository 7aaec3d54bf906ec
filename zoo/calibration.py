"""Calibration: how well a classifier's confidence matches its accuracy, and temperature scaling.

- **ECE**, the expected calibration error of the top-label confidence (Guo et al. 2017; Naeini et al. 2015):
  the images are put into ``BINS`` (15) equal-width bins of their top softmax probability, bin ``b`` covering
  ``(b/15, (b+1)/15]``, and ECE is the image-weighted mean over the bins of ``|accuracy - mean confidence|``,
  in percent (points of top-1).
- **NLL**, the mean negative log-likelihood of the true class (the cross-entropy, ``loss`` in the metrics).
- **Brier score**, the mean over images of ``sum_c (p_c - [c = y])^2`` (0 is perfect, 2 the worst).
- **Temperature scaling** (Guo et al. 2017): one ``T > 0`` that divides every logit, fitted to minimise the NLL
  on held-out images (``fit_temperature``); top-1 is unchanged, the confidences move.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .errors import InvalidArgumentError

__all__ = ["BINS", "CalibrationStats", "calibration_metrics", "reliability_bins", "expected_calibration_error",
           "fit_temperature"]

BINS = 15
ECE_DEFINITION = (f"top-label ECE, {BINS} equal-width confidence bins (lower, upper], weighted by images, "
                  "in points of top-1")


class CalibrationStats:
    """Accumulates, batch by batch, what the calibration metrics need: each image's top confidence and whether
    its top-1 is right, and the Brier score's sum."""

    def __init__(self) -> None:
        self.confidence: list[torch.Tensor] = []
        self.correct: list[torch.Tensor] = []
        self.brier_sum = 0.0

    def add(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        probs = F.softmax(logits.float(), dim=1)
        conf, pred = probs.max(1)
        self.confidence.append(conf.cpu())
        self.correct.append((pred == labels).cpu())
        probs[torch.arange(len(labels), device=probs.device), labels] -= 1
        self.brier_sum += probs.square().sum().item()

    def metrics(self) -> dict[str, Any]:
        """``ece``, ``brier`` and ``calibration_bins`` of the images added so far."""
        conf = torch.cat(self.confidence) if self.confidence else torch.zeros(0)
        correct = torch.cat(self.correct) if self.correct else torch.zeros(0, dtype=torch.bool)
        bins = reliability_bins(conf, correct)
        return {"ece": expected_calibration_error(bins), "brier": self.brier_sum / max(1, len(conf)),
                "calibration_bins": bins}


def calibration_metrics(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> dict[str, Any]:
    """``ece``, ``nll``, ``brier`` and ``calibration_bins`` of ``logits / temperature``."""
    scaled = logits.double() / temperature
    stats = CalibrationStats()
    stats.add(scaled, labels)
    return {"nll": F.cross_entropy(scaled, labels).item(), **stats.metrics()}


def reliability_bins(confidence: torch.Tensor, correct: torch.Tensor, bins: int = BINS) -> list[dict[str, Any]]:
    """The reliability diagram's data: per equal-width bin of ``confidence`` its bounds, image count, mean
    confidence and accuracy (both in percent; 0 for an empty bin)."""
    if confidence.shape != correct.shape:
        raise InvalidArgumentError(f"confidence {tuple(confidence.shape)} and correct {tuple(correct.shape)} differ")
    index = (confidence.double() * bins).ceil().long().clamp(1, bins) - 1  # (b/bins, (b+1)/bins] -> b
    counts = torch.bincount(index, minlength=bins)
    conf_sum = torch.bincount(index, weights=confidence.double(), minlength=bins)
    right = torch.bincount(index, weights=correct.double(), minlength=bins)
    out = []
    for b in range(bins):
        n = int(counts[b])
        out.append({"lower": b / bins, "upper": (b + 1) / bins, "images": n,
                    "confidence": 100 * float(conf_sum[b]) / n if n else 0.0,
                    "accuracy": 100 * float(right[b]) / n if n else 0.0})
    return out


def expected_calibration_error(bins: list[dict[str, Any]]) -> float:
    """ECE in points of top-1 from ``reliability_bins``."""
    total = sum(b["images"] for b in bins)
    return sum(b["images"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / max(1, total)


def _nll(logits: torch.Tensor, labels: torch.Tensor, log_t: float) -> float:
    return F.cross_entropy(logits / math.exp(log_t), labels).item()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature in ``[low, high]`` that minimises the mean NLL of ``logits / T`` on ``labels``.

    The NLL is convex in ``1/T``, so unimodal in ``log T``: a golden-section search over ``log T`` finds it to
    about 1e-9 (deterministic, no optimizer state).
    """
    if len(logits) == 0 or len(logits) != len(labels):
        raise InvalidArgumentError(f"fit_temperature needs matching, non-empty logits and labels, got "
                                   f"{len(logits)} and {len(labels)}")
    logits = logits.double()
    a, b = math.log(low), math.log(high)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = _nll(logits, labels, c), _nll(logits, labels, d)
    while b - a > 1e-9:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = _nll(logits, labels, c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = _nll(logits, labels, d)
    return math.exp((a + b) / 2)
