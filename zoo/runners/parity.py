"""Parity: how an exported file or a backend setting agrees with the model it was made from.

``check_parity`` compares logits on one batch (``zoo export``'s check: max abs difference, identical argmax);
``agreement`` scores both on the same split and counts the images whose top-1 class differs (``zoo-eval
--backend``, ``zoo export --int8``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..data.splits import Split
from ..scoring import evaluate

__all__ = ["Parity", "check_parity", "agreement"]


@dataclass
class Parity:
    """Artefact vs eager on one input batch."""

    inputs: str  # "random" or "real"
    batch_size: int
    max_abs_diff: float
    argmax_identical: bool
    logit_scale: float = 1.0  # max |eager logit|: the tolerance is relative to it when it exceeds 1


@torch.no_grad()
def check_parity(model: nn.Module, runner: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                 kind: str) -> Parity:
    """``runner`` against ``model`` (eval mode) on one batch of ``inputs`` (``kind``: "random" or "real")."""
    expected = model.eval()(inputs)
    got = runner(inputs)
    return Parity(kind, int(inputs.shape[0]), float((expected - got).abs().max()),
                  bool(torch.equal(expected.argmax(1), got.argmax(1))), float(expected.abs().max()))


def agreement(reference: Callable[[torch.Tensor], torch.Tensor], candidate: Callable[[torch.Tensor], torch.Tensor],
              split: Split, *, warm_up: bool = False, candidate_name: str = "model", reference_name: str = "model",
              **scoring: Any) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Both scored on the same images of ``split`` (``zoo.scoring.evaluate`` with ``scoring``'s options): their
    metrics (candidate first) and the number of images whose top-1 class differs. ``warm_up``: a first,
    untimed pass of each, so that their images/s compare steady states."""
    results = []
    for fn, name in ((candidate, candidate_name), (reference, reference_name)):
        if warm_up:
            evaluate(fn, split, name=name, **{k: v for k, v in scoring.items() if k != "progress"})
        results.append(evaluate(fn, split, name=name, return_predictions=True, **scoring))
        scoring.pop("progress", None)  # one progress bar: the candidate's
    got, expected = results
    differ = int((got.pop("predictions") != expected.pop("predictions")).sum())
    return got, expected, differ
