"""RepVGG for 32x32 input, in its training form and its deploy (re-parameterised) form.

Paper: X. Ding, X. Zhang, N. Ma, J. Han, G. Ding, J. Sun, "RepVGG: Making VGG-style ConvNets Great Again",
CVPR 2021.

Layout of chenyaofo/pytorch-cifar-models (``pytorch_cifar_models/repvgg.py``, itself DingXiaoH/RepVGG): the
A-series stages of 1, 2, 4, 14, 1 blocks (Table 2) with the width multipliers a (first three stages) and b
(last), and the stem and first stage at stride 1 instead of 2, so a 32x32 image reaches the last stage at 4x4.
The module names are those of that source, so its checkpoints load.

Each block trains as three branches summed before the ReLU: 3x3 conv + BatchNorm, 1x1 conv + BatchNorm and,
where the shape is kept, a BatchNorm alone. ``reparameterize()`` folds them (with the BatchNorm statistics)
into one 3x3 conv with bias per block: the deploy form, a plain stack of 3x3 convs and ReLUs computing the same
function in eval mode. ``deploy=True`` builds that form directly (to load a deploy-form state dict). Exports
and runners use the deploy form (``zoo.builder.deploy_form``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..metadata import CHENYAOFO, PublicResult
from ..registry import register_model
from ._head import ClassifierMixin

__all__ = ["RepVGG", "RepVGGBlock"]

_BLOCKS = (2, 4, 14, 1)  # stages 1-4; stage 0 is one block
# variant -> width multipliers of stages 1-4 (Ding et al. Table 2: a, a, a, b)
_WIDTHS: dict[str, tuple[float, float, float, float]] = {
    "a0": (0.75, 0.75, 0.75, 2.5),
    "a1": (1.0, 1.0, 1.0, 2.5),
    "a2": (1.5, 1.5, 1.5, 2.75),
}


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False))
    seq.add_module("bn", nn.BatchNorm2d(out_channels))
    return seq


def _fold(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of conv ``weight`` followed by ``bn`` in eval mode, in float64."""
    std = (bn.running_var.double() + bn.eps).sqrt()
    scale = bn.weight.double() / std
    return weight.double() * scale.reshape(-1, 1, 1, 1), bn.bias.double() - bn.running_mean.double() * scale


