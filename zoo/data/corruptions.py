"""Corrupted test images in the style of CIFAR-10-C: the 15 corruptions of Hendrycks and Dietterich (ICLR 2019)
at 5 severities, with the CIFAR parameters of their generator (``make_cifar_c.py`` in hendrycks/robustness).

These images are generated here, in the style of CIFAR-10-C; they are not the released CIFAR-10-C files, and
no image equals its CIFAR-10-C counterpart. ``corrupt_split(split, name, severity)`` is deterministic (a
generator seeded from ``seed``, the corruption and the severity) and cached by content hash
(``$XDG_CACHE_HOME/zoo/corruptions``), so several checkpoints share one generation. Where this differs from
the published generator (``DIFFERENCES``): random numbers come from torch, not NumPy (the same distributions,
other draws); ImageMagick's motion blur (motion blur, snow) and OpenCV's and SciPy's filters are re-implemented
on batches (``zoo.data.distortions``); frost blends the generator's own frost photographs, which the
``imagecorruptions`` package ships (``pip install 'zoo[robustness]'``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidArgumentError, ZooError
from ..utils.fileio import atomic_path, regular_file
from . import distortions as D
from .splits import Split

__all__ = ["Corruption", "CORRUPTIONS", "FAMILIES", "SEVERITIES", "DIFFERENCES", "GENERATOR_VERSION",
           "parse_corruptions", "parse_severities", "check_available", "corrupt", "corrupt_split", "cache_dir"]

_logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # part of every cache key: bump it when an operation changes
SEVERITIES = (1, 2, 3, 4, 5)
_CHUNK = 1000  # images generated at a time (one generator runs through the chunks in order)
DIFFERENCES = (
    "random numbers from torch's generator, not NumPy's: the same distributions, other draws",
    "motion blur and snow: ImageMagick's motion blur re-implemented (2*ceil(radius)+1 one-sided Gaussian taps "
    "at whole-pixel offsets along the angle, edges repeated), without its PNG round trip",
    "defocus, glass and elastic blurs, the zooms and warps: OpenCV's and SciPy's filters re-implemented on "
    "batches (same kernels, borders and interpolation orders; float32)",
    "frost: the generator's frost photographs (from the imagecorruptions package), downscaled 0.2x bilinearly "
    "without antialiasing as OpenCV's resize does",
)

Op = Callable[[torch.Tensor, Any, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Corruption:
    """One corruption: its family (noise, blur, weather, digital), the operation, and its parameter at each
    severity 1-5 (the generator's CIFAR values)."""

    name: str
    family: str
    op: Op
    params: tuple[Any, ...]


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64) * (high - low) + low


