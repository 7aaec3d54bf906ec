"""zoo: a model zoo of verified image classifiers for MNIST-style and CIFAR-style data.

    >>> import zoo
    >>> model = zoo.create("resnet20")
    >>> zoo.list_models("resnet*")[:3]
    ['resnet18', 'resnet20', 'resnet32']
"""

from __future__ import annotations

import logging

from . import models as _models  # noqa: F401  (registers every architecture)
from ._version import __version__
from .builder import ModelInfo, create, layer_summary, model_info
from .errors import CheckpointError, DatasetError, InvalidArgumentError, UnknownModelError, ZooError
from .metadata import Metrics, Weights
from .registry import get_weights, list_models, list_weights, register_model


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

logging.getLogger(__name__).addHandler(logging.NullHandler())
