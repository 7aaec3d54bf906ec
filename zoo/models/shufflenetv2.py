"""ShuffleNetV2 for 32x32 input.

Paper: N. Ma, X. Zhang, H.-T. Zheng, J. Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN
Architecture Design", ECCV 2018.

Layout of chenyaofo/pytorch-cifar-models (``pytorch_cifar_models/shufflenetv2.py``, itself torchvision's
ShuffleNetV2): the paper's Table 5 (stages of 4, 8, 4 units; widths per multiplier) with a stride-1 3x3 stem
and no max-pool, so the three stride-2 stages take a 32x32 image to 4x4. The module names are those of that
source, so its checkpoints load.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..metadata import CHENYAOFO, PublicResult
from ..registry import register_model
from ._head import ClassifierMixin

__all__ = ["ShuffleNetV2"]

_REPEATS = (4, 8, 4)
# multiplier -> (stem, stage2, stage3, stage4, conv5) output channels, Ma et al. Table 5
_WIDTHS: dict[str, tuple[int, int, int, int, int]] = {
    "x0_5": (24, 48, 96, 192, 1024),
    "x1_0": (24, 116, 232, 464, 1024),
    "x1_5": (24, 176, 352, 704, 1024),
    "x2_0": (24, 244, 488, 976, 2048),
}


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.size()
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


def _dw_bn(channels: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False), nn.BatchNorm2d(channels)]


def _pw_bn_relu(inp: int, oup: int) -> list[nn.Module]:
    return [nn.Conv2d(inp, oup, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True)]


class ShuffleUnit(nn.Module):
    """Stride 1: split the channels, transform one half. Stride 2: both halves from the whole input. Then shuffle."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = oup // 2
        self.branch1 = nn.Sequential(*_dw_bn(inp, stride), *_pw_bn_relu(inp, half)) if stride > 1 else nn.Sequential()
        self.branch2 = nn.Sequential(*_pw_bn_relu(inp if stride > 1 else half, half), *_dw_bn(half, stride),
                                     *_pw_bn_relu(half, half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(ClassifierMixin, nn.Module):
    """3x3 stride-1 stem, three stages of shuffle units (each opening at stride 2), 1x1 conv5, mean pool, Linear."""

    def __init__(self, widths: tuple[int, int, int, int, int], *, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU(inplace=True))
        c = widths[0]
        for i, (repeats, out) in enumerate(zip(_REPEATS, widths[1:4])):
            units = [ShuffleUnit(c, out, 2)] + [ShuffleUnit(out, out, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
            c = out
        self.conv5 = nn.Sequential(*_pw_bn_relu(c, widths[4]))
        self.fc = nn.Linear(widths[4], num_classes)
        self.classifier_path = "fc"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x).mean([2, 3]))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv5(self.stage4(self.stage3(self.stage2(self.conv1(x)))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean([2, 3])
        return x if pre_logits else self.fc(x)


def _create_shufflenetv2(variant: str, *, num_classes: int = 10, in_chans: int | None = None) -> ShuffleNetV2:
    return ShuffleNetV2(_WIDTHS[variant], num_classes=num_classes, in_chans=3 if in_chans is None else in_chans)


_SRC = "Ma et al. 2018, Table 5; CIFAR stem of chenyaofo/pytorch-cifar-models (shufflenetv2.py)"


def _rounded(m: str) -> str:
    return f"chenyaofo/pytorch-cifar-models' README rounds to {m}M."


@register_model(family="shufflenetv2", source=_SRC, dataset="cifar10", expected_params=352_042,
                expected_flops=21_804_032, params_note=_rounded("0.35"), reported_accuracy=90.13,
                public=(PublicResult(90.13, *CHENYAOFO),))
def shufflenetv2_x0_5(*, num_classes: int = 10, in_chans: int | None = None) -> ShuffleNetV2:
    """ShuffleNetV2 0.5x for 32x32 input: stride-1 stem, no max-pool."""
    return _create_shufflenetv2("x0_5", num_classes=num_classes, in_chans=in_chans)


@register_model(family="shufflenetv2", source=_SRC, dataset="cifar10", expected_params=1_263_854,
                expected_flops=90_004_224, params_note=_rounded("1.26"), reported_accuracy=92.98,
                public=(PublicResult(92.98, *CHENYAOFO),))
def shufflenetv2_x1_0(*, num_classes: int = 10, in_chans: int | None = None) -> ShuffleNetV2:
    """ShuffleNetV2 1.0x for 32x32 input: stride-1 stem, no max-pool."""
    return _create_shufflenetv2("x1_0", num_classes=num_classes, in_chans=in_chans)


@register_model(family="shufflenetv2", source=_SRC, dataset="cifar10", expected_params=2_488_874,
                expected_flops=188_519_424, params_note=_rounded("2.49"), reported_accuracy=93.55,
                public=(PublicResult(93.55, *CHENYAOFO),))
def shufflenetv2_x1_5(*, num_classes: int = 10, in_chans: int | None = None) -> ShuffleNetV2:
    """ShuffleNetV2 1.5x for 32x32 input: stride-1 stem, no max-pool."""
    return _create_shufflenetv2("x1_5", num_classes=num_classes, in_chans=in_chans)


@register_model(family="shufflenetv2", source=_SRC, dataset="cifar10", expected_params=5_365_486,
                expected_flops=375_622_400, params_note=_rounded("5.37"), reported_accuracy=93.81,
                public=(PublicResult(93.81, *CHENYAOFO),))
def shufflenetv2_x2_0(*, num_classes: int = 10, in_chans: int | None = None) -> ShuffleNetV2:
    """ShuffleNetV2 2.0x for 32x32 input: stride-1 stem, no max-pool."""
    return _create_shufflenetv2("x2_0", num_classes=num_classes, in_chans=in_chans)