def _gaussian_noise(x: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    return x + torch.randn(x.shape, generator=g) * sigma


def _shot_noise(x: torch.Tensor, photons: float, g: torch.Generator) -> torch.Tensor:
    return torch.poisson(x * photons, generator=g) / photons


def _impulse_noise(x: torch.Tensor, amount: float, g: torch.Generator) -> torch.Tensor:
    flipped = torch.rand(x.shape, generator=g) < amount
    salt = torch.rand(x.shape, generator=g) < 0.5
    return torch.where(flipped, salt.to(x.dtype), x)


def _disk(radius: float, alias_blur: float) -> torch.Tensor:
    """A disk of ``radius`` on a 17 x 17 grid, normalised, smoothed by a 3 x 3 Gaussian (``alias_blur``)."""
    t = torch.arange(-8, 9, dtype=torch.float64)
    disk = ((t.view(-1, 1) ** 2 + t.view(1, -1) ** 2) <= radius ** 2).double()
    taps = torch.exp(-torch.arange(-1, 2, dtype=torch.float64) ** 2 / (2 * alias_blur ** 2))
    taps /= taps.sum()
    return D.filter2d((disk / disk.sum()).view(1, 1, 17, 17), torch.outer(taps, taps))[0, 0]


def _defocus_blur(x: torch.Tensor, p: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    return D.filter2d(x, _disk(*p))


def _glass_blur(x: torch.Tensor, p: tuple[float, int, int], g: torch.Generator) -> torch.Tensor:
    sigma, delta, iterations = p
    quantised = torch.floor(D.gaussian_blur(x, sigma) * 255) / 255  # the generator's np.uint8 step
    return D.gaussian_blur(D.shuffle_pixels(quantised, delta, iterations, g), sigma)


def _motion_blur(x: torch.Tensor, p: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    return D.motion_blur(x, *p, angles=_uniform(x.shape[0], -45, 45, g))


def _zoom_blur(x: torch.Tensor, zooms: int, g: torch.Generator) -> torch.Tensor:
    total = x.clone()
    for k in range(zooms):  # factors 1.00, 1.01, ..., 1 + (zooms - 1) / 100
        total += D.clipped_zoom(x, 1 + k / 100)
    return total / (zooms + 1)


def _snow(x: torch.Tensor, p: tuple[float, ...], g: torch.Generator) -> torch.Tensor:
    loc, scale, zoom, threshold, radius, sigma, keep = p
    n, _, h, w = x.shape
    layer = D.clipped_zoom(torch.randn((n, 1, h, w), generator=g) * scale + loc, zoom)
    layer = torch.floor(torch.where(layer < threshold, 0, layer).clamp(0, 1) * 255) / 255  # through a PNG
    layer = torch.round(D.motion_blur(layer, radius, sigma, _uniform(n, -135, -45, g)) * 255) / 255
    x = keep * x + (1 - keep) * torch.maximum(x, D.to_gray(x) * 1.5 + 0.5)
    return x + layer + layer.flip(-2, -1)


@functools.cache
def _frost_photos() -> tuple[torch.Tensor, ...]:
    """The generator's first five frost photographs (its draw never picks the sixth), downscaled 0.2x."""
    import numpy as np
    from PIL import Image

    spec = importlib.util.find_spec("imagecorruptions")  # found, not imported (that would load OpenCV)
    if spec is None or not spec.submodule_search_locations:
        raise ZooError("the frost corruption needs the frost photographs of the imagecorruptions package: "
                       "pip install 'zoo[robustness]'")
    folder = Path(list(spec.submodule_search_locations)[0]) / "frost"
    photos = []
    for name in ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg"):
        with Image.open(regular_file(folder / name, "a frost photograph")) as image:
            rgb = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float() / 255
        size = (round(rgb.shape[1] * 0.2), round(rgb.shape[2] * 0.2))
        photos.append(torch.nn.functional.interpolate(rgb[None], size=size, mode="bilinear", align_corners=False,
                                                      antialias=False)[0])
    return tuple(photos)


def _frost(x: torch.Tensor, p: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    keep, frost = p
    photos = _frost_photos()
    n, _, h, w = x.shape
    picks = torch.randint(0, len(photos), (n,), generator=g).tolist()
    crops = []
    for k in picks:
        photo = photos[k]
        top = int(torch.randint(0, photo.shape[1] - h, (1,), generator=g))
        left = int(torch.randint(0, photo.shape[2] - w, (1,), generator=g))
        crops.append(photo[:, top:top + h, left:left + w])
    return keep * x + frost * torch.stack(crops)


def _fog(x: torch.Tensor, p: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    amount, decay = p
    n, _, h, w = x.shape
    size = 1 << (max(h, w) - 1).bit_length()
    brightest = x.amax(dim=(1, 2, 3), keepdim=True)
    fog = D.plasma_fractal(n, size, decay, g)[:, None, :h, :w].to(x.dtype)
    return (x + amount * fog) * brightest / (brightest + amount)


def _brightness(x: torch.Tensor, shift: float, g: torch.Generator) -> torch.Tensor:
    return D.scale_value(x, shift)


def _contrast(x: torch.Tensor, factor: float, g: torch.Generator) -> torch.Tensor:
    means = x.mean(dim=(2, 3), keepdim=True)
    return (x - means) * factor + means


def _elastic(x: torch.Tensor, p: tuple[float, float, float], g: torch.Generator) -> torch.Tensor:
    """A random affine warp of three points around the centre, then a smooth random displacement field."""
    n, _, h, w = x.shape
    alpha, sigma, shake = (h * v for v in p)
    c, s = h // 2, min(h, w) // 3
    src = torch.tensor([[c + s, c + s], [c + s, c - s], [c - s, c - s]], dtype=torch.float64).expand(n, 3, 2)
    dst = src + (torch.rand((n, 3, 2), generator=g, dtype=torch.float64) * 2 - 1) * shake
    ones = torch.ones(n, 3, 1, dtype=torch.float64)
    inverse = torch.linalg.solve(torch.cat([dst, ones], dim=2), src).transpose(1, 2)  # dst -> src, N x 2 x 3
    warped = D.affine_warp(x, inverse)
    fields = [D.gaussian_blur(torch.rand((n, 1, h, w), generator=g) * 2 - 1, sigma, truncate=3, mode="symmetric")
              [:, 0] * alpha for _ in range(2)]
    return D.displace(warped, *fields)


def _through_pil(make: Callable[[Any], D.PilFn]) -> Op:
    def op(x: torch.Tensor, p: Any, g: torch.Generator) -> torch.Tensor:
        images = torch.round(x * 255).to(torch.uint8)
        return D.pil_roundtrip(images, make(p)).float() / 255
    return op


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("gaussian_noise", "noise", _gaussian_noise, (0.04, 0.06, 0.08, 0.09, 0.10)),
    Corruption("shot_noise", "noise", _shot_noise, (500, 250, 100, 75, 50)),
    Corruption("impulse_noise", "noise", _impulse_noise, (0.01, 0.02, 0.03, 0.05, 0.07)),
    Corruption("defocus_blur", "blur", _defocus_blur, ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))),
    Corruption("glass_blur", "blur", _glass_blur,
               ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))),
    Corruption("motion_blur", "blur", _motion_blur, ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))),
    Corruption("zoom_blur", "blur", _zoom_blur, (6, 11, 16, 21, 26)),
    Corruption("snow", "weather", _snow, ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                                          (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                                          (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))),
    Corruption("frost", "weather", _frost, ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))),
    Corruption("fog", "weather", _fog, ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))),
    Corruption("brightness", "weather", _brightness, (0.05, 0.1, 0.15, 0.2, 0.3)),
    Corruption("contrast", "digital", _contrast, (0.75, 0.5, 0.4, 0.3, 0.15)),
    Corruption("elastic_transform", "digital", _elastic,
               ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))),
    Corruption("pixelate", "digital", _through_pil(D.box_pixelate), (0.95, 0.9, 0.85, 0.75, 0.65)),
    Corruption("jpeg_compression", "digital", _through_pil(D.jpeg), (80, 65, 58, 50, 40)),
)}
FAMILIES = ("noise", "blur", "weather", "digital")


