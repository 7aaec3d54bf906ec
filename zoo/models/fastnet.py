"""FastNet: a compact CIFAR network built for time-to-accuracy, after the airbench line of work.

Source: K. Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", arXiv:2404.00498 (2024), the
airbench94 network (section 3), which descends from D. Page's ResNet-9 / DAWNBench work ("How to
train your ResNet", 2018). Written for zoo from the paper's description:

- a 2x2 stem convolution (no padding, so 32x32 becomes 31x31) whose 24 filters are the 12
  eigen-directions of 2x2 patch covariance scaled by 1/sqrt(eigenvalue), and their negatives
  (``init_from_data``: "patch whitening"); the filters are frozen, the bias trains;
- three blocks of conv 3x3 -> max-pool 2 -> BatchNorm -> GELU -> conv 3x3 -> BatchNorm -> GELU,
  widths 64-256-256 (``fastnet``), 128-384-384 (``fastnet_wide``, the paper's airbench95 widths) or
  32-64-128 (``fastnet_mnist``, zoo's narrow variant for 28x28 grey images);
- convolutions start from PyTorch's default initialisation with their first ``in_channels`` filters
  set to the identity (``nn.init.dirac_``), as in the paper's ablations;
- BatchNorm with frozen unit scale (only the shift trains), running statistics with momentum 0.4;
- a 3x3 max-pool to 1x1, a bias-free linear head, and logits multiplied by 1/9.

The stem's whitening needs training images; ``zoo.train`` calls ``init_from_data`` with the first
5,000 normalised training images before the first step. A model that never sees data keeps its
random (Kaiming) stem and still trains, more slowly.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..metadata import Metrics, Weights
from ..registry import register_model
from ._head import ClassifierMixin

__all__ = ["FastNet"]

_SOURCE = "Jordan 2024, arXiv:2404.00498 (airbench94), section 3; after Page's ResNet-9 (DAWNBench, 2018)"

# Widths of the three conv groups per variant.
_CONFIGS: dict[str, tuple[int, int, int]] = {
    "fastnet": (64, 256, 256),  # airbench94
    "fastnet_wide": (128, 384, 384),  # airbench95
    "fastnet_mnist": (32, 64, 128),  # narrow, for 28x28 grey images
}


def _norm(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, momentum=0.4, eps=1e-12)
    bn.weight.requires_grad_(False)  # unit scale, frozen: only the shift trains
    return bn


class ConvGroup(nn.Sequential):
    """conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.MaxPool2d(2), _norm(out_channels),
            nn.GELU(), nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), _norm(out_channels),
            nn.GELU(),
        )


