"""ResNets for 32x32 input, one class for both CIFAR designs.

Papers: K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

- ``resnet18`` ... ``resnet152``: the ImageNet stage layout (Table 1; widths 64-128-256-512, basic or
  bottleneck blocks, 1x1-conv + BatchNorm projection shortcuts) with the stem adapted to 32x32: a 3x3
  stride-1 conv and no max-pool. This is the variant of report 002 (``002_12318041e45b9a7a.txt``,
  section 1.5, Table 3).
- ``resnet20`` ... ``resnet110``: the CIFAR networks of section 4.2: 6n+2 layers in three stages of
  16-32-64 channels and option A shortcuts (identity, with stride-2 subsampling and zero-padded extra
  channels when the shape changes: no parameters). The shortcut is a module, so the network scripts
  and exports.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..metadata import CHENYAOFO, KUANGLIU, PYTORCHCV, Metrics, PublicResult, Weights
from ..registry import register_model
from ._head import ClassifierMixin

__all__ = ["ResNet", "BasicBlock", "Bottleneck"]

# Released checkpoints (tools/release_weights.py prints each entry from the stored file).
_WEIGHTS: dict[str, tuple[Weights, ...]] = {
    "resnet20": (
        Weights(
            arch="resnet20", tag="cifar10", file_name="resnet20.cifar10-74886ce2.safetensors",
            sha256="74886ce2235aba3ee5fc46a338b026c2cc5ea3042d51204965ae9631f50a5e1f",
            dataset="cifar10",
            metrics=Metrics(top1=92.78, top5=99.6, loss=0.294522, split="test", num_images=10000),
            num_params=269722, gflops=0.081102, recipe="resnet20.cifar10.e150",
            train_time_s=9469.0, hardware="AMD EPYC Zen 4 (family 25 model 17), avx512-bf16, 2 threads, bf16",
            file_size=1096080, dtype="float32", temperature=0.4138,
        ),
    ),
    "resnet18": (
        Weights(
            arch="resnet18", tag="cifar10", file_name="resnet18.cifar10-cfe67cd2.safetensors",
            sha256="cfe67cd2f5db08bf9a0ad6e3603b0a23c989cc153a551d970bf430a86139f6db",
            dataset="cifar10",
            metrics=Metrics(top1=95.45, top5=99.84, loss=0.213804, split="test", num_images=10000),
            num_params=11173962, gflops=1.110845, recipe="resnet18.cifar10.e60",
            train_time_s=302.1, hardware="NVIDIA H200, bf16",
            file_size=22379404, dtype="float16", temperature=0.4748,
        ),
    ),
    "resnet56": (
        Weights(
            arch="resnet56", tag="cifar10", file_name="resnet56.cifar10-6fd1aed2.safetensors",
            sha256="6fd1aed28753bc22fdb0c8da63be5be995aa4e2d3eb4afbd972031e509474df7",
            dataset="cifar10",
            metrics=Metrics(top1=93.57, top5=99.45, loss=0.286201, split="test", num_images=10000),
            num_params=853018, gflops=0.250971, recipe="resnet56.cifar10",
            train_time_s=16040.5, hardware="AMD EPYC, class not recorded, 2 threads, bf16",
            file_size=3458672, dtype="float32", temperature=0.4767,
        ),
    ),
}


class ZeroPadShortcut(nn.Module):
    """He et al. option A: subsample by ``stride`` and zero-pad the new channels. No parameters."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad = out_planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        # pad order is (W_left, W_right, H_top, H_bottom, C_front, C_back)
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))


