"""Freezing layers for fine-tuning (``Recipe.freeze``): which layers train, and the frozen norm layers that keep
their running statistics."""

from __future__ import annotations

import fnmatch

import torch.nn as nn

from ..errors import InvalidArgumentError

__all__ = ["freeze", "frozen_norm_layers", "frozen_norm_names"]


def freeze(model: nn.Module, spec: str) -> dict[str, list[str]]:
    """Freeze the layers ``spec`` names (``Recipe.freeze``); returns the trained and frozen layer names.

    Layers are the modules that own parameters, in definition order. ``all-but-last:N`` freezes every
    layer but the last N (report 003: "only back-propagated through the last five"); otherwise ``spec``
    is comma-separated fnmatch patterns, each matching a layer or a module above layers
    (``layer1`` freezes ``layer1.0.conv1`` ...). A frozen norm layer also keeps its running statistics
    (it stays in eval mode while the rest trains: ``frozen_norm_layers``).
    """
    layers = [name for name, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None]
    if spec.startswith("all-but-last:"):
        count = spec.split(":", 1)[1]
        if not count.isdigit():
            raise InvalidArgumentError(f"freeze {spec!r}: expected all-but-last:N with N a whole number")
        frozen = layers[:max(0, len(layers) - int(count))]
    else:
        patterns = [p.strip() for p in spec.split(",") if p.strip()]

        def hit(name: str, pattern: str) -> bool:  # the layer itself, or a module above it
            return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, f"{pattern}.*")

        frozen = [name for name in layers if any(hit(name, p) for p in patterns)]
        unused = [p for p in patterns if not any(hit(name, p) for name in layers)]
        if unused:
            raise InvalidArgumentError(f"freeze: {', '.join(unused)} match no layer of the model; its layers are "
                                       f"{', '.join(layers[:8])}{', ...' if len(layers) > 8 else ''}")
    for name in frozen:
        for p in model.get_submodule(name).parameters(recurse=False):
            p.requires_grad_(False)
    trained = [name for name in layers if name not in frozen]
    if not trained:
        raise InvalidArgumentError(f"freeze {spec!r} leaves nothing to train")
    return {"trained": trained, "frozen": frozen}


def frozen_norm_names(model: nn.Module, frozen: list[str]) -> list[str]:
    """The norm layers (BatchNorm, InstanceNorm) among the ``frozen`` layer names."""
    return [n for n in frozen if isinstance(model.get_submodule(n), nn.modules.batchnorm._NormBase)]


def frozen_norm_layers(model: nn.Module, frozen: list[str]) -> list[nn.Module]:
    """The norm layers among the ``frozen`` ones, to keep in eval mode while the rest of ``model`` trains."""
    return [model.get_submodule(n) for n in frozen_norm_names(model, frozen)]
