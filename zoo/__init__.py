"""zoo: a model zoo of verified image classifiers for MNIST-style and CIFAR-style data.

    >>> import zoo
    >>> model = zoo.create("resnet20")
    >>> zoo.list_models("resnet*")[:3]
    ['resnet18', 'resnet20', 'resnet32']

``import zoo`` is cheap: torch and the model files load on first use of an attribute that needs them
(PEP 562), so ``zoo --help`` answers without importing torch.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from ._version import __version__
from .errors import CheckpointError, DatasetError, InvalidArgumentError, UnknownModelError, ZooError

__all__ = [
    "__version__",
    "create",
    "list_models",
    "model_info",
    "layer_summary",
    "register_model",
    "Weights",
    "Metrics",
    "list_weights",
    "get_weights",
    "ModelInfo",
    "ZooError",
    "UnknownModelError",
    "InvalidArgumentError",
    "DatasetError",
    "CheckpointError",
]

# Public names and the module that defines them, imported on first access.
_LAZY = {
    "create": "builder", "model_info": "builder", "layer_summary": "builder", "ModelInfo": "builder",
    "list_models": "registry", "register_model": "registry", "list_weights": "registry", "get_weights": "registry",
    "Weights": "metadata", "Metrics": "metadata",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value  # later accesses skip this hook
        return value
    if not name.startswith("_"):  # a submodule: zoo.weights, zoo.data, ...
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


logging.getLogger(__name__).addHandler(logging.NullHandler())