def _shortcut(kind: str, in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    if kind == "A":
        return ZeroPadShortcut(in_planes, out_planes, stride)
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "B") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(shortcut, in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "B") -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _shortcut(shortcut, in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


Block = type[BasicBlock | Bottleneck]


class ResNet(ClassifierMixin, nn.Module):
    """3x3 stride-1 stem (no max-pool), stages of residual blocks, global average pool, linear head."""

    def __init__(self, block: Block, layers: list[int], widths: list[int], *, shortcut: str = "B",
                 num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        # Stages are attributes layer1..layer4 (as in torchvision and the common CIFAR ports), so their
        # state dicts load directly; a three-stage network has an empty layer4.
        for i in range(4):
            stage: nn.Module = nn.Identity()
            if i < len(layers):
                blocks = []
                for j in range(layers[i]):
                    stride = 2 if i > 0 and j == 0 else 1
                    blocks.append(block(in_planes, widths[i], stride, shortcut))
                    in_planes = widths[i] * block.expansion
                stage = nn.Sequential(*blocks)
            setattr(self, f"layer{i + 1}", stage)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.linear = nn.Linear(in_planes, num_classes)
        self.classifier_path = "linear"
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.linear(self.flatten(self.pool(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.pool(x))
        return x if pre_logits else self.linear(x)


def _create_resnet(block: Block, layers: list[int], widths: list[int], shortcut: str, *, num_classes: int = 10,
                   in_chans: int | None = None) -> ResNet:
    return ResNet(block, layers, widths, shortcut=shortcut, num_classes=num_classes,
                  in_chans=3 if in_chans is None else in_chans)


_WIDE = [64, 128, 256, 512]
_CIFAR = [16, 32, 64]
_R002 = "He et al. 2016, Table 1, stem adapted to 32x32; report 002 (002_12318041e45b9a7a.txt), Table 3"
_HE42 = "He et al. 2016, section 4.2 (CIFAR-10), option A shortcuts"


def _rounded(m: str) -> str:
    return f"Report 002 rounds to {m}M."


@register_model(family="resnet", source=_R002, dataset="cifar10", expected_params=11_173_962,
                expected_flops=1_110_845_440,
                params_note=_rounded("11.174"),
                weights=_WEIGHTS["resnet18"],
                public=(PublicResult(93.02, *KUANGLIU),))
def resnet18(*, num_classes: int = 10, in_chans: int | None = None) -> ResNet:
    """ResNet-18 for 32x32 input: basic blocks [2, 2, 2, 2], 3x3 stride-1 stem, no max-pool."""
    return _create_resnet(BasicBlock, [2, 2, 2, 2], _WIDE, "B", num_classes=num_classes, in_chans=in_chans)


@register_model(family="resnet", source=_R002, dataset="cifar10", expected_params=21_282_122,
                expected_flops=2_318_804_992,
                params_note=_rounded("21.282"))
def resnet34(*, num_classes: int = 10, in_chans: int | None = None) -> ResNet:
    """ResNet-34 for 32x32 input: basic blocks [3, 4, 6, 3], 3x3 stride-1 stem, no max-pool."""
    return _create_resnet(BasicBlock, [3, 4, 6, 3], _WIDE, "B", num_classes=num_classes, in_chans=in_chans)


@register_model(family="resnet", source=_R002, dataset="cifar10", expected_params=23_520_842,
                expected_flops=2_595_659_776,
                params_note=_rounded("23.521"))
def resnet50(*, num_classes: int = 10, in_chans: int | None = None) -> ResNet:
    """ResNet-50 for 32x32 input: bottleneck blocks [3, 4, 6, 3], 3x3 stride-1 stem, no max-pool."""
    return _create_resnet(Bottleneck, [3, 4, 6, 3], _WIDE, "B", num_classes=num_classes, in_chans=in_chans)


@register_model(family="resnet", source=_R002, dataset="cifar10", expected_params=42_512_970,
                expected_flops=5_019_967_488,
                params_note=_rounded("42.513"))
def resnet101(*, num_classes: int = 10, in_chans: int | None = None) -> ResNet:
    """ResNet-101 for 32x32 input: bottleneck blocks [3, 4, 23, 3], 3x3 stride-1 stem, no max-pool."""
    return _create_resnet(Bottleneck, [3, 4, 23, 3], _WIDE, "B", num_classes=num_classes, in_chans=in_chans)


@register_model(family="resnet", source=_R002, dataset="cifar10", expected_params=58_156_618,
                expected_flops=7_444_275_200,
                params_note=_rounded("58.157"))
def resnet152(*, num_classes: int = 10, in_chans: int | None = None) -> ResNet:
    """ResNet-152 for 32x32 input: bottleneck blocks [3, 8, 36, 3], 3x3 stride-1 stem, no max-pool."""
    return _create_resnet(Bottleneck, [3, 8, 36, 3], _WIDE, "B", num_classes=num_classes, in_chans=in_chans)


# pytorchcv's CIFAR ResNets (error 5.97 / 4.52 / 3.69% in its README's CIFAR-10 table) have 1x1 projection shortcuts
# where channels grow, zoo's (He et al.'s option A) parameter-free zero padding, and were trained in Gluon.
_PTCV = "projection (option B) shortcuts, {:,} parameters; trained in Gluon and converted"


@register_model(family="resnet_cifar", source=_HE42, dataset="cifar10", expected_params=269_722,
                expected_flops=81_102_080,
                reported_accuracy=91.25,
                weights=_WEIGHTS["resnet20"],
                public=(PublicResult(92.60, *CHENYAOFO), PublicResult(94.03, *PYTORCHCV, note=_PTCV.format(272_474))))
def resnet20(*, num_classes: int = 10, in_chans: int | None = None) -> ResNet:
    """ResNet-20 (n=3): 16-32-64 channels, option A zero-padding shortcuts. He et al. report 8.75% error."""
    return _create_resnet(BasicBlock, [3, 3, 3], _CIFAR, "A", num_classes=num_classes, in_chans=in_chans)


@register_model(family="resnet_cifar", source=_HE42, dataset="cifar10", expected_params=464_154,
                expected_flops=137_725_184,
                reported_accuracy=92.49,
                public=(PublicResult(93.53, *CHENYAOFO),))
def resnet32(*, num_classes: int = 10, in_chans: int | None = None) -> ResNet:
    """ResNet-32 (n=5): 16-32-64 channels, option A zero-padding shortcuts. He et al. report 7.51% error."""
    return _create_resnet(BasicBlock, [5, 5, 5], _CIFAR, "A", num_classes=num_classes, in_chans=in_chans)


@register_model(family="resnet_cifar", source=_HE42, dataset="cifar10", expected_params=658_586,
                expected_flops=194_348_288,
                reported_accuracy=92.83,
                public=(PublicResult(94.01, *CHENYAOFO),))
def resnet44(*, num_classes: int = 10, in_chans: int | None = None) -> ResNet:
    """ResNet-44 (n=7): 16-32-64 channels, option A zero-padding shortcuts. He et al. report 7.17% error."""
    return _create_resnet(BasicBlock, [7, 7, 7], _CIFAR, "A", num_classes=num_classes, in_chans=in_chans)


@register_model(family="resnet_cifar", source=_HE42, dataset="cifar10", expected_params=853_018,
                expected_flops=250_971_392,
                reported_accuracy=93.03,
                weights=_WEIGHTS["resnet56"],
                public=(PublicResult(94.37, *CHENYAOFO), PublicResult(95.48, *PYTORCHCV, note=_PTCV.format(855_770))))
def resnet56(*, num_classes: int = 10, in_chans: int | None = None) -> ResNet:
    """ResNet-56 (n=9): 16-32-64 channels, option A zero-padding shortcuts. He et al. report 6.97% error."""
    return _create_resnet(BasicBlock, [9, 9, 9], _CIFAR, "A", num_classes=num_classes, in_chans=in_chans)


@register_model(family="resnet_cifar", source=_HE42, dataset="cifar10", expected_params=1_727_962,
                expected_flops=505_775_360,
                reported_accuracy=93.57,
                public=(PublicResult(96.31, *PYTORCHCV, note=_PTCV.format(1_730_714)),))
def resnet110(*, num_classes: int = 10, in_chans: int | None = None) -> ResNet:
    """ResNet-110 (n=18): 16-32-64 channels, option A zero-padding shortcuts. He et al. report 6.43% error."""
    return _create_resnet(BasicBlock, [18, 18, 18], _CIFAR, "A", num_classes=num_classes, in_chans=in_chans)
