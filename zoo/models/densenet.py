"""DenseNet-BC for CIFAR.

Paper: G. Huang, Z. Liu, L. van der Maaten, K. Q. Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017.

DenseNet-BC (bottleneck and compression 0.5) of section 3 and Table 2 for CIFAR, laid out as osmr/imgclsmob's
pytorchcv ``densenet_cifar.py``: a 3x3 stem conv of 2k channels, three dense blocks of (L - 4) / 6 units
(BN-ReLU-conv1x1 to 4k, BN-ReLU-conv3x3 to k, concatenated to the input), a transition between blocks
(BN-ReLU-conv1x1 halving the channels, 2x2 average pool), a final BN-ReLU, global average pool, Linear.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..metadata import PYTORCHCV, PublicResult
from ..registry import register_model
from ._head import ClassifierMixin

__all__ = ["DenseNet"]

# variant -> (depth L, growth rate k)
_CFGS: dict[str, tuple[int, int]] = {"bc_100_k12": (100, 12)}


def _bn_relu_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2, bias=False))


class DenseUnit(nn.Module):
    """Bottleneck unit: BN-ReLU-conv1x1 (4k), BN-ReLU-conv3x3 (k), the k new channels appended to the input."""

    def __init__(self, in_channels: int, growth: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = _bn_relu_conv(in_channels, 4 * growth, 1)
        self.conv2 = _bn_relu_conv(4 * growth, growth, 3)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.dropout(self.conv2(self.conv1(x)))), dim=1)


class DenseNet(ClassifierMixin, nn.Module):
    """3x3 stem, dense blocks joined by compressing transitions, final BN-ReLU, global average pool, Linear."""

    def __init__(self, depth: int, growth: int, *, compression: float = 0.5, dropout: float = 0.0,
                 num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"DenseNet-BC depth must be 6n + 4, got {depth}")
        units = (depth - 4) // 6
        c = 2 * growth
        layers: list[nn.Module] = [nn.Conv2d(in_chans, c, 3, 1, 1, bias=False)]
        for block in range(3):
            if block > 0:
                out = int(c * compression)
                layers += [_bn_relu_conv(c, out, 1), nn.AvgPool2d(2)]
                c = out
            for _ in range(units):
                layers.append(DenseUnit(c, growth, dropout))
                c += growth
        layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(c, num_classes)
        self.classifier_path = "classifier"
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.pool(x))
        return x if pre_logits else self.classifier(x)


def _create_densenet(variant: str, *, num_classes: int = 10, in_chans: int | None = None,
                     dropout: float = 0.0) -> DenseNet:
    depth, growth = _CFGS[variant]
    return DenseNet(depth, growth, dropout=dropout, num_classes=num_classes,
                    in_chans=3 if in_chans is None else in_chans)


@register_model(family="densenet", source="Huang et al. 2017, Table 2 (DenseNet-BC, L=100, k=12); as pytorchcv "
                "(osmr/imgclsmob) densenet_cifar.py", dataset="cifar10", expected_params=769_162,
                expected_flops=575_859_384,
                params_note="Huang et al. round to 0.8M; pytorchcv gives the exact count.", reported_accuracy=95.84,
                public=(PublicResult(95.84, *PYTORCHCV),))
def densenet_bc_100_k12(*, num_classes: int = 10, in_chans: int | None = None, dropout: float = 0.0) -> DenseNet:
    """DenseNet-BC-100 with growth rate 12: three dense blocks of 16 bottleneck units, compression 0.5.

    pytorchcv publishes 769,162 parameters and 4.16% CIFAR-10 error (its converted checkpoint).
    """
    return _create_densenet("bc_100_k12", num_classes=num_classes, in_chans=in_chans, dropout=dropout)