class FastNet(ClassifierMixin, nn.Module):
    """Whitened 2x2 stem, three conv groups, max-pool, linear head scaled by ``scale``."""

    def __init__(self, widths: tuple[int, int, int] = (64, 256, 256), *, num_classes: int = 10, in_chans: int = 3,
                 scale: float = 1 / 9) -> None:
        super().__init__()
        stem_width = 2 * in_chans * 2 * 2
        self.stem = nn.Conv2d(in_chans, stem_width, 2, bias=True)
        self.stem.weight.requires_grad_(False)  # set by init_from_data (or left at its random start)
        self.act = nn.GELU()
        self.layer1 = ConvGroup(stem_width, widths[0])
        self.layer2 = ConvGroup(widths[0], widths[1])
        self.layer3 = ConvGroup(widths[1], widths[2])
        self.pool = nn.MaxPool2d(3)
        self.flatten = nn.Flatten(1)
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.classifier_path = "head"
        self.scale = scale
        with torch.no_grad():  # partial identity start: the first in_channels filters pass their input through
            for m in self.modules():
                if isinstance(m, nn.Conv2d) and m is not self.stem:
                    nn.init.dirac_(m.weight[:m.in_channels])

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the stem to whiten 2x2 patches of ``images`` (normalised N x C x H x W float)."""
        k = self.stem.kernel_size[0]
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # N x C x H' x W' x k x k
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1] * k * k).double()
        patches = patches - patches.mean(0)
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]).flip(0)
        filters = filters.reshape(-1, images.shape[1], k, k).to(self.stem.weight)
        self.stem.weight.copy_(torch.cat([filters, -filters]))
        self.stem.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.head(self.flatten(self.pool(x))) * self.scale

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.layer2(self.layer1(self.act(self.stem(x)))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.pool(x))
        return x if pre_logits else self.head(x) * self.scale


def _create_fastnet(variant: str, *, num_classes: int = 10, in_chans: int | None = None,
                    default_chans: int = 3) -> FastNet:
    return FastNet(_CONFIGS[variant], num_classes=num_classes, in_chans=default_chans if in_chans is None else in_chans)


# Released checkpoints (tools/release_weights.py prints each entry from the stored file).
_WEIGHTS: dict[str, tuple[Weights, ...]] = {
    "fastnet": (
        Weights(
            arch="fastnet", tag="cifar10", file_name="fastnet.cifar10-02288f2b.safetensors",
            sha256="02288f2bd76abd22a9ff590cdfad4ab1d7df4671b69d8ad734e88c123789718f",
            dataset="cifar10",
            metrics=Metrics(top1=93.78, top5=99.79, loss=0.374111, split="test", num_images=10000),
            num_params=1972792, gflops=0.236295, recipe="fastnet.cifar10.pr26",
            train_time_s=1741.6, hardware="AMD EPYC Zen 4 (family 25 model 17), avx512-bf16, 2 threads, bf16",
            file_size=7905288, dtype="float32", temperature=0.3588,
        ),
    ),
    "fastnet_mnist": (
        Weights(
            arch="fastnet_mnist", tag="mnist", file_name="fastnet_mnist.mnist-3b302da9.safetensors",
            sha256="3b302da93f45736ca96f12f57b83f9500702d62f3b77d506b80e5ca14e14be5d",
            dataset="mnist",
            metrics=Metrics(top1=99.61, top5=100.0, loss=0.14424, split="test", num_images=10000),
            num_params=290216, gflops=0.02337, recipe="fastnet_mnist.mnist",
            train_time_s=37.3, hardware="AMD EPYC, class not recorded, 2 threads, bf16",
            file_size=1168952, dtype="float32", temperature=0.3981,
        ),
    ),
}


@register_model(family="fastnet", source=_SOURCE, dataset="cifar10", expected_params=1_972_792,
                expected_flops=236_294_720,
                weights=_WEIGHTS.get("fastnet", ()))
def fastnet(*, num_classes: int = 10, in_chans: int | None = None) -> FastNet:
    """FastNet, widths 64-256-256 (the airbench94 network): built to reach 94% on CIFAR-10 in minutes."""
    return _create_fastnet("fastnet", num_classes=num_classes, in_chans=in_chans)


@register_model(family="fastnet", source=_SOURCE, dataset="cifar10", expected_params=4_606_520,
                expected_flops=603_121_728)
def fastnet_wide(*, num_classes: int = 10, in_chans: int | None = None) -> FastNet:
    """FastNet, widths 128-384-384 (the airbench95 widths)."""
    return _create_fastnet("fastnet_wide", num_classes=num_classes, in_chans=in_chans)


@register_model(family="fastnet", source=_SOURCE, dataset="mnist", expected_params=290_216, expected_flops=23_370_304,
                weights=_WEIGHTS.get("fastnet_mnist", ()))
def fastnet_mnist(*, num_classes: int = 10, in_chans: int | None = None) -> FastNet:
    """FastNet, widths 32-64-128, for MNIST-style 28x28 grey images (27x27 after the stem, 1x1 before the head)."""
    return _create_fastnet("fastnet_mnist", num_classes=num_classes, in_chans=in_chans, default_chans=1)
