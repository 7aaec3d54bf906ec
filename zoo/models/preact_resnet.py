"""Pre-activation ResNets for 32x32 input, one class for the pre-activation ResNet-18/34 and the Wide ResNets.

Paper: K. He, X. Zhang, S. Ren, J. Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016.

- ``preactresnet18``, ``preactresnet34``: the layout of kuangliu/pytorch-cifar (``models/preact_resnet.py``):
  a 3x3 stride-1 stem conv, four stages of 64-128-256-512 channels of pre-activation basic blocks
  (BN-ReLU-conv3x3-BN-ReLU-conv3x3, a 1x1-conv projection of the pre-activated input where the shape
  changes, none of them with a BatchNorm after the addition), global average pool, Linear. As in that
  source there is no BN-ReLU after the last block. Module names are those of that source.
- The Wide ResNets (``zoo.models.wide_resnet``) are this network with a final BN-ReLU, three stages and
  Dropout between the two convs of a block.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..metadata import KUANGLIU, PublicResult
from ..registry import register_model
from ._head import ClassifierMixin

__all__ = ["PreActResNet", "PreActBlock"]


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3 (stride), BN-ReLU-(Dropout)-conv3x3, plus the input or its 1x1-conv projection."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.project = stride != 1 or in_planes != planes
        # the projection sees the pre-activated input, as in the source; an identity shortcut sees x itself
        self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False)) if self.project \
            else nn.Sequential()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.project else x
        out = self.conv1(out)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + shortcut


class PreActResNet(ClassifierMixin, nn.Module):
    """3x3 stride-1 stem, stages of pre-activation blocks (the first at stride 1, the others at stride 2),
    an optional final BN-ReLU, global average pool, Linear."""

    def __init__(self, layers: list[int], widths: list[int], *, stem: int = 64, final_norm: bool = False,
                 dropout: float = 0.0, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, stem, 3, 1, 1, bias=False)
        in_planes = stem
        # Stages are attributes layer1..layer4 (as in the source); a three-stage network has an empty layer4.
        for i in range(4):
            stage: nn.Module = nn.Identity()
            if i < len(layers):
                blocks = []
                for j in range(layers[i]):
                    blocks.append(PreActBlock(in_planes, widths[i], 2 if i > 0 and j == 0 else 1, dropout))
                    in_planes = widths[i]
                stage = nn.Sequential(*blocks)
            setattr(self, f"layer{i + 1}", stage)
        self.final = nn.Sequential(nn.BatchNorm2d(in_planes), nn.ReLU(inplace=True)) if final_norm else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.linear = nn.Linear(in_planes, num_classes)
        self.classifier_path = "linear"
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        return self.final(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.pool(x))
        return x if pre_logits else self.linear(x)


def _create_preact_resnet(layers: list[int], *, num_classes: int = 10, in_chans: int | None = None
                          ) -> PreActResNet:
    return PreActResNet(layers, [64, 128, 256, 512], num_classes=num_classes,
                        in_chans=3 if in_chans is None else in_chans)


_SRC = "He et al. 2016 (Identity Mappings); layout of kuangliu/pytorch-cifar (models/preact_resnet.py)"


@register_model(family="preact_resnet", source=_SRC, dataset="cifar10", expected_params=11_171_146,
                expected_flops=1_110_845_440,
                reported_accuracy=95.11,
                public=(PublicResult(95.11, *KUANGLIU),))
def preactresnet18(*, num_classes: int = 10, in_chans: int | None = None) -> PreActResNet:
    """Pre-activation ResNet-18 for 32x32 input: basic blocks [2, 2, 2, 2], 64-512 channels, stride-1 stem."""
    return _create_preact_resnet([2, 2, 2, 2], num_classes=num_classes, in_chans=in_chans)


@register_model(family="preact_resnet", source=_SRC, dataset="cifar10", expected_params=21_279_306,
                expected_flops=2_318_804_992)
def preactresnet34(*, num_classes: int = 10, in_chans: int | None = None) -> PreActResNet:
    """Pre-activation ResNet-34 for 32x32 input: basic blocks [3, 4, 6, 3], 64-512 channels, stride-1 stem."""
    return _create_preact_resnet([3, 4, 6, 3], num_classes=num_classes, in_chans=in_chans)
