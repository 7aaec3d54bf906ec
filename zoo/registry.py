"""The one model registry, and the registry of released weights.

It knows nothing about models: a dict from name to ``ModelEntry``, a ``register_model``
decorator, and lookups. Model files register themselves on import (``zoo.models``), each with its
released checkpoints (``zoo.metadata.Weights``); ``list_weights`` and ``get_weights`` look those up.
Finding, verifying and loading the files is ``zoo.weights``' job, a layer above.

The first lookup loads zoo's model files by name (``importlib``, as plugins are discovered): they
import this module, this module never imports them, and ``import zoo`` stays free of torch until a
model is needed.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import UnknownModelError
from .metadata import PublicResult, Weights
from .specs import get_dataset_spec

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = ["ModelEntry", "register_model", "parse_model_name", "get_entry", "list_models", "registered_names",
           "list_weights", "get_weights", "select_weights"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture and what its source says about it.

    ``expected_params`` is the exact count the built model must have, ``expected_flops`` the FLOPs of
    one forward pass at the dataset's input size (the test suite checks both; listings show them
    without building the model).
    ``reported_params`` is the source's own figure when it differs (a rounding or an arithmetic
    slip), and ``params_note`` says why.
    """

    name: str
    fn: Callable[..., nn.Module]
    family: str
    source: str
    dataset: str
    expected_params: int
    expected_flops: int = 0  # FLOPs of one forward pass at the dataset's input size (zoo.builder.count_flops)
    reported_params: int | None = None
    params_note: str = ""
    description: str = ""
    reported_accuracy: float | None = None  # top-1 (%) the source reports, when it reports one
    weights: tuple[Weights, ...] = field(default=())  # released checkpoints, the first is the default
    public: tuple[PublicResult, ...] = ()  # other collections' published top-1 for this architecture

    @property
    def best_public(self) -> PublicResult | None:
        """The highest published top-1 of another collection, if any."""
        return max(self.public, key=lambda p: p.top1, default=None)

    @property
    def input_size(self) -> tuple[int, ...]:
        return get_dataset_spec(self.dataset).input_size

    def summary(self) -> dict[str, object]:
        """What listings show, from the recorded figures (nothing is built): the counts the tests check,
        the source, and each released checkpoint with its scores (``top1``/``top5``: the default's)."""
        weights = [{"name": w.name, "dataset": w.dataset, "top1": w.metrics.top1, "top5": w.metrics.top5,
                    "file_size": w.file_size, "dtype": w.dtype} for w in self.weights]
        return {"name": self.name, "family": self.family, "dataset": self.dataset, "input_size": self.input_size,
                "params": self.expected_params, "gflops": self.expected_flops / 1e9, "source": self.source,
                "reported_params": self.reported_params, "reported_accuracy": self.reported_accuracy,
                "top1": weights[0]["top1"] if weights else None, "top5": weights[0]["top5"] if weights else None,
                "weights": weights}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    *,
    family: str,
    source: str,
    dataset: str,
    expected_params: int,
    expected_flops: int = 0,
    reported_params: int | None = None,
    params_note: str = "",
    reported_accuracy: float | None = None,
    weights: tuple[Weights, ...] = (),
    public: tuple[PublicResult, ...] = (),
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
            expected_flops=expected_flops,
            reported_params=reported_params,
            params_note=params_note,
            description=" ".join(doc.split()),
            reported_accuracy=reported_accuracy,
            weights=tuple(weights),
            public=tuple(public),
        )
        return fn

    return decorator


TIMM_SOURCE = "timm/"
HUB_SOURCES = ("hf-hub", "local-dir")  # a Hugging Face Hub model and a folder in its layout (zoo.interop.hf_hub)


def parse_model_name(name: str) -> tuple[str, str]:
    """``("timm", "resnet18")`` for ``"timm/resnet18"`` (a timm architecture), ``("hf-hub", "ORG/NAME")`` and
    ``("local-dir", "PATH")`` for a Hub model and a folder in the Hub layout, else ``("zoo", name)``."""
    if name.startswith(TIMM_SOURCE):
        return "timm", name[len(TIMM_SOURCE):]
    source, colon, rest = name.partition(":")
    if colon and source in HUB_SOURCES:
        return source, rest
    return "zoo", name


def _natural_key(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _entries() -> dict[str, ModelEntry]:
    """The registry, after zoo's own model files have registered themselves."""
    if "zoo.models" not in sys.modules:
        importlib.import_module("zoo.models")
    return _REGISTRY


def registered_names() -> list[str]:
    return sorted(_entries(), key=_natural_key)


def get_entry(name: str) -> ModelEntry:
    """Return the entry of ``name``; an unknown name raises with the closest matches."""
    try:
        return _entries()[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=5, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}?" if close else "; see `zoo list`"
        raise UnknownModelError(f"unknown model {name!r}{hint}") from None


def list_models(pattern: str | list[str] = "*", *, dataset: str | None = None, pretrained: bool = False) -> list[str]:
    """Names of the registered architectures that match ``pattern``, naturally sorted (``resnet20`` before
    ``resnet110``), as timm's ``list_models``.

    Args:
        pattern: an fnmatch pattern (``"resnet*"``) or a list of them; ``"*"`` lists every model.
        dataset: keep only models whose default dataset this is (``"cifar10"``, ``"mnist"``).
        pretrained: keep only models with at least one released checkpoint.

    Returns:
        The matching names, which ``zoo.create`` accepts.

    Raises:
        DatasetError: ``dataset`` is not a known dataset.
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


def all_weights() -> list[Weights]:
    """Every released checkpoint, in the registry's order (each model's default first)."""
    return [w for name in registered_names() for w in _REGISTRY[name].weights]


def list_weights(pattern: str = "*") -> list[Weights]:
    """The released checkpoints whose name ``arch.tag`` matches ``pattern``, in the registry's order.

    Args:
        pattern: an fnmatch pattern over ``arch.tag`` names (``"*.cifar10"``, ``"resnet*"``).

    Returns:
        Their cards (``zoo.Weights``): scores, file, sha256, recipe and preprocessing.
    """
    return [w for w in all_weights() if fnmatch.fnmatchcase(w.name, pattern)]


def get_weights(name: str) -> Weights:
    """The card of the released checkpoint called ``name``.

    Args:
        name: ``arch.tag``, as ``zoo list --pretrained`` prints it (``"resnet18.cifar10"``).

    Returns:
        Its ``zoo.Weights``: ``.transforms()`` gives the exact preprocessing, ``.metrics`` the recorded scores.

    Raises:
        UnknownModelError: no checkpoint has that name; the message lists the closest names.
    """
    known = {w.name: w for w in all_weights()}
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}?" if close else ("; see `zoo list --pretrained`" if known
                                                                  else "; no weights are released yet")
    raise UnknownModelError(f"unknown weights {name!r}{hint}")


def select_weights(names: list[str] | tuple[str, ...]) -> list[Weights]:
    """The released weights ``names`` name (``arch.tag``, or fnmatch patterns), each once, in the order given.

    An exact name that is unknown raises with the closest matches; a pattern that matches nothing raises.
    """
    chosen: list[Weights] = []
    for name in names:
        matched = list_weights(name) if any(ch in name for ch in "*?[") else [get_weights(name)]
        if not matched:
            raise UnknownModelError(f"no released weights match {name!r}; see `zoo weights list`")
        chosen += [w for w in matched if w not in chosen]
    return chosen
