"""A run's training state, ``state.pt``: saved atomically after every epoch, read back with ``weights_only=True``.

The file holds only tensors, dicts, lists, numbers and strings (no class of zoo's): the model's, the optimizer's
(or optimizer chain's), the EMA's and Lookahead's state dicts, the epoch count, the history of log rows and the
recipe as JSON data. A run resumes only with the recipe that made it (``same_recipe``), and a damaged or foreign
file is a one-line error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import InvalidArgumentError, ZooError, summarize
from ..utils.fileio import atomic_path, check_zip, json_field, regular_file
from .recipes import Recipe

__all__ = ["save_state", "resume_state", "same_recipe"]

_KEYS = {"model", "optimizer", "epoch", "history", "recipe"}  # and "ema", "lookahead" when the recipe has them


def save_state(path: Path, *, model: nn.Module, opt: Any, ema: nn.Module | None, lookahead: Any, epoch: int,
               history: list[dict[str, Any]], recipe: Recipe) -> None:
    """Save the state after ``epoch`` epochs to ``path``, atomically."""
    extra = {"ema": ema.state_dict()} if ema is not None else {}
    if lookahead is not None:
        extra["lookahead"] = lookahead.state_dict()
    _atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                        "history": history, "recipe": json.loads(recipe.to_json()), **extra}, path)


def resume_state(path: Path, device: torch.device, recipe: Recipe, *, model: nn.Module, opt: Any,
                 ema: nn.Module | None, lookahead: Any) -> tuple[list[dict[str, Any]], int]:
    """Put the state of ``path`` back into the run's model, optimizer, EMA and Lookahead; returns the saved
    history and the number of epochs done."""
    state = _load_state(path, device, recipe.epochs)
    if not same_recipe(state["recipe"], recipe):
        raise InvalidArgumentError(f"{path} was made by another recipe; resume with the same settings")
    _restore(state, path, model, opt, ema, lookahead)
    return state["history"], state["epoch"]


def same_recipe(saved: dict[str, Any], recipe: Recipe) -> bool:
    """Whether a saved state's recipe is ``recipe``: the same settings (settings added to zoo since keep their
    defaults); an edited description or source does not change a recipe."""
    try:
        a, b = Recipe.from_dict(saved).to_dict(), recipe.to_dict()
    except (InvalidArgumentError, TypeError):
        return False
    return all(a[k] == b[k] for k in a if k not in ("description", "source"))


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """Save atomically; a failed save (full disk, read-only folder) keeps the previous state and says so."""
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as a RuntimeError
        raise ZooError(f"could not save the training state to {path} ({summarize(exc)}); the previous state is kept: "
                       f"free space or fix the folder, then continue with --resume") from None


def _load_state(path: Path, device: torch.device, epochs: int) -> dict[str, Any]:
    """``state.pt`` read with ``weights_only=True``, its entries' types and ranges checked; a damaged file is a
    one-line error."""
    try:
        regular_file(path, "training state")
        check_zip(path, "training state")
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a boundary: truncated zips, refused pickles, I/O errors
        reason = summarize(exc)
        if "weights only load failed" in reason.lower():  # never pass on torch's advice to unpickle anyway
            reason = "it holds objects other than tensors, refused for safety"
        raise ZooError(f"{path} cannot be resumed: it is damaged or not a zoo training state ({reason}); "
                       f"start the run again in a new --out") from None
    if not isinstance(state, dict) or not _KEYS <= set(state):
        raise ZooError(f"{path} cannot be resumed: it is not a zoo training state (keys {sorted(_KEYS)} expected)")
    _check_state(state, path, epochs)
    return state


def _check_state(state: dict[str, Any], path: Path, epochs: int) -> None:
    what = "a zoo training state"
    json_field(state, "epoch", int, path, check=lambda v: 0 <= v <= epochs, what=what)
    json_field(state, "recipe", dict, path, what=what)
    history = json_field(state, "history", list, path, check=lambda v: len(v) == state["epoch"], what=what)
    for i, row in enumerate(history):
        json_field(row, "epoch_s", (int, float), f"{path} (history[{i}])", what=what,
                   check=lambda v: math.isfinite(v) and v >= 0)
    model = json_field(state, "model", dict, path, what=what)
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()):
        raise ZooError(f"{path} cannot be read as {what}: field 'model' is not a state dict of tensors")
    json_field(state, "optimizer", dict, path, what=what)  # its inside is the optimizer's (or chain's): _restore
    for key in ("ema", "lookahead"):
        json_field(state, key, dict, path, default=None, what=what)


def _restore(state: dict[str, Any], path: Path, model: nn.Module, opt: Any, ema: Any, lookahead: Any) -> None:
    """The saved model, optimizer, EMA and lookahead put back; a state that does not fit them is one line."""
    parts = [("model", model), ("optimizer", opt), ("ema", ema), ("lookahead", lookahead)]
    for key, target in parts:
        if target is None:
            continue
        if key not in state:
            raise ZooError(f"{path} cannot be resumed: it has no {key!r} entry, which this recipe needs")
        try:
            target.load_state_dict(state[key])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ZooError(f"{path} cannot be resumed: its {key!r} entry does not fit the run "
                           f"({type(exc).__name__}: {summarize(exc)})") from None
