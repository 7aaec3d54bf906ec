"""Look inside a model: the weights of a layer as images, and the feature maps one input produces.

Report 003 (``../shared/seeds/003_148fa9d481c7e76e.txt``, section 3) shows both for a trained network:
the activations of the first and of the last convolutional layer for one picture (its Figures 8-9)
and the weights of the first convolutional layer, as RGB images and per colour channel (Figures 10-13).

- ``layer_weights(model, layer)``: the weights of a Conv2d as ``out x in x kh x kw``; for a Linear
  layer that reads the input (the first layer of an MLP) each unit's weights are reshaped to the
  input image (784 -> 1 x 28 x 28).
- ``layer_activations(model, x, layer)``: the output of any named module for one input image.
- ``filters_figure`` and ``activations_figure`` build a model (with its released weights by
  default), call the two above and write the figures through ``zoo.utils.plots``; the CLI's ``zoo viz``
  calls them.

``layer`` is a module name as in ``model.named_modules()`` (``zoo info NAME`` lists them), or
``"first"`` / ``"last"``: the first or last Conv2d (for a model without one, the first or last Linear).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..builder import create
from ..data.datasets import load_sample
from ..errors import InvalidArgumentError
from ..registry import get_entry
from ..specs import get_dataset_spec

__all__ = ["resolve_layer", "layer_weights", "layer_activations", "load_image", "sample_image",
           "LayerView", "filters_figure", "activations_figure"]

_logger = logging.getLogger(__name__)

_WEIGHTED = (nn.Conv2d, nn.Linear)


def _candidates(model: nn.Module) -> list[str]:
    """Names of the Conv2d modules in registration (= call) order, else of the Linear modules."""
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return convs or [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def resolve_layer(model: nn.Module, layer: str | None = None) -> str:
    """The module name ``layer`` stands for (``None`` and ``"first"``: the first conv; ``"last"``: the last)."""
    candidates = _candidates(model)
    if layer in (None, "first", "last"):
        if not candidates:
            raise InvalidArgumentError("the model has no Conv2d or Linear layer")
        return candidates[-1] if layer == "last" else candidates[0]
    names = dict(model.named_modules())
    if layer not in names or layer == "":
        shown = ", ".join(candidates[:12]) + (", ..." if len(candidates) > 12 else "")
        raise InvalidArgumentError(f"no layer {layer!r} in the model; weight layers: {shown} "
                                   f"(or 'first', 'last'; `zoo info MODEL` lists every module)")
    return layer


def layer_weights(model: nn.Module, layer: str | None = None, *, input_size: tuple[int, ...] | None = None
                  ) -> tuple[str, np.ndarray]:
    """``(name, weights)`` of a layer as float32 ``out x in x kh x kw``.

    A Linear layer is accepted when it reads the input image: ``input_size`` (C, H, W) must multiply
    to its ``in_features``, and each row becomes a C x H x W image.
    """
    name = resolve_layer(model, layer)
    module = dict(model.named_modules())[name]
    if not isinstance(module, _WEIGHTED):
        raise InvalidArgumentError(f"layer {name!r} is a {type(module).__name__}; filters are shown for Conv2d "
                                   f"layers and for a first Linear layer")
    w = module.weight.detach().cpu().float().numpy()
    if isinstance(module, nn.Conv2d):
        return name, w
    if input_size is None or len(input_size) != 3 or math.prod(input_size) != module.in_features:
        raise InvalidArgumentError(f"Linear layer {name!r} has {module.in_features} inputs, not an image of "
                                   f"{input_size}; only a Linear layer that reads the image can be shown as filters")
    return name, w.reshape(w.shape[0], *input_size)


def layer_activations(model: nn.Module, x: torch.Tensor, layer: str | None = None) -> tuple[str, np.ndarray]:
    """``(name, output)`` of module ``layer`` for one normalised input ``x`` (C x H x W), in eval mode.

    The output is copied inside the hook, so an in-place ReLU after the layer does not change it.
    """
    name = resolve_layer(model, layer)
    module = dict(model.named_modules())[name]
    captured: list[torch.Tensor] = []

    def hook(mod: nn.Module, args: Any, out: Any) -> None:
        if not isinstance(out, torch.Tensor):
            raise InvalidArgumentError(f"layer {name!r} does not return a tensor")
        captured.append(out.detach()[0].float().cpu().clone())

    was_training = model.training
    handle = module.register_forward_hook(hook)
    try:
        model.eval()
        with torch.no_grad():
            model(x.unsqueeze(0))
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        raise InvalidArgumentError(f"layer {name!r} is not called in the model's forward pass")
    return name, captured[0].numpy()


def load_image(path: str | os.PathLike[str], input_size: tuple[int, ...]) -> torch.Tensor:
    """An image file as uint8 C x H x W at ``input_size`` (converted to RGB or grey, resized bilinearly)."""
    from PIL import Image

    from ..data.folders import open_image

    c, h, w = input_size
    img = open_image(path).convert("RGB" if c == 3 else "L")  # only a regular file; every Pillow error is one line
    if img.size != (w, h):
        _logger.info("resizing %s from %dx%d to %dx%d", path, img.size[0], img.size[1], w, h)
        img = img.resize((w, h), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def sample_image(dataset: str, index: int) -> tuple[torch.Tensor, str]:
    """Image ``index`` of the embedded test sample of ``dataset`` (uint8 C x H x W) and its class name."""
    sample = load_sample(dataset)
    if not 0 <= index < len(sample):
        raise InvalidArgumentError(f"--sample must be in [0, {len(sample) - 1}], got {index}")
    return sample.images[index], sample.dataset.classes[int(sample.labels[index])]


@dataclass
class LayerView:
    """What ``filters_figure`` / ``activations_figure`` showed and where; ``to_dict`` is the CLI's ``--json``."""

    model: str
    weights: str | None
    weights_note: str
    layer: str
    layer_type: str
    shape: list[int]
    paths: list[str]
    stats: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load(name: str, weights: str | None) -> tuple[nn.Module, str | None, str, tuple[float, ...], tuple[float, ...]]:
    """The model with ``weights`` (default: its released default, else random) and the statistics to normalise with
    (its ``pretrained_cfg``: the weights' data config)."""
    if weights is None and get_entry(name).weights:
        weights = "default"
    torch.manual_seed(0)
    model = create(name, weights=weights).eval()
    cfg = model.pretrained_cfg
    if weights is None:
        note = f"no released checkpoint for {name}: random weights (seed 0)"
    elif cfg["weights"] is None:
        note = f"loaded {weights}"
    else:
        note = f"loaded {cfg['weights']} (sha256 {cfg['sha256'][:12]}...)"
    return model, cfg["weights"] or (str(weights) if weights is not None else None), note, cfg["mean"], cfg["std"]


