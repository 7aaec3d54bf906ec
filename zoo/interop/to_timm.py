"""timm interop: zoo's models in timm's registry.

(The other way, ``zoo.create("timm/<name>")``, is ``zoo.interop.from_timm``.)

- ``register_with_timm()`` registers every zoo architecture in timm's registry as ``zoo_<name>``,
  so ``timm.create_model("zoo_resnet20")`` works, and so does ``timm.create_model("local-dir:DIR",
  pretrained=True)`` for a folder ``zoo hub export`` wrote (or ``hf-hub:ORG/NAME`` for one uploaded): zoo
  loads its weights, checking their sha256 (``zoo.interop.hf_hub``). It runs when this module is imported;
  ``import zoo`` does not import it, because importing timm costs seconds that most users of zoo don't need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch.nn as nn

from .from_timm import TIMM_PREFIX

__all__ = ["register_with_timm", "TIMM_PREFIX"]

_logger = logging.getLogger(__name__)


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def fn(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        from ..builder import create

        tag = kwargs.pop("pretrained_cfg", None)  # timm passes the tag of "zoo_resnet20.cifar10" here
        for key in ("pretrained_cfg_overlay", "cache_dir", "pretrained_model_args"):
            kwargs.pop(key, None)
        folder = _hub_source(tag) if pretrained else None
        if folder is not None:  # "local-dir:PATH" or "hf-hub:ORG/NAME": the folder's own, verified weights
            return create(folder, **kwargs)
        weights = (f"{name}.{tag}" if isinstance(tag, str) and tag else "default") if pretrained else None
        return create(name, weights=weights, **kwargs)  # the model carries pretrained_cfg (zoo.builder)

    fn.__name__ = f"{TIMM_PREFIX}{name}"
    fn.__qualname__ = fn.__name__
    fn.__module__ = __name__
    fn.__doc__ = f"zoo's {name} (see `zoo info {name}`)."
    return fn


def _hub_source(cfg: Any) -> str | None:
    """``"local-dir:PATH"`` or ``"hf-hub:ORG/NAME"`` when timm read ``cfg`` from a Hub folder, else None."""
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg
    if not isinstance(cfg, dict):
        return None
    if cfg.get("source") == "local-dir" and cfg.get("file"):
        return f"local-dir:{cfg['file']}"
    if cfg.get("source") == "hf-hub" and cfg.get("hf_hub_id"):
        return f"hf-hub:{cfg['hf_hub_id']}"
    return None


# timm reads the pretrained configs of a module's entry points from its ``default_cfgs`` when they register.
default_cfgs: dict[str, Any] = {}


def _default_cfg(entry: Any) -> Any:
    """timm's ``DefaultCfg`` for a zoo model: one tag per released checkpoint, the first the default.

    ``file`` names the released file: zoo loads (and verifies) it; timm's own loader is never used.
    """
    from collections import deque

    from timm.models import PretrainedCfg
    from timm.models._registry import DefaultCfg

    from ..metadata import data_config

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

    from ..registry import get_entry, registered_names

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