def parse_corruptions(value: str) -> tuple[str, ...]:
    """``all``, a family (``noise``, ``blur``, ``weather``, ``digital``) or names, comma-separated."""
    names: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if part == "all":
            names += CORRUPTIONS
        elif part in FAMILIES:
            names += [c.name for c in CORRUPTIONS.values() if c.family == part]
        elif part in CORRUPTIONS:
            names.append(part)
        else:
            raise InvalidArgumentError(f"unknown corruption {part!r}: use all, a family ({', '.join(FAMILIES)}) or "
                                       f"names from {', '.join(CORRUPTIONS)}")
    return tuple(dict.fromkeys(names))


def check_available(names: tuple[str, ...]) -> None:
    """Fail now, before any work, when a corruption asked for needs what is not installed (frost's photographs)."""
    if "frost" in names:
        _frost_photos()


def parse_severities(value: str) -> tuple[int, ...]:
    """``3``, ``1-5`` or ``1,3,5``: severities from 1 to 5."""
    found: list[int] = []
    try:
        for part in (p.strip() for p in value.split(",")):
            low, dash, high = part.partition("-")
            found += range(int(low), int(high if dash else low) + 1)
    except ValueError:
        raise InvalidArgumentError(f"--severity takes 1-5, 3 or 1,3,5, got {value!r}") from None
    if not found or any(s not in SEVERITIES for s in found):
        raise InvalidArgumentError(f"severities run from 1 to 5, got {value!r}")
    return tuple(sorted(set(found)))


