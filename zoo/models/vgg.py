"""VGG for 32x32 input.

Paper: K. Simonyan, A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (configurations A, B, D, E = VGG-11, 13, 16, 19). For CIFAR the 224x224
classifier is replaced: after five 2x2 pools a 32x32 input is 1x1x512.

Heads:
- ``linear``: the common CIFAR head, a single Linear(512, num_classes).
- ``report000``: report 000 (``000_c474a159bc7c5859.txt``, section 2.1), Linear 512-512-128-10 with ReLU.
- ``mlp512``: report 002 (``002_12318041e45b9a7a.txt``, section 2.1), Linear 512-512-512-10 with ReLU,
  optionally with Dropout before each hidden Linear.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..metadata import CHENYAOFO, Metrics, PublicResult, Weights
from ..registry import register_model
from ._head import ClassifierMixin, run_head

__all__ = ["VGG"]

# Released checkpoints (tools/release_weights.py prints each entry from the stored file).
_WEIGHTS: dict[str, tuple[Weights, ...]] = {
    "vgga_light": (
        Weights(
            arch="vgga_light", tag="cifar10", file_name="vgga_light.cifar10-2024277a.safetensors",
            sha256="2024277a1e6e832f141c6eb2d7dc94f2fba4ad4f1de4a2051b99061e91e0a9f6",
            dataset="cifar10",
            metrics=Metrics(top1=80.69, top5=98.93, loss=0.622266, split="test", num_images=10000),
            num_params=285162, gflops=0.003804, recipe="vgga_light.cifar10",
            train_time_s=174.7, hardware="AMD EPYC, class not recorded, 2 threads, bf16",
            file_size=1142680, dtype="float32", temperature=0.6569,
        ),
    ),
    "vgg19_bn": (
        Weights(
            arch="vgg19_bn", tag="cifar10", file_name="vgg19_bn.cifar10-a41d9d15.safetensors",
            sha256="a41d9d15ee5d352a72cc6eee7bbc6d59bd4f935c90a13baddd97277a2b836b15",
            dataset="cifar10",
            metrics=Metrics(top1=94.4, top5=99.83, loss=0.249661, split="test", num_images=10000),
            num_params=20365002, gflops=0.79692, recipe="vgg19_bn.cifar10.e60",
            train_time_s=130.2, hardware="NVIDIA H200, bf16",
            file_size=40763836, dtype="float16", temperature=0.5239,
        ),
    ),
}

_CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
    # Report 002's VGG-A-Light: the first two stages only, narrowed to 16 and 32 channels.
    "A_light": [16, "M", 32, "M"],
}

# head -> hidden widths of the classifier (the last Linear to num_classes is implied)
_HEADS: dict[str, tuple[int, ...]] = {"linear": (), "report000": (512, 128), "mlp512": (512, 512),
                                      "light": (128, 128)}


class VGG(ClassifierMixin, nn.Module):
    """VGG feature stack from a config, then an MLP head."""

    def __init__(self, cfg: list[int | str], *, batch_norm: bool = False, head: str = "linear",
                 dropout: float = 0.0, num_classes: int = 10, in_chans: int = 3, img_size: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, size = in_chans, img_size
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                size //= 2
                continue
            layers.append(nn.Conv2d(c, int(v), 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(v)))
            layers.append(nn.ReLU(inplace=True))
            c = int(v)
        if size < 1:
            raise ValueError(f"input size {img_size} is too small for {cfg.count('M')} pools")
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten(1)
        width = c * size * size
        head_layers: list[nn.Module] = []
        for hidden in _HEADS[head]:
            if dropout > 0:
                head_layers.append(nn.Dropout(dropout))
            head_layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        head_layers.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head_layers)
        self.classifier_path = f"classifier.{len(self.classifier) - 1}"
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return run_head(self.classifier, self.flatten(x), pre_logits)


def _create_vgg(cfg: str, *, batch_norm: bool, head: str, num_classes: int = 10, in_chans: int | None = None,
                dropout: float = 0.0) -> VGG:
    return VGG(_CFGS[cfg], batch_norm=batch_norm, head=head, dropout=dropout, num_classes=num_classes,
               in_chans=3 if in_chans is None else in_chans)


_SIMONYAN = "Simonyan & Zisserman 2015, Table 1, config {}; single Linear(512, 10) CIFAR head"
_R002 = "report 002 (002_12318041e45b9a7a.txt), section 2.1"


# -- the common CIFAR VGGs: conv stack + Linear(512, num_classes) ------------------------------------

@register_model(family="vgg", source=_SIMONYAN.format("A"), dataset="cifar10", expected_params=9_225_610,
                expected_flops=305_539_072)
def vgg11(*, num_classes: int = 10, in_chans: int | None = None) -> VGG:
    """VGG-11 (config A) for 32x32 input, single linear head."""
    return _create_vgg("A", batch_norm=False, head="linear", num_classes=num_classes, in_chans=in_chans)


@register_model(family="vgg", source=_SIMONYAN.format("B"), dataset="cifar10", expected_params=9_410_122,
                expected_flops=456_534_016)
def vgg13(*, num_classes: int = 10, in_chans: int | None = None) -> VGG:
    """VGG-13 (config B) for 32x32 input, single linear head."""
    return _create_vgg("B", batch_norm=False, head="linear", num_classes=num_classes, in_chans=in_chans)


@register_model(family="vgg", source=_SIMONYAN.format("D"), dataset="cifar10", expected_params=14_719_818,
                expected_flops=626_403_328)
def vgg16(*, num_classes: int = 10, in_chans: int | None = None) -> VGG:
    """VGG-16 (config D) for 32x32 input, single linear head."""
    return _create_vgg("D", batch_norm=False, head="linear", num_classes=num_classes, in_chans=in_chans)


@register_model(family="vgg", source=_SIMONYAN.format("E"), dataset="cifar10", expected_params=20_029_514,
                expected_flops=796_272_640)
def vgg19(*, num_classes: int = 10, in_chans: int | None = None) -> VGG:
    """VGG-19 (config E) for 32x32 input, single linear head."""
    return _create_vgg("E", batch_norm=False, head="linear", num_classes=num_classes, in_chans=in_chans)


@register_model(family="vgg", source=_SIMONYAN.format("A") + ", BatchNorm", dataset="cifar10",
                expected_params=9_231_114, expected_flops=305_539_072,
                public=(PublicResult(92.79, *CHENYAOFO),))
def vgg11_bn(*, num_classes: int = 10, in_chans: int | None = None) -> VGG:
    """VGG-11 with BatchNorm after each conv, single linear head."""
    return _create_vgg("A", batch_norm=True, head="linear", num_classes=num_classes, in_chans=in_chans)


@register_model(family="vgg", source=_SIMONYAN.format("B") + ", BatchNorm", dataset="cifar10",
                expected_params=9_416_010, expected_flops=456_534_016,
                public=(PublicResult(94.00, *CHENYAOFO),))
def vgg13_bn(*, num_classes: int = 10, in_chans: int | None = None) -> VGG:
    """VGG-13 with BatchNorm after each conv, single linear head."""
    return _create_vgg("B", batch_norm=True, head="linear", num_classes=num_classes, in_chans=in_chans)


@register_model(family="vgg", source=_SIMONYAN.format("D") + ", BatchNorm", dataset="cifar10",
                expected_params=14_728_266, expected_flops=626_403_328,
                public=(PublicResult(94.16, *CHENYAOFO),))
def vgg16_bn(*, num_classes: int = 10, in_chans: int | None = None) -> VGG:
    """VGG-16 with BatchNorm after each conv, single linear head."""
    return _create_vgg("D", batch_norm=True, head="linear", num_classes=num_classes, in_chans=in_chans)


@register_model(family="vgg", source=_SIMONYAN.format("E") + ", BatchNorm", dataset="cifar10",
                expected_params=20_040_522, expected_flops=796_272_640)
def vgg19_bn_linear(*, num_classes: int = 10, in_chans: int | None = None) -> VGG:
    """VGG-19 with BatchNorm and the common single Linear(512, 10) head.

    Named ``vgg19_bn_linear`` because ``vgg19_bn`` is report 000's network with a 512-512-128-10 head.
    """
    return _create_vgg("E", batch_norm=True, head="linear", num_classes=num_classes, in_chans=in_chans)


# -- the reports' VGGs ---------------------------------------------------------------------------------

@register_model(family="vgg", source="report 000 (000_c474a159bc7c5859.txt), section 2.1", dataset="cifar10",
                expected_params=20_365_002, expected_flops=796_920_320, reported_accuracy=72.86,
                weights=_WEIGHTS["vgg19_bn"],
                public=(PublicResult(93.91, *CHENYAOFO),))
def vgg19_bn(*, num_classes: int = 10, in_chans: int | None = None) -> VGG:
    """VGG-19 with BatchNorm exactly as report 000: conv stack of config E, classifier 512-512-128-10 with ReLU.

    For the common single-Linear head see ``vgg19_bn_linear``.
    """
    return _create_vgg("E", batch_norm=True, head="report000", num_classes=num_classes, in_chans=in_chans)


@register_model(family="vgg", source=_R002, dataset="cifar10", expected_params=9_750_922, expected_flops=306_587_648)
def vgga(*, num_classes: int = 10, in_chans: int | None = None) -> VGG:
    """VGG-A (VGG-11 for CIFAR) with classifier 512-512-512-10, as report 002."""
    return _create_vgg("A", batch_norm=False, head="mlp512", num_classes=num_classes, in_chans=in_chans)


@register_model(family="vgg", source=_R002, dataset="cifar10", expected_params=9_756_426, expected_flops=306_587_648)
def vgga_bn(*, num_classes: int = 10, in_chans: int | None = None) -> VGG:
    """VGG-A with BatchNorm after each conv, as report 002 (sections 2.1-2.4)."""
    return _create_vgg("A", batch_norm=True, head="mlp512", num_classes=num_classes, in_chans=in_chans)


@register_model(family="vgg", source=_R002, dataset="cifar10", expected_params=9_750_922, expected_flops=306_587_648,
                params_note="Dropout adds no parameters.")
def vgga_dropout(*, num_classes: int = 10, in_chans: int | None = None, dropout: float = 0.5) -> VGG:
    """VGG-A with Dropout before each hidden Linear of the classifier, as report 002."""
    return _create_vgg("A", batch_norm=False, head="mlp512", num_classes=num_classes, in_chans=in_chans,
                       dropout=dropout)


@register_model(family="vgg", source=_R002 + ", Figure 12", dataset="cifar10", expected_params=9_756_426,
                expected_flops=306_587_648,
                params_note="Dropout adds no parameters.")
def vgga_bn_dropout(*, num_classes: int = 10, in_chans: int | None = None, dropout: float = 0.5) -> VGG:
    """VGG-A with BatchNorm and Dropout before each hidden Linear of the classifier, as report 002."""
    return _create_vgg("A", batch_norm=True, head="mlp512", num_classes=num_classes, in_chans=in_chans,
                       dropout=dropout)


@register_model(family="vgg", source=_R002, dataset="cifar10", expected_params=285_162, expected_flops=3_803_648,
                weights=_WEIGHTS["vgga_light"])
def vgga_light(*, num_classes: int = 10, in_chans: int | None = None) -> VGG:
    """VGG-A-Light: two stages of one conv3x3 each (16, 32 channels), classifier 2048-128-128-10."""
    return _create_vgg("A_light", batch_norm=False, head="light", num_classes=num_classes, in_chans=in_chans)
