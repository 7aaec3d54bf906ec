"""MobileNetV2 for 32x32 input.

Paper: M. Sandler, A. Howard, M. Zhu, A. Zhmoginov, L.-C. Chen, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018.

Layout of chenyaofo/pytorch-cifar-models (``pytorch_cifar_models/mobilenetv2.py``, itself torchvision's
MobileNetV2): the paper's Table 2 with the stem and the second bottleneck stage at stride 1 instead of 2, so a
32x32 image reaches the last stage at 4x4; channel counts ``c x width`` rounded to a multiple of 8; the last
1x1 conv keeps 1280 channels below width 1 and widens above it; Dropout(0.2) before the Linear. The module
names are those of that source, so its checkpoints load.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..metadata import CHENYAOFO, KUANGLIU, PublicResult
from ..registry import register_model
from ._head import ClassifierMixin, run_head

__all__ = ["MobileNetV2"]

# (expansion t, output channels c, repeats n, first stride s), Sandler et al. Table 2 with the CIFAR strides
_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),  # stride 2 in the paper
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_STEM, _LAST = 32, 1280


def _make_divisible(v: float, divisor: int = 8) -> int:
    """The nearest multiple of ``divisor`` (at least ``divisor``), never more than 10% below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_bn_relu6(in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1,
                   groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_planes),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expansion (unless t = 1), 3x3 depthwise, linear 1x1 projection; a residual when the shape is kept."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = [_conv_bn_relu6(inp, hidden, 1)] if expand_ratio != 1 else []
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(ClassifierMixin, nn.Module):
    """Stride-1 stem, inverted residual stages, 1x1 conv to ``last_channel``, global average pool, Dropout, Linear."""

    def __init__(self, width_mult: float = 1.0, *, num_classes: int = 10, in_chans: int = 3,
                 dropout: float = 0.2) -> None:
        super().__init__()
        c = _make_divisible(_STEM * width_mult)
        self.last_channel = _make_divisible(_LAST * max(1.0, width_mult))
        features: list[nn.Module] = [_conv_bn_relu6(in_chans, c, 3, 1)]
        for t, channels, n, s in _STAGES:
            out = _make_divisible(channels * width_mult)
            for i in range(n):
                features.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        features.append(_conv_bn_relu6(c, self.last_channel, 1))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))
        self.classifier_path = "classifier.1"
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return run_head(self.classifier, self.flatten(self.pool(x)), pre_logits)


def _create_mobilenetv2(width_mult: float, *, num_classes: int = 10, in_chans: int | None = None,
                        dropout: float = 0.2) -> MobileNetV2:
    return MobileNetV2(width_mult, num_classes=num_classes, in_chans=3 if in_chans is None else in_chans,
                       dropout=dropout)


_SRC = "Sandler et al. 2018, Table 2; CIFAR strides of chenyaofo/pytorch-cifar-models (mobilenetv2.py)"


def _rounded(m: str) -> str:
    return f"chenyaofo/pytorch-cifar-models' README rounds to {m}M."


@register_model(family="mobilenetv2", source=_SRC, dataset="cifar10", expected_params=700_490,
                expected_flops=55_938_048, params_note=_rounded("0.70"), reported_accuracy=92.88,
                public=(PublicResult(92.88, *CHENYAOFO),))
def mobilenetv2_x0_5(*, num_classes: int = 10, in_chans: int | None = None, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 width 0.5 for 32x32 input (stem and second stage at stride 1)."""
    return _create_mobilenetv2(0.5, num_classes=num_classes, in_chans=in_chans, dropout=dropout)


@register_model(family="mobilenetv2", source=_SRC, dataset="cifar10", expected_params=1_368_234,
                expected_flops=118_620_160, params_note=_rounded("1.37"), reported_accuracy=93.72,
                public=(PublicResult(93.72, *CHENYAOFO),))
def mobilenetv2_x0_75(*, num_classes: int = 10, in_chans: int | None = None, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 width 0.75 for 32x32 input (stem and second stage at stride 1)."""
    return _create_mobilenetv2(0.75, num_classes=num_classes, in_chans=in_chans, dropout=dropout)


@register_model(family="mobilenetv2", source=_SRC, dataset="cifar10", expected_params=2_236_682,
                expected_flops=175_952_896, params_note=_rounded("2.24"), reported_accuracy=93.79,
                public=(PublicResult(93.79, *CHENYAOFO), PublicResult(94.43, *KUANGLIU),))
def mobilenetv2_x1_0(*, num_classes: int = 10, in_chans: int | None = None, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 width 1.0 for 32x32 input (stem and second stage at stride 1)."""
    return _create_mobilenetv2(1.0, num_classes=num_classes, in_chans=in_chans, dropout=dropout)


@register_model(family="mobilenetv2", source=_SRC, dataset="cifar10", expected_params=4_333_706,
                expected_flops=340_146_688, params_note=_rounded("4.33"), reported_accuracy=94.22,
                public=(PublicResult(94.22, *CHENYAOFO),))
def mobilenetv2_x1_4(*, num_classes: int = 10, in_chans: int | None = None, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 width 1.4 for 32x32 input (stem and second stage at stride 1)."""
    return _create_mobilenetv2(1.4, num_classes=num_classes, in_chans=in_chans, dropout=dropout)
