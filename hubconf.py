"""torch.hub entry points: one per zoo model with released weights.

    >>> model = torch.hub.load("<owner>/zoo", "resnet20", pretrained=True)        # from GitHub
    >>> model = torch.hub.load("/path/to/zoo", "resnet20", source="local", pretrained=True)

``pretrained=True`` loads the model's default checkpoint (found, downloaded and sha256-verified as
``zoo.create(name, weights="default")`` does); ``num_classes`` and the model's other options pass
through to ``zoo.create``. Each entry point's docstring names the checkpoint it loads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

import zoo as _zoo
from zoo import registry as _registry

dependencies = ["torch", "torchvision", "timm", "safetensors", "click", "tqdm", "numpy"]


def _entry(name: str) -> Callable[..., nn.Module]:
    def entry(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return _zoo.create(name, weights="default" if pretrained else None, **kwargs)

    model = _registry.get_entry(name)
    weights = model.weights[0]
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (f"{name}: {model.description}\n\npretrained=True loads {weights.name} "
                     f"(top-1 {weights.metrics.top1:.2f}% on the {weights.dataset} {weights.metrics.split} split).")
    return entry


for _name in _zoo.list_models(pretrained=True):
    globals()[_name] = _entry(_name)
