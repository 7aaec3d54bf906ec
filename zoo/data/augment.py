"""Batched augmentation of whole N x C x H x W tensors (uint8 or float, any device), as in airbench.

``augment_flip_crop`` (random horizontal flip, pad-and-random-crop) and ``cutout`` draw their random
numbers from an optional ``torch.Generator``, so a seeded run augments the same way every time;
``zoo.train`` applies them per batch to the uint8 images of ``zoo.data.batches``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InvalidArgumentError

__all__ = ["augment_flip_crop", "cutout"]


def _rand_int(high: int, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """n integers in [0, high), drawn on the generator's device (or ``device``), returned on ``device``."""
    on = generator.device if generator is not None else device
    return torch.randint(0, high, (n,), generator=generator, device=on).to(device)


def augment_flip_crop(x: torch.Tensor, *, pad: int = 4, flip: bool = True, generator: torch.Generator | None = None,
                      padding_mode: str = "reflect") -> torch.Tensor:
    """Random horizontal flip and pad-and-random-crop of a whole N x C x H x W batch, vectorised.

    Each image is flipped with probability 1/2, padded by ``pad`` on every side (``padding_mode``
    as in ``F.pad``: "reflect", as airbench, or "constant" for torchvision's zero padding), then
    cropped back to H x W at a uniformly random offset. Works on uint8 or float tensors, on any
    device; the same ``generator`` state gives the same output.
    """
    if x.dim() != 4:
        raise InvalidArgumentError(f"augment_flip_crop expects N x C x H x W, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if flip:
        flipped = _rand_int(2, n, generator, x.device).bool()
        x = torch.where(flipped.view(n, 1, 1, 1), x.flip(3), x)
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad), mode=padding_mode)
        dy = _rand_int(2 * pad + 1, n, generator, x.device)
        dx = _rand_int(2 * pad + 1, n, generator, x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # N x 1 x H x 1
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # N x 1 x 1 x W
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chans = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    return x


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square at a random centre of each image (DeVries & Taylor, 2017).

    The centre is uniform over the image, so the square may be clipped at the border. Apply it after
    normalisation, where 0 is the mean colour. Returns a new tensor.
    """
    if x.dim() != 4:
        raise InvalidArgumentError(f"cutout expects N x C x H x W, got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    top = _rand_int(h, n, generator, x.device) - size // 2
    left = _rand_int(w, n, generator, x.device) - size // 2
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (ys[None, :] >= top[:, None]) & (ys[None, :] < top[:, None] + size)  # N x H
    in_cols = (xs[None, :] >= left[:, None]) & (xs[None, :] < left[:, None] + size)  # N x W
    mask = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # N x 1 x H x W
    return x.masked_fill(mask, 0)
