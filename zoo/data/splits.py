"""A split in memory (``Split``) and its fast batches (``batches``).

A split is one uint8 tensor; each batch is sliced, moved to the device, converted to float, scaled by 1/255
and normalised, with no per-image PIL round trip. Augmentation runs batched on tensors too
(``zoo.data.augment``, airbench style).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InvalidArgumentError
from ..specs import DatasetSpec

__all__ = ["Split", "batches"]


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a dataset, in memory.

    ``images`` is uint8 N x C x H x W (contiguous) for image sets and float32 N x F for tabular ones;
    ``labels`` is int64 N. ``verification`` says which check passed; ``indices`` (sample only) are
    positions in the full split.
    """

    dataset: DatasetSpec
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    is_sample: bool
    verification: str
    root: Path | None = None
    indices: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def head(self, n: int | None) -> Split:
        """The first ``n`` images (all of them when ``n`` is None or not smaller than the split)."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise InvalidArgumentError(f"a split's first n images need n >= 1, got {n}")
        indices = self.indices[:n] if self.indices is not None else None
        return dataclasses.replace(self, images=self.images[:n], labels=self.labels[:n], indices=indices)

    def tail(self, n: int) -> Split:
        """The last ``n`` images (all of them when ``n`` is not smaller than the split)."""
        if n >= len(self):
            return self
        if n < 1:
            raise InvalidArgumentError(f"a split's last n images need n >= 1, got {n}")
        indices = self.indices[-n:] if self.indices is not None else None
        return dataclasses.replace(self, images=self.images[-n:], labels=self.labels[-n:], indices=indices)

    def __repr__(self) -> str:
        return (f"Split(dataset={self.dataset.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={tuple(self.images.shape[1:])}, is_sample={self.is_sample}, "
                f"verification={self.verification!r}, root={self.root})")


def _stats(values: tuple[float, ...] | list[float], x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return torch.as_tensor(values, dtype=dtype, device=x.device).reshape(shape)


def _normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The same operations as ``ToTensor()`` then ``Normalize(mean, std)``, on a whole batch."""
    compute = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    out = x.to(compute, copy=True)
    if x.dtype == torch.uint8:
        out.div_(255)
    out.sub_(mean).div_(std)
    return out if out.dtype == dtype else out.to(dtype)


def batches(split: Split, batch_size: int, *, mean: tuple[float, ...] | None = None,
            std: tuple[float, ...] | None = None, device: str | torch.device = "cpu",
            dtype: torch.dtype = torch.float32, channels_last: bool = False, shuffle: bool = False,
            generator: torch.Generator | None = None, drop_last: bool = False
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield normalised ``(x, y)`` batches of ``split`` on ``device``.

    The uint8 split is moved to ``device`` once; each batch is sliced (or gathered, with
    ``shuffle``), converted to ``dtype``, scaled by 1/255 and normalised with ``mean``/``std``
    (default: the dataset's). ``generator`` drives the shuffle. A split whose tensors are already on
    ``device`` (``dataclasses.replace(split, images=..., labels=...)``) is not copied again.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    images, labels = split.images.to(device), split.labels.to(device)
    compute = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    mean_t = _stats(split.dataset.mean if mean is None else mean, images, compute)
    std_t = _stats(split.dataset.std if std is None else std, images, compute)
    n = len(split)
    on = generator.device if generator is not None else torch.device("cpu")
    order = torch.randperm(n, generator=generator, device=on).to(device) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        sel = slice(start, min(start + batch_size, n)) if order is None else order[start:start + batch_size]
        x = _normalize(images[sel], mean_t, std_t, dtype)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, labels[sel]
