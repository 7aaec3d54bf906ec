"""Training: recipes, their optimizers and schedules, the training loop, and run directories.

- ``recipes``: the ``Recipe`` dataclass and the named recipes;
- ``optim``: a recipe's optimizer, learning-rate schedule, EMA and Lookahead (timm and torch);
- ``loop``: ``train(recipe, out_dir=...)``, cut into setup, resume, epochs and finish;
- ``epoch``: one epoch of training on tensors, and the test scores between epochs;
- ``state``: ``state.pt``, saved atomically after every epoch and resumed exactly;
- ``freeze``: the layers a fine-tuning recipe freezes, and its frozen norm layers;
- ``distributed``: the process group under ``torchrun`` (data parallel training);
- ``runs``: a run directory's files, lock and status (no torch: ``zoo status`` stays fast).

``import zoo.train`` imports nothing heavy: the names below load their module on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"train": "loop", "TrainResult": "loop",
         **{name: "recipes" for name in ("Recipe", "RECIPES", "get_recipe", "resolve_recipe", "list_recipes",
                                          "parse_overrides")},
         **{name: "runs" for name in ("RunStatus", "run_status", "find_runs")}}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
