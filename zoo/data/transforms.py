"""Preprocessing for a checkpoint: from its data config to a torchvision transform.

``make_transform(config)`` returns what ``Weights.transforms()`` returns: a callable that takes one
image (a PIL image, a uint8 tensor C x H x W or H x W, or a uint8 H x W [x C] array) and gives the
normalised float32 tensor C x H x W the checkpoint expects. Colour images become grey for a
1-channel model and grey images RGB for a 3-channel one; an image of another size is resized
(bilinear, antialiased) to the input size, and the first such resize is logged.

A PIL image is first made 8-bit by its mode (``to_8bit``): CMYK, YCbCr, LAB and palette images are
converted by Pillow (never read as RGB plus a channel), 16- and 32-bit integer grey is scaled from
0..65535 (never clipped to white), and a float image is refused (its range is unknown).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torchvision.transforms import v2

from ..errors import InvalidArgumentError

__all__ = ["ImageTransform", "make_transform", "to_8bit"]

_logger = logging.getLogger(__name__)


_GREY = ("1", "L", "LA", "La")


def to_8bit(image: Any, source: str = "an image") -> Any:
    """A PIL image as 8-bit ``L`` (grey modes) or ``RGB`` (every other mode, converted by Pillow); integer
    grey of more than 8 bits (``I;16*``, ``I``) scaled from 0..65535, not clipped. ``source`` names the
    file in the refusal of a float (``F``) image."""
    from PIL import Image

    mode = image.mode
    if mode == "F":
        raise InvalidArgumentError(f"{source} is a 32-bit float image, whose range zoo cannot know; save it as "
                                   f"an 8- or 16-bit image")
    if mode.startswith("I"):
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), "L")
    if mode in _GREY:
        return image.convert("L")
    if mode in ("P", "PA"):  # a palette with transparency goes through RGBA, as Pillow advises
        return image.convert("RGBA").convert("RGB")
    return image if mode == "RGB" else image.convert("RGB")


class ImageTransform:
    """image -> uint8 C x H x W tensor -> channels -> size -> float in [0, 1] -> normalised."""

    def __init__(self, input_size: tuple[int, ...], mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        if len(input_size) != 3:
            raise InvalidArgumentError(f"image transforms need a C x H x W input size, got {input_size}")
        self.channels, self.height, self.width = (int(v) for v in input_size)
        self.to_image = v2.ToImage()
        self.resize = v2.Resize((self.height, self.width), interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
        self.finish = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])
        self._told = False

    def __call__(self, image: Any) -> torch.Tensor:
        return self.finish(self.pixels(image))

    def pixels(self, image: Any) -> torch.Tensor:
        """The image as uint8 C x H x W at the input size and channel count (before scaling and normalising)."""
        if hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image: 8-bit, converted by its mode
            image = to_8bit(image)
        x = self.to_image(image).as_subclass(torch.Tensor)
        if x.dtype != torch.uint8:
            raise InvalidArgumentError(f"expected an 8-bit image, got a {x.dtype} tensor")
        if x.shape[0] == 4:  # RGBA: drop alpha
            x = x[:3]
        if x.shape[0] != self.channels:
            if self.channels == 1 and x.shape[0] == 3:
                x = v2.functional.rgb_to_grayscale(x)
            elif self.channels == 3 and x.shape[0] == 1:
                x = x.expand(3, -1, -1)
            else:
                raise InvalidArgumentError(f"cannot turn a {x.shape[0]}-channel image into {self.channels} channels")
        if tuple(x.shape[1:]) != (self.height, self.width):
            if not self._told:
                _logger.info("resizing %dx%d images to the checkpoint's %dx%d input", x.shape[2], x.shape[1],
                             self.width, self.height)
                self._told = True
            x = self.resize(x)
        return x.contiguous()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(input_size={(self.channels, self.height, self.width)}, "
                f"{self.finish.transforms[1]!r})")


def make_transform(source: Any) -> ImageTransform:
    """The evaluation transform of ``source``: a data config (``zoo.metadata.data_config``), a ``Weights``,
    or a model that ``zoo.create`` built (its ``pretrained_cfg``)."""
    if isinstance(source, dict):
        config = source
    elif callable(getattr(source, "data_config", None)):
        config = source.data_config()
    elif isinstance(getattr(source, "pretrained_cfg", None), dict):
        config = source.pretrained_cfg
    else:
        raise InvalidArgumentError(f"no data config in a {type(source).__name__}: pass a data config dict, a Weights "
                                   f"or a model built by zoo.create")
    return ImageTransform(tuple(config["input_size"]), tuple(config["mean"]), tuple(config["std"]))
