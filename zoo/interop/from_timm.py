"""timm architectures as zoo models: ``zoo.create("timm/<name>", num_classes=10)``.

A timm architecture is built with random weights (timm's hub weights need the network) and adapted to
small inputs: when the model has timm's ImageNet ResNet stem (``conv1`` 7x7 stride 2 followed by
``maxpool``), the stem becomes a 3x3 stride-1 conv and the max-pool is removed, so a 32x32 image keeps
its resolution into the first stage, as in zoo's own ``resnet18``. Other timm models are returned as
timm builds them (they still accept 32x32 input through global pooling, at a lower working
resolution); what was adapted is logged. (zoo's models in timm's registry: ``zoo.interop.to_timm``.)
"""

from __future__ import annotations

import difflib
import logging
from typing import Any

import torch.nn as nn

from ..errors import InvalidArgumentError, UnknownModelError

__all__ = ["create_timm", "adapt_stem_for_small_inputs", "TIMM_PREFIX"]

_logger = logging.getLogger(__name__)

TIMM_PREFIX = "zoo_"  # zoo's own models in timm's registry are named zoo_<name> (zoo.interop.to_timm)


def adapt_stem_for_small_inputs(model: nn.Module) -> bool:
    """Replace a ResNet-style 7x7/2 stem + max-pool by a 3x3/1 conv and no pool. Returns whether it did."""
    conv1 = getattr(model, "conv1", None)
    if not isinstance(conv1, nn.Conv2d) or conv1.kernel_size != (7, 7) or conv1.stride != (2, 2):
        return False
    model.conv1 = nn.Conv2d(conv1.in_channels, conv1.out_channels, 3, 1, 1, bias=conv1.bias is not None)
    if isinstance(getattr(model, "maxpool", None), nn.Module):
        model.maxpool = nn.Identity()
    return True


def create_timm(name: str, *, num_classes: int | None = None, in_chans: int | None = None,
                small_input: bool = True, **kwargs: Any) -> nn.Module:
    """Build timm model ``name`` with random weights for ``num_classes`` (default 10) and ``in_chans`` (default 3)."""
    import timm

    if kwargs.pop("pretrained", False):
        raise InvalidArgumentError("timm's pretrained weights are ImageNet weights fetched from the network; "
                                   "zoo builds timm architectures with random weights only")
    if name.startswith(TIMM_PREFIX):
        raise InvalidArgumentError(f"'timm/{name}' is zoo's own model; use zoo.create({name[len(TIMM_PREFIX):]!r})")
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown timm model {name!r}{hint}")
    model = timm.create_model(name, pretrained=False, num_classes=10 if num_classes is None else num_classes,
                              in_chans=3 if in_chans is None else in_chans, **kwargs)
    if small_input and adapt_stem_for_small_inputs(model):
        _logger.info("timm/%s: stem adapted for 32x32 input (3x3 stride-1 conv1, no max-pool)", name)
    elif small_input:
        _logger.info("timm/%s: built as timm defines it (no ResNet-style stem to adapt)", name)
    return model