def _stats(a: np.ndarray) -> dict[str, float]:
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "std": float(a.std())}


def filters_figure(name: str, *, weights: str | None = None, layer: str | None = None,
                   out: str | os.PathLike[str] | None = None) -> LayerView:
    """Write the weights of ``layer`` (default: the first conv, or an MLP's first layer) of ``name`` as an image grid.

    For 3-channel filters the figure has the RGB composite and one panel per channel (report 003,
    Figures 10-13). ``out`` defaults to ``<model>-filters.png``.
    """
    from ..utils.plots import plot_filters

    model, loaded, note, _, _ = _load(name, weights)
    entry = get_entry(name)
    layer_name, w = layer_weights(model, layer, input_size=entry.input_size)
    path = Path(out) if out is not None else Path(f"{name}-filters.png")
    kind = type(dict(model.named_modules())[layer_name]).__name__
    what = loaded or "random weights"
    plot_filters(w, path, title=f"{name} ({what}): weights of {kind} '{layer_name}', "
                                f"{w.shape[0]} filters of {w.shape[1]}x{w.shape[2]}x{w.shape[3]}")
    notes = [] if loaded else [note]
    return LayerView(name, loaded, note, layer_name, kind, list(w.shape), [str(path)], _stats(w), notes)


def activations_figure(name: str, *, image: str | os.PathLike[str] | None = None, sample: int | None = None,
                       weights: str | None = None, layer: str | None = None,
                       out: str | os.PathLike[str] | None = None) -> LayerView:
    """Write the output of ``layer`` of ``name`` for one image (report 003, Figures 8-9).

    The input is an image file (``image``, resized to the model's input size) or image ``sample`` of
    the embedded test sample of the model's dataset. ``out`` defaults to ``<model>-activations.png``.
    """
    from ..utils.plots import plot_feature_maps

    if (image is None) == (sample is None):
        raise InvalidArgumentError("give exactly one of --image FILE and --sample N")
    entry = get_entry(name)
    model, loaded, note, mean, std = _load(name, weights)
    notes = [] if loaded else [note]
    if image is not None:
        pixels = load_image(image, entry.input_size)
        source = Path(image).name
    else:
        pixels, label = sample_image(entry.dataset, int(sample))  # type: ignore[arg-type]
        source = f"{entry.dataset} test sample #{sample} ({label})"
    m = torch.tensor(mean).view(-1, 1, 1)
    s = torch.tensor(std).view(-1, 1, 1)
    x = (pixels.float() / 255 - m) / s
    layer_name, maps = layer_activations(model, x, layer)
    kind = type(dict(model.named_modules())[layer_name]).__name__
    with torch.no_grad():
        probs = model.eval()(x.unsqueeze(0)).softmax(1)[0]
    top = int(probs.argmax())
    predicted = f"{get_dataset_spec(entry.dataset).classes[top]} ({100 * float(probs[top]):.1f}%)"
    path = Path(out) if out is not None else Path(f"{name}-activations.png")
    plot_feature_maps(maps, pixels.permute(1, 2, 0).numpy(), path,
                      title=f"{name} ({loaded or 'random weights'}): output of {kind} '{layer_name}' for {source}; "
                            f"predicted {predicted}")
    stats = {**_stats(maps), "fraction_positive": float((maps > 0).mean())}
    return LayerView(name, loaded, note, layer_name, kind, list(maps.shape), [str(path)], stats,
                     notes + [f"input: {source}", f"predicted: {predicted}"])