class RepVGGBlock(nn.Module):
    """ReLU of (3x3 conv-BN + 1x1 conv-BN + BN identity) in training form; ReLU of one 3x3 conv when deployed."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, deploy: bool = False) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.nonlinearity = nn.ReLU()
        self.rbr_reparam: nn.Conv2d | None = None
        self.rbr_identity: nn.BatchNorm2d | None = None
        self.rbr_dense: nn.Sequential | None = None
        self.rbr_1x1: nn.Sequential | None = None
        if deploy:
            self.rbr_reparam = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=True)
            return
        if in_channels == out_channels and stride == 1:
            self.rbr_identity = nn.BatchNorm2d(in_channels)
        self.rbr_dense = _conv_bn(in_channels, out_channels, 3, stride)
        self.rbr_1x1 = _conv_bn(in_channels, out_channels, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rbr_reparam is not None:
            return self.nonlinearity(self.rbr_reparam(x))
        assert self.rbr_dense is not None and self.rbr_1x1 is not None
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return self.nonlinearity(out)

    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The 3x3 kernel and bias (float64) that compute the three branches at once in eval mode."""
        assert self.rbr_dense is not None and self.rbr_1x1 is not None
        kernel, bias = _fold(self.rbr_dense.conv.weight, self.rbr_dense.bn)
        k1, b1 = _fold(self.rbr_1x1.conv.weight, self.rbr_1x1.bn)
        kernel, bias = kernel + F.pad(k1, [1, 1, 1, 1]), bias + b1
        if self.rbr_identity is not None:
            eye = torch.zeros_like(kernel)
            eye[torch.arange(self.in_channels), torch.arange(self.in_channels), 1, 1] = 1.0
            kid, bid = _fold(eye, self.rbr_identity)
            kernel, bias = kernel + kid, bias + bid
        return kernel, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the training branches by their equivalent 3x3 conv (nothing to do once deployed)."""
        if self.rbr_reparam is not None:
            return
        assert self.rbr_dense is not None
        kernel, bias = self.equivalent_kernel_bias()
        ref = self.rbr_dense.conv.weight
        conv = nn.Conv2d(self.in_channels, self.out_channels, 3, self.stride, 1, bias=True,
                         device=ref.device, dtype=ref.dtype)
        conv.weight.copy_(kernel.to(ref.dtype))
        conv.bias.copy_(bias.to(ref.dtype))
        self.rbr_reparam = conv
        self.rbr_dense = self.rbr_1x1 = self.rbr_identity = None


class RepVGG(ClassifierMixin, nn.Module):
    """Stage 0 (one block, stride 1), stages 1-4 of RepVGG blocks (stride 1, 2, 2, 2), global average pool, Linear."""

    def __init__(self, widths: tuple[float, float, float, float], *, num_classes: int = 10, in_chans: int = 3,
                 deploy: bool = False) -> None:
        super().__init__()
        planes = [int(base * w) for base, w in zip((64, 128, 256, 512), widths)]
        c = min(64, planes[0])
        self.stage0 = RepVGGBlock(in_chans, c, 1, deploy=deploy)
        for i, (n, out) in enumerate(zip(_BLOCKS, planes)):
            stride = 1 if i == 0 else 2
            blocks = [RepVGGBlock(c if j == 0 else out, out, stride if j == 0 else 1, deploy=deploy) for j in range(n)]
            setattr(self, f"stage{i + 1}", nn.Sequential(*blocks))
            c = out
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.linear = nn.Linear(c, num_classes)
        self.classifier_path = "linear"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage4(self.stage3(self.stage2(self.stage1(self.stage0(x)))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.gap(x))
        return x if pre_logits else self.linear(x)

    def reparameterize(self) -> RepVGG:
        """Fold every block into one 3x3 conv with bias, in place (the deploy form); returns the model.

        The result equals the training form in eval mode (BatchNorm running statistics are folded in); it has
        no BatchNorm left to train. Calling it again does nothing.
        """
        for block in self.modules():
            if isinstance(block, RepVGGBlock):
                block.reparameterize()
        return self


def _create_repvgg(variant: str, *, num_classes: int = 10, in_chans: int | None = None,
                   deploy: bool = False) -> RepVGG:
    return RepVGG(_WIDTHS[variant], num_classes=num_classes, in_chans=3 if in_chans is None else in_chans,
                  deploy=deploy)


_SRC = "Ding et al. 2021, Table 2 (A series); CIFAR strides of chenyaofo/pytorch-cifar-models (repvgg.py)"


def _rounded(m: str, deploy: int) -> str:
    return f"Training form; chenyaofo/pytorch-cifar-models' README rounds to {m}M. The deploy form has {deploy:,}."


@register_model(family="repvgg", source=_SRC, dataset="cifar10", expected_params=7_840_874, expected_flops=978_150_400,
                params_note=_rounded("7.84", 7_041_194), reported_accuracy=94.39,
                public=(PublicResult(94.39, *CHENYAOFO),))
def repvgg_a0(*, num_classes: int = 10, in_chans: int | None = None, deploy: bool = False) -> RepVGG:
    """RepVGG-A0 (a = 0.75, b = 2.5) for 32x32 input; ``deploy=True`` builds the fused 3x3-conv form."""
    return _create_repvgg("a0", num_classes=num_classes, in_chans=in_chans, deploy=deploy)


@register_model(family="repvgg", source=_SRC, dataset="cifar10", expected_params=12_824_202,
                expected_flops=1_702_650_880,
                params_note=_rounded("12.82", 11_521_674), reported_accuracy=94.89,
                public=(PublicResult(94.89, *CHENYAOFO),))
def repvgg_a1(*, num_classes: int = 10, in_chans: int | None = None, deploy: bool = False) -> RepVGG:
    """RepVGG-A1 (a = 1, b = 2.5) for 32x32 input; ``deploy=True`` builds the fused 3x3-conv form."""
    return _create_repvgg("a1", num_classes=num_classes, in_chans=in_chans, deploy=deploy)


@register_model(family="repvgg", source=_SRC, dataset="cifar10", expected_params=26_815_690,
                expected_flops=3_700_190_720,
                params_note=_rounded("26.82", 24_105_034), reported_accuracy=94.98,
                public=(PublicResult(94.98, *CHENYAOFO),))
def repvgg_a2(*, num_classes: int = 10, in_chans: int | None = None, deploy: bool = False) -> RepVGG:
    """RepVGG-A2 (a = 1.5, b = 2.75) for 32x32 input; ``deploy=True`` builds the fused 3x3-conv form."""
    return _create_repvgg("a2", num_classes=num_classes, in_chans=in_chans, deploy=deploy)
