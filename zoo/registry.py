"""The one model registry.

It knows nothing about models: a dict from name to ``ModelEntry``, a ``register_model``
decorator, and lookups. Model files register themselves on import (``zoo.models``).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch.nn as nn

from .data import get_dataset_spec
from .errors import UnknownModelError

if TYPE_CHECKING:
    from .weights import Weights

__all__ = ["ModelEntry", "register_model", "get_entry", "list_models", "registered_names"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture and what its source says about it.

    ``expected_params`` is the exact count the built model must have (the test suite checks it).
    ``reported_params`` is the source's own figure when it differs (a rounding or an arithmetic
    slip), and ``params_note`` says why.
    """

    name: str
    fn: Callable[..., nn.Module]
    family: str
    source: str
    dataset: str
    expected_params: int
    reported_params: int | None = None
    params_note: str = ""
    description: str = ""
    reported_accuracy: float | None = None  # top-1 (%) the source reports, when it reports one
    weights: tuple[Weights, ...] = field(default=())  # released checkpoints, the first is the default

    @property
    def input_size(self) -> tuple[int, ...]:
        return get_dataset_spec(self.dataset).input_size


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    *,
    family: str,
    source: str,
    dataset: str,
    expected_params: int,
    reported_params: int | None = None,
    params_note: str = "",
    reported_accuracy: float | None = None,
    weights: tuple[Weights, ...] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register the decorated builder under its function name. A duplicate name raises."""
    get_dataset_spec(dataset)  # fail early on a typo

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].fn.__module__})")
        doc = (fn.__doc__ or "").strip()
        _REGISTRY[name] = ModelEntry(
            name=name,
            fn=fn,
            family=family,
            source=source,
            dataset=dataset,
            expected_params=expected_params,
            reported_params=reported_params,
            params_note=params_note,
            description=" ".join(doc.split()),
            reported_accuracy=reported_accuracy,
            weights=tuple(weights),
        )
        return fn

    return decorator


def _natural_key(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def registered_names() -> list[str]:
    return sorted(_REGISTRY, key=_natural_key)


def get_entry(name: str) -> ModelEntry:
    """Return the entry of ``name``; an unknown name raises with the closest matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=5, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}?" if close else "; see `zoo list`"
        raise UnknownModelError(f"unknown model {name!r}{hint}") from None


def list_models(pattern: str | list[str] = "*", *, dataset: str | None = None, pretrained: bool = False) -> list[str]:
    """Names matching ``pattern`` (fnmatch wildcards, or a list of them), naturally sorted.

    ``dataset`` keeps models whose default dataset it is; ``pretrained`` keeps models with
    released weights.
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    ds = get_dataset_spec(dataset).name if dataset else None
    names = []
    for name in registered_names():
        entry = _REGISTRY[name]
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        if ds is not None and entry.dataset != ds:
            continue
        if pretrained and not entry.weights:
            continue
        names.append(name)
    return names
