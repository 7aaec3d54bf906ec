"""timm interop, both ways.

- ``zoo.create("timm/<name>", num_classes=10)`` builds a timm architecture (random weights; timm's
  hub weights need the network) adapted to small inputs: when the model has timm's ImageNet ResNet
  stem (``conv1`` 7x7 stride 2 followed by ``maxpool``), the stem becomes a 3x3 stride-1 conv and the
  max-pool is removed, so a 32x32 image keeps its resolution into the first stage, as in zoo's own
  ``resnet18``. Other timm models are returned as timm builds them (they still accept 32x32 input
  through global pooling, at a lower working resolution); what was adapted is logged.
- ``register_with_timm()`` registers every zoo architecture in timm's registry as ``zoo_<name>``,
  so ``timm.create_model("zoo_resnet20")`` works. It runs when this module is imported; ``import zoo``
  does not import it, because importing timm costs seconds that most users of zoo don't need.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any, Callable

import torch.nn as nn

from .errors import InvalidArgumentError, UnknownModelError

__all__ = ["create_timm", "adapt_stem_for_small_inputs", "register_with_timm", "TIMM_PREFIX"]

_logger = logging.getLogger(__name__)

TIMM_PREFIX = "zoo_"


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


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def fn(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        from .builder import create

        tag = kwargs.pop("pretrained_cfg", None)  # timm passes the tag of "zoo_resnet20.cifar10" here
        for key in ("pretrained_cfg_overlay", "cache_dir"):
            kwargs.pop(key, None)
        weights = (f"{name}.{tag}" if isinstance(tag, str) and tag else "default") if pretrained else None
        return create(name, weights=weights, **kwargs)  # the model carries pretrained_cfg (zoo.builder)

    fn.__name__ = f"{TIMM_PREFIX}{name}"
    fn.__qualname__ = fn.__name__
    fn.__module__ = __name__
    fn.__doc__ = f"zoo's {name} (see `zoo info {name}`)."
    return fn


# timm reads the pretrained configs of a module's entry points from its ``default_cfgs`` when they register.
default_cfgs: dict[str, Any] = {}


def _default_cfg(entry: Any) -> Any:
    """timm's ``DefaultCfg`` for a zoo model: one tag per released checkpoint, the first the default.

    ``file`` names the released file: zoo loads (and verifies) it; timm's own loader is never used.
    """
    from collections import deque

    from timm.models import PretrainedCfg
    from timm.models._registry import DefaultCfg

    from .metadata import data_config

    cfgs = {}
    for w in entry.weights:
        c = data_config(w)
        cfgs[w.tag] = PretrainedCfg(file=w.file_name, input_size=c["input_size"], mean=c["mean"], std=c["std"],
                                    num_classes=c["num_classes"], interpolation=c["interpolation"],
                                    crop_pct=c["crop_pct"], crop_mode=c["crop_mode"], license=w.licence,
                                    description=f"zoo {w.name}: top-1 {w.metrics.top1:.2f}% ({w.dataset} test)",
                                    label_names=c["classes"])
    return DefaultCfg(tags=deque(cfgs), cfgs=cfgs)


def register_with_timm() -> list[str]:
    """Register every zoo model with timm as ``zoo_<name>``, with its released checkpoints as pretrained
    tags (``timm.list_models("zoo_*", pretrained=True)``); idempotent. Returns the timm names."""
    import timm
    from timm.models import register_model

    from .registry import get_entry, registered_names

    names = []
    for name in registered_names():
        timm_name = f"{TIMM_PREFIX}{name}"
        if not timm.is_model(timm_name):
            entry = get_entry(name)
            if entry.weights:
                default_cfgs[timm_name] = _default_cfg(entry)
            register_model(_entrypoint(name))
        names.append(timm_name)
    return names


register_with_timm()
