"""The image operations behind ``zoo.data.corruptions``, batched on tensors.

Every function takes float images N x C x H x W in [0, 1] (and a ``torch.Generator`` where it draws random
numbers) and returns the same shape, unclipped: ``zoo.data.corruptions`` clips and rounds once. They follow
the operations of Hendrycks and Dietterich's CIFAR-10-C generator (``make_cifar_c.py``: scikit-image's Gaussian
filter, OpenCV's filters and warps, ImageMagick's motion blur, PIL's JPEG and box resize), re-implemented here
on batches; ``zoo.data.corruptions`` lists where the results differ from theirs.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["gaussian_blur", "filter2d", "clipped_zoom", "motion_blur", "shuffle_pixels", "plasma_fractal",
           "scale_value", "affine_warp", "displace", "pil_roundtrip", "to_gray", "jpeg", "box_pixelate"]

_GRAY = (0.299, 0.587, 0.114)  # OpenCV's RGB -> gray weights (ITU-R BT.601)


def _pad_index(n: int, radius: int, mode: str, device: torch.device) -> torch.Tensor:
    """Source positions for indices -radius .. n + radius - 1 of a length-``n`` axis under a border ``mode``:
    ``nearest`` (edge repeated), ``reflect101`` (d c b | a b c d, OpenCV's default) and ``symmetric``
    (c b a | a b c d, SciPy's ``reflect``)."""
    i = torch.arange(-radius, n + radius, device=device)
    if mode == "nearest":
        return i.clamp(0, n - 1)
    period = 2 * n - 2 if mode == "reflect101" else 2 * n
    i = i.remainder(period)
    return torch.where(i < n, i, period - i - (0 if mode == "reflect101" else 1))


def _pad(x: torch.Tensor, radius: int, mode: str) -> torch.Tensor:
    """``x`` padded by ``radius`` on both spatial axes (``_pad_index``'s modes)."""
    h, w = x.shape[-2:]
    x = x.index_select(-2, _pad_index(h, radius, mode, x.device))
    return x.index_select(-1, _pad_index(w, radius, mode, x.device))


def _gauss_taps(sigma: float, radius: int) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (t / sigma) ** 2) if sigma > 0 else (t == 0).double()
    return taps / taps.sum()


def filter2d(x: torch.Tensor, kernel: torch.Tensor, mode: str = "reflect101") -> torch.Tensor:
    """Correlation of every channel with the square ``kernel`` (odd side), borders by ``mode`` (OpenCV's
    ``filter2D``)."""
    r = kernel.shape[-1] // 2
    c = x.shape[1]
    weight = kernel.to(x.dtype).expand(c, 1, *kernel.shape[-2:])
    return F.conv2d(_pad(x, r, mode), weight, groups=c)


def gaussian_blur(x: torch.Tensor, sigma: float, *, truncate: float = 4.0, mode: str = "nearest") -> torch.Tensor:
    """SciPy's (and scikit-image's) Gaussian filter per channel: radius ``int(truncate * sigma + 0.5)``."""
    radius = int(truncate * sigma + 0.5)
    if radius == 0:
        return x.clone()
    taps = _gauss_taps(sigma, radius).to(x.dtype)
    c = x.shape[1]
    padded = _pad(x, radius, mode)
    rows = F.conv2d(padded, taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(rows, taps.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The centre ``ceil(H / factor)`` square enlarged ``factor`` times (bilinear, corners on corners, as SciPy's
    ``zoom`` with ``order=1``) and cropped back to H x W from its centre."""
    h = x.shape[-1]
    side = math.ceil(h / factor)
    top = (h - side) // 2
    crop = x[..., top:top + side, top:top + side]
    size = round(side * factor)
    big = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=True) if size != side else crop
    trim = (size - h) // 2
    return big[..., trim:trim + h, trim:trim + h]


def motion_blur(x: torch.Tensor, radius: float, sigma: float, angles: torch.Tensor) -> torch.Tensor:
    """ImageMagick's motion blur: each pixel becomes a one-sided Gaussian-weighted mean of the pixels along
    ``angles`` (degrees, one per image), ``2 * ceil(radius) + 1`` taps at whole-pixel offsets, edges repeated."""
    n, c, h, w = x.shape
    width = 2 * math.ceil(radius) + 1
    taps = torch.exp(-torch.arange(width, dtype=torch.float64) ** 2 / (2 * sigma * sigma))
    taps = (taps / taps.sum()).to(x.dtype)
    theta = torch.deg2rad(angles.double())
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    flat = x.reshape(n, c, h * w)
    out = torch.zeros_like(flat)
    for i in range(width):
        dx = torch.ceil(i * torch.cos(theta) - 0.5).long().view(n, 1, 1)
        dy = torch.ceil(i * torch.sin(theta) - 0.5).long().view(n, 1, 1)
        index = (ys + dy).clamp(0, h - 1) * w + (xs + dx).clamp(0, w - 1)
        out += taps[i] * flat.gather(2, index.view(n, 1, h * w).expand(n, c, h * w))
    return out.view(n, c, h, w)


def shuffle_pixels(x: torch.Tensor, delta: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """The glass-blur scramble: for each pixel from the bottom-right corner inwards (``delta`` from the border),
    in sequence, take the value of the neighbour ``(dy, dx)`` drawn from ``-delta .. delta - 1``. The published
    generator writes this as a swap of two NumPy views, which copies the neighbour into the pixel and leaves the
    neighbour as it was; this does the same, so values spread rather than move."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w).clone()
    positions = [(i, j) for i in range(h - delta, delta, -1) for j in range(w - delta, delta, -1)]
    shifts = torch.randint(-delta, delta, (iterations, len(positions), n, 2), generator=generator)
    for it in range(iterations):
        for k, (i, j) in enumerate(positions):
            there = ((i + shifts[it, k, :, 1]) * w + j + shifts[it, k, :, 0]).view(n, 1, 1).expand(n, c, 1)
            flat[:, :, i * w + j:i * w + j + 1] = flat.gather(2, there)
    return flat.view(n, c, h, w)


def plasma_fractal(n: int, size: int, decay: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` diamond-square height maps, ``size`` x ``size`` (a power of two), scaled to [0, 1]: corner means
    fill square centres, then diamond centres, each plus uniform noise of amplitude ``wibble ** 2`` (``wibble``
    from 100, divided by ``decay`` per level)."""
    m = torch.zeros(n, size, size, dtype=torch.float64)
    step, wibble = size, 100.0

    def noisy_mean(total: torch.Tensor) -> torch.Tensor:
        noise = torch.rand(total.shape, generator=generator, dtype=torch.float64) * 2 - 1
        return total / 4 + wibble * wibble * noise

    while step >= 2:
        half = step // 2
        corners = m[:, ::step, ::step]
        around = corners + corners.roll(-1, 1)
        m[:, half::step, half::step] = noisy_mean(around + around.roll(-1, 2))
        centres, corners = m[:, half::step, half::step], m[:, ::step, ::step]
        m[:, ::step, half::step] = noisy_mean(centres + centres.roll(1, 1) + corners + corners.roll(-1, 2))
        m[:, half::step, ::step] = noisy_mean(centres + centres.roll(1, 2) + corners + corners.roll(-1, 1))
        step, wibble = half, wibble / decay
    m -= m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True)


def scale_value(x: torch.Tensor, shift: float) -> torch.Tensor:
    """RGB -> HSV, V + ``shift`` clipped to [0, 1], -> RGB: at fixed hue and saturation RGB is proportional to
    V = max(R, G, B), so each pixel is scaled by V'/V (black becomes grey V')."""
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + shift).clamp(max=1)
    return torch.where(v > 0, x * v_new / v.clamp(min=1e-12), v_new.expand_as(x))


def to_gray(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_GRAY, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def affine_warp(x: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Each output pixel (u, v) sampled bilinearly at ``inverse @ (u, v, 1)`` (N x 2 x 3, pixel units, x first),
    borders reflected about the edge pixels (OpenCV's ``warpAffine`` with ``BORDER_REFLECT_101``)."""
    n, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).view(1, h * w, 3)
    src = points @ inverse.to(x.dtype).transpose(1, 2)  # N x HW x 2, pixel coordinates
    grid = torch.stack([src[..., 0] * 2 / (w - 1) - 1, src[..., 1] * 2 / (h - 1) - 1], dim=-1)
    return F.grid_sample(x, grid.view(n, h, w, 2), mode="bilinear", padding_mode="reflection", align_corners=True)


def displace(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Each pixel (u, v) sampled bilinearly at (u + dx, v + dy) (N x H x W each), borders mirrored about the
    image's edge (SciPy's ``map_coordinates`` with ``mode="reflect"``)."""
    n, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    gx = (xs + dx + 0.5) * 2 / w - 1
    gy = (ys + dy + 0.5) * 2 / h - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


PilFn = Callable[[Image.Image], Image.Image]


def pil_roundtrip(images: torch.Tensor, fn: PilFn) -> torch.Tensor:
    """uint8 N x 3 x H x W through ``fn(PIL.Image) -> PIL.Image`` one image at a time (JPEG, box resizes)."""
    out = torch.empty_like(images)
    for k, image in enumerate(images.permute(0, 2, 3, 1).contiguous().numpy()):
        out[k] = torch.from_numpy(np.array(fn(Image.fromarray(image)).convert("RGB"))).permute(2, 0, 1)
    return out


def jpeg(quality: int) -> PilFn:
    """PIL's JPEG encoder at ``quality``, decoded again (libjpeg: the same bytes on every machine)."""
    def encode(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        return Image.open(buffer)
    return encode


def box_pixelate(scale: float) -> PilFn:
    """PIL's box filter down to ``int(side * scale)`` pixels a side and back up."""
    def pixelate(image: Image.Image) -> Image.Image:
        w, h = image.size
        small = image.resize((int(w * scale), int(h * scale)), Image.Resampling.BOX)
        return small.resize((w, h), Image.Resampling.BOX)
    return pixelate
