"""zoo: a model zoo of verified image classifiers for MNIST-style and CIFAR-style data.

    >>> import zoo
    >>> model = zoo.create("resnet20")
    >>> zoo.list_models("resnet*")[:3]
    ['resnet18', 'resnet20', 'resnet32']
"""

from __future__ import annotations

import logging

from . import models as _models  # noqa: F401  (registers every architecture)
from .builder import ModelInfo, create, layer_summary, model_info
from .errors import CheckpointError, DatasetError, InvalidArgumentError, UnknownModelError, ZooError
from .registry import list_models, register_model
from .weights import Metrics, Weights, get_weights, list_weights

__version__ = "0.1.0"

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