def _generator(name: str, severity: int, seed: int) -> torch.Generator:
    digest = hashlib.sha256(f"zoo-corruption:{seed}:{name}:{severity}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2 ** 63 - 1))


def corrupt(images: torch.Tensor, name: str, severity: int, *, seed: int = 0) -> torch.Tensor:
    """``images`` (uint8 N x 3 x H x W) with corruption ``name`` at ``severity``, as uint8: clipped to [0, 1] and
    truncated to 0-255 as the generator's ``np.uint8`` does. The same arguments give the same bytes."""
    if name not in CORRUPTIONS:
        parse_corruptions(name)  # raises the one-line error with the known names
    if severity not in SEVERITIES:
        raise InvalidArgumentError(f"severities run from 1 to 5, got {severity}")
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise InvalidArgumentError(f"corruptions are defined for RGB images (uint8 N x 3 x H x W), got "
                                   f"{images.dtype} {tuple(images.shape)}")
    corruption = CORRUPTIONS[name]
    g = _generator(name, severity, seed)
    out = torch.empty_like(images)
    with torch.no_grad():
        for start in range(0, len(images), _CHUNK):
            x = images[start:start + _CHUNK].float() / 255
            y = corruption.op(x, corruption.params[severity - 1], g)
            out[start:start + _CHUNK] = torch.floor(y.clamp(0, 1) * 255 + 1e-4).to(torch.uint8)
    return out


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/zoo/corruptions`` (``~/.cache/zoo/corruptions``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "zoo" / "corruptions"


def _sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def _cached(path: Path, meta: dict[str, str], shape: torch.Size) -> torch.Tensor | None:
    """The cached images when the file is what its name promises (metadata, shape, content hash), else None."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(regular_file(path, "a corruption cache file")), framework="pt") as f:
            stored = f.metadata() or {}
            images = f.get_tensor("images")
    except (OSError, ZooError, SafetensorError, ValueError, RuntimeError) as e:
        _logger.warning("ignoring the corruption cache file %s: %s", path, e)
        return None
    if any(stored.get(k) != v for k, v in meta.items()) or images.shape != shape or images.dtype != torch.uint8 \
            or stored.get("sha256") != _sha256(images):
        _logger.warning("ignoring the corruption cache file %s: it does not match its key or its hash", path)
        return None
    return images


def corrupt_split(split: Split, name: str, severity: int, *, seed: int = 0, cache: bool = True
                  ) -> tuple[Split, bool]:
    """``split`` with its images corrupted (``corrupt``), and whether they came from the cache. The cache key
    is the source images' sha256 with the corruption, severity, seed and ``GENERATOR_VERSION``."""
    from safetensors.torch import save_file

    meta = {"corruption": name, "severity": str(severity), "seed": str(seed), "version": str(GENERATOR_VERSION),
            "source_sha256": _sha256(split.images)}
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:24]
    path = cache_dir() / f"{name}-{severity}-{key}.safetensors"
    images = _cached(path, meta, split.images.shape) if cache and path.exists() else None
    hit = images is not None
    if images is None:
        images = corrupt(split.images, name, severity, seed=seed)
        if cache:
            with atomic_path(path) as tmp:
                save_file({"images": images}, str(tmp), metadata={**meta, "sha256": _sha256(images)})
    verification = f"{split.verification}; corrupted: {name}, severity {severity}, seed {seed} (CIFAR-10-C style)"
    return dataclasses.replace(split, images=images, verification=verification), hit
