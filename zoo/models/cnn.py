"""Small plain convolutional networks from the seed reports, one class driven by a config table.

Sources (all in ``../shared/seeds/``):
- report 001 (``001_04f4cc9fc08b3193.txt``, section 2.1): 28x28 CNN, two 3x3 convs (32, 64) each
  followed by MaxPool2d(kernel 2, stride 1), FC 30976-64-32-10.
- report 002 (``002_12318041e45b9a7a.txt``, section 1.1): the "basic Conv2d network" (conv, max-pool,
  ReLU, three FC layers) trained with the PyTorch CIFAR-10 tutorial's settings (batch 4, lr 0.001,
  SGD momentum 0.9); its sizes are not given.
- report 003 (``003_148fa9d481c7e76e.txt``): the LeNet-style CIFAR net (section 1) and "Model 1" /
  "Model 2" of Table 2 (section 2.1).
- report 004 (``004_f560f7d258634cdd.txt``, section 2): the CIFAR CNN conv5x5 32-64-64, FC 1024-1000-10,
  and the variants of its improvement ladder (dropout, BatchNorm).

Layer specs are tuples: ``("conv", out, kernel, padding)``, ``("pool", kernel, stride)``,
``("drop2d", p)``, ``"bn"``, ``"relu"`` for the features; ``("fc", out)``, ``("drop", p)``, ``"bn"``,
``"relu"`` for the classifier, which always ends with ``Linear(.., num_classes)``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..metadata import Metrics, Weights
from ..registry import register_model
from ._head import ClassifierMixin, run_head

__all__ = ["ConvNet"]

Spec = str | tuple

_LENET = [("conv", 32, 5, 2), "relu", ("pool", 2, 2), ("conv", 64, 5, 2), "relu", ("pool", 2, 2),
          ("conv", 128, 5, 2), "relu", ("pool", 2, 2)]


def _cnn3(bn: bool) -> list[Spec]:
    layers: list[Spec] = []
    for width in (32, 64, 64):
        layers += [("conv", width, 5, 2)] + (["bn"] if bn else []) + ["relu", ("pool", 2, 2)]
    return layers


# Released checkpoints, printed by tools/release_weights.py from the stored file (tests re-check every field).
_WEIGHTS: dict[str, tuple[Weights, ...]] = {
    "cnn_32_64_mnist": (
        Weights(
            arch="cnn_32_64_mnist", tag="mnist", file_name="cnn_32_64_mnist.mnist-f0a2b1df.safetensors",
            sha256="f0a2b1df86a4355eb404d3e5949037a01278c696b7811f6e1ba168ca15cd7f51",
            dataset="mnist",
            metrics=Metrics(top1=99.4, top5=99.99, loss=0.117828, split="test", num_images=10000),
            num_params=2003754, gflops=0.02386, recipe="cnn_32_64_mnist.mnist",
            train_time_s=652.2, hardware="AMD EPYC, class not recorded, 2 threads, bf16",
            file_size=8017048, dtype="float32", temperature=0.4417,
        ),
    ),
    "cnn3_fc1000_bn_dropout": (
        Weights(
            arch="cnn3_fc1000_bn_dropout", tag="cifar10",
            file_name="cnn3_fc1000_bn_dropout.cifar10-6b37564b.safetensors",
            sha256="6b37564ba87a8f24ada2394cbe96265ed76ce9e3b2fc21f1c5a090d2a0c222b0",
            dataset="cifar10",
            metrics=Metrics(top1=87.88, top5=99.48, loss=0.428608, split="test",
                            num_images=10000),
            num_params=1191490, gflops=0.046305, recipe="cnn3_fc1000_bn_dropout.cifar10",
            train_time_s=3474.2, hardware="AMD EPYC, class not recorded, 2 threads, bf16",
            file_size=4770664, dtype="float32", temperature=0.5232,
        ),
    ),
    "lenet_cifar": (
        Weights(
            arch="lenet_cifar", tag="cifar10", file_name="lenet_cifar.cifar10-85c43183.safetensors",
            sha256="85c431839f659e79a66c1a0f29c81d29df864e2e5cb943707bec23c8d8e30186",
            dataset="cifar10",
            metrics=Metrics(top1=87.21, top5=99.36, loss=0.442146, split="test",
                            num_images=10000),
            num_params=390410, gflops=0.057607, recipe="lenet_cifar.cifar10",
            train_time_s=943.4, hardware="AMD EPYC, class not recorded, 2 threads, bf16",
            file_size=1563656, dtype="float32", temperature=0.5308,
        ),
    ),
    "lenet_cifar_bn": (
        Weights(
            arch="lenet_cifar_bn", tag="cifar10", file_name="lenet_cifar_bn.cifar10-973665d9.safetensors",
            sha256="973665d91bb3dd87efafff0960873b829a4d71cffc4a9074700bdfc0b0500a07",
            dataset="cifar10",
            metrics=Metrics(top1=87.02, top5=99.42, loss=0.454657, split="test",
                            num_images=10000),
            num_params=390986, gflops=0.057607, recipe="lenet_cifar_bn.cifar10",
            train_time_s=919.9, hardware="AMD EPYC, class not recorded, 2 threads, bf16",
            file_size=1569968, dtype="float32", temperature=0.527,
        ),
    ),
    "cnn_basic": (
        Weights(
            arch="cnn_basic", tag="cifar10", file_name="cnn_basic.cifar10-3167ef23.safetensors",
            sha256="3167ef235dae7b2173652f503c5539f5cfe1e1776f3695a5a4039339d1047833",
            dataset="cifar10",
            metrics=Metrics(top1=83.24, top5=99.02, loss=0.558141, split="test",
                            num_images=10000),
            num_params=256830, gflops=0.014409, recipe="cnn_basic.cifar10",
            train_time_s=320.3, hardware="AMD EPYC, class not recorded, 2 threads, bf16",
            file_size=1029328, dtype="float32", temperature=0.6466,
        ),
    ),
    "convnet5_bn": (
        Weights(
            arch="convnet5_bn", tag="cifar10", file_name="convnet5_bn.cifar10-b98e5992.safetensors",
            sha256="b98e5992c0f082c9008cea757faf7b9e4ad4aac839b5e49998a73997cbe6a43f",
            dataset="cifar10",
            metrics=Metrics(top1=83.9, top5=99.16, loss=0.538459, split="test", num_images=10000),
            num_params=18481098, gflops=0.271517, recipe="convnet5_bn.cifar10",
            train_time_s=587.2, hardware="AMD EPYC, class not recorded, 2 threads, bf16",
            file_size=36969532, dtype="float16", temperature=0.6619,
        ),
    ),
}

# name -> (feature specs, classifier specs)
_CFGS: dict[str, tuple[list[Spec], list[Spec]]] = {
    "cnn_32_64_mnist": (
        [("conv", 32, 3, 0), "relu", ("pool", 2, 1), ("conv", 64, 3, 0), "relu", ("pool", 2, 1)],
        [("fc", 64), "relu", ("fc", 32), "relu"],
    ),
    "cnn_basic": (
        [("conv", 32, 5, 0), "relu", ("pool", 2, 2), ("conv", 64, 5, 0), "relu", ("pool", 2, 2)],
        [("fc", 120), "relu", ("fc", 84), "relu"],
    ),
    "lenet_cifar": (_LENET, [("fc", 64), "relu"]),
    "lenet_cifar_bn": (
        [("conv", 32, 5, 2), ("drop2d", 0.1), "bn", "relu", ("pool", 2, 2),
         ("conv", 64, 5, 2), "bn", "relu", ("pool", 2, 2),
         ("conv", 128, 5, 2), "bn", "relu", ("pool", 2, 2)],
        [("fc", 64), "bn", "relu"],
    ),
    "convnet5_bn": (
        [("conv", 32, 3, 1), "relu", ("drop2d", 0.1), "bn", ("pool", 2, 2),
         ("conv", 64, 3, 1), "relu", ("conv", 128, 3, 1), "relu", "bn", ("pool", 2, 2),
         ("conv", 256, 3, 1), "relu", ("conv", 512, 3, 1), "relu", "bn", ("pool", 2, 2)],
        [("fc", 2048), "relu", ("fc", 64), "relu", "bn"],
    ),
    "cnn3_fc1000": (_cnn3(bn=False), [("fc", 1000), "relu"]),
    "cnn3_fc1000_dropout": (_cnn3(bn=False), [("fc", 1000), "relu", ("drop", 0.5)]),
    "cnn3_fc1000_bn": (_cnn3(bn=True), [("fc", 1000), "relu"]),
    "cnn3_fc1000_bn_dropout": (_cnn3(bn=True), [("fc", 1000), "relu", ("drop", 0.5)]),
}


class ConvNet(ClassifierMixin, nn.Module):
    """``features`` (convs, pools, norms) -> flatten -> ``classifier`` (linear layers)."""

    def __init__(self, features: list[Spec], classifier: list[Spec], *, in_size: tuple[int, int, int],
                 num_classes: int = 10) -> None:
        super().__init__()
        c, h, w = in_size
        layers: list[nn.Module] = []
        for spec in features:
            kind = spec if isinstance(spec, str) else spec[0]
            if kind == "conv":
                _, out, k, p = spec
                layers.append(nn.Conv2d(c, out, k, padding=p))
                c, h, w = out, h + 2 * p - k + 1, w + 2 * p - k + 1
            elif kind == "pool":
                _, k, s = spec
                layers.append(nn.MaxPool2d(k, s))
                h, w = (h - k) // s + 1, (w - k) // s + 1
            elif kind == "bn":
                layers.append(nn.BatchNorm2d(c))
            elif kind == "relu":
                layers.append(nn.ReLU(inplace=True))
            elif kind == "drop2d":
                layers.append(nn.Dropout2d(spec[1]))
            else:
                raise ValueError(f"unknown feature spec {spec!r}")
        if h < 1 or w < 1:
            raise ValueError(f"input size {in_size} is too small for this network")
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten(1)
        width = c * h * w
        head: list[nn.Module] = []
        for spec in classifier:
            kind = spec if isinstance(spec, str) else spec[0]
            if kind == "fc":
                head.append(nn.Linear(width, spec[1]))
                width = spec[1]
            elif kind == "bn":
                head.append(nn.BatchNorm1d(width))
            elif kind == "relu":
                head.append(nn.ReLU(inplace=True))
            elif kind == "drop":
                head.append(nn.Dropout(spec[1]))
            else:
                raise ValueError(f"unknown classifier spec {spec!r}")
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)
        self.classifier_path = f"classifier.{len(self.classifier) - 1}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return run_head(self.classifier, self.flatten(x), pre_logits)


def _create_convnet(name: str, in_size: tuple[int, int, int], *, num_classes: int = 10,
                    in_chans: int | None = None) -> ConvNet:
    if in_chans is not None:
        in_size = (in_chans, *in_size[1:])
    features, classifier = _CFGS[name]
    return ConvNet(features, classifier, in_size=in_size, num_classes=num_classes)


_R001 = "report 001 (001_04f4cc9fc08b3193.txt), section 2.1"
_R002 = "report 002 (002_12318041e45b9a7a.txt), section 1.1"
_R003 = "report 003 (003_148fa9d481c7e76e.txt)"
_R004 = "report 004 (004_f560f7d258634cdd.txt), section 2.2"
_R004_NOTE = ("The report's 1,088,418 applies (H*W + 1) * C_out to each conv (spatial size in place of "
              "kernel size times input channels); the right count of the conv layers is "
              "(5*5*C_in + 1) * C_out.")


@register_model(family="cnn", source=_R001, dataset="mnist", expected_params=2_003_754, expected_flops=23_860_096,
                weights=_WEIGHTS["cnn_32_64_mnist"])
def cnn_32_64_mnist(*, num_classes: int = 10, in_chans: int | None = None) -> ConvNet:
    """28x28 CNN: conv3x3(32)-ReLU-MaxPool(2, stride 1), conv3x3(64)-ReLU-MaxPool(2, stride 1), FC 30976-64-32-10.

    The report's accuracies (91.48-91.91%) are far below what this network reaches on MNIST, so they are
    not recorded as MNIST figures.
    """
    return _create_convnet("cnn_32_64_mnist", (1, 28, 28), num_classes=num_classes, in_chans=in_chans)


@register_model(family="cnn", source=_R002, dataset="cifar10", expected_params=256_830,
                expected_flops=14_409_040, reported_accuracy=73.0,
                params_note="The report gives no sizes. The structure of the PyTorch CIFAR-10 tutorial network "
                            "(whose training settings the report uses) is kept, widened from 6/16 to 32/64 "
                            "filters, since the report reaches 71-73%, more than the 6/16 network does.",
                weights=_WEIGHTS["cnn_basic"])
def cnn_basic(*, num_classes: int = 10, in_chans: int | None = None) -> ConvNet:
    """Basic CIFAR ConvNet: conv5x5(32)-ReLU-pool, conv5x5(64)-ReLU-pool (no padding), FC 1600-120-84-10."""
    return _create_convnet("cnn_basic", (3, 32, 32), num_classes=num_classes, in_chans=in_chans)


@register_model(family="cnn", source=f"{_R003}, section 1", dataset="cifar10", expected_params=390_410,
                expected_flops=57_607_424,
                reported_params=390_400, reported_accuracy=71.49,
                params_note="The report's sum (its equation 5, 64*10 = 640) leaves out the 10 biases of the "
                            "last layer: 650, not 640.",
                weights=_WEIGHTS["lenet_cifar"])
def lenet_cifar(*, num_classes: int = 10, in_chans: int | None = None) -> ConvNet:
    """LeNet-style CIFAR net: three conv5x5 pad 2 (32, 64, 128), each ReLU + MaxPool 2x2, FC 2048-64-10."""
    return _create_convnet("lenet_cifar", (3, 32, 32), num_classes=num_classes, in_chans=in_chans)


@register_model(family="cnn", source=f"{_R003}, section 2.1, Table 2 'Model 2'", dataset="cifar10",
                expected_params=390_986, expected_flops=57_607_424, reported_accuracy=75.28,
                params_note="Kernel sizes are not given; 'the same structure as LeNet' is taken literally "
                            "(conv5x5 pad 2), so the count is lenet_cifar's 390,410 plus 576 BatchNorm "
                            "parameters (2 x (32+64+128+64)).",
                weights=_WEIGHTS["lenet_cifar_bn"])
def lenet_cifar_bn(*, num_classes: int = 10, in_chans: int | None = None) -> ConvNet:
    """Report 003's Model 2: LeNet-style net with Dropout2d(0.1) after the first conv, BatchNorm before each ReLU."""
    return _create_convnet("lenet_cifar_bn", (3, 32, 32), num_classes=num_classes, in_chans=in_chans)


@register_model(family="cnn", source=f"{_R003}, section 2.1, Table 2 'Model 1'", dataset="cifar10",
                expected_params=18_481_098, expected_flops=271_516_928, reported_accuracy=77.92,
                params_note="Kernel sizes are not given; 3x3 with padding 1 is used (the "
                            "(conv-relu)(conv-relu-conv-relu-pool)x2 pattern the report names), so three "
                            "2x2 pools leave 4x4x512 = 8192 features for the 2048-unit layer.",
                weights=_WEIGHTS["convnet5_bn"])
def convnet5_bn(*, num_classes: int = 10, in_chans: int | None = None) -> ConvNet:
    """Report 003's Model 1: five conv3x3 (32-64-128-256-512) with BatchNorm before each pool, FC 8192-2048-64-10."""
    return _create_convnet("convnet5_bn", (3, 32, 32), num_classes=num_classes, in_chans=in_chans)


@register_model(family="cnn", source=_R004, dataset="cifar10", expected_params=1_191_170, expected_flops=46_304_800,
                reported_params=1_088_418, params_note=_R004_NOTE)
def cnn3_fc1000(*, num_classes: int = 10, in_chans: int | None = None) -> ConvNet:
    """CIFAR CNN: conv5x5 pad 2 (32, 64, 64), each ReLU + MaxPool 2x2, FC 1024-1000-10."""
    return _create_convnet("cnn3_fc1000", (3, 32, 32), num_classes=num_classes, in_chans=in_chans)


@register_model(family="cnn", source=f"{_R004} (questions 26-29)", dataset="cifar10",
                expected_params=1_191_170, expected_flops=46_304_800, params_note="Dropout adds no parameters.")
def cnn3_fc1000_dropout(*, num_classes: int = 10, in_chans: int | None = None) -> ConvNet:
    """``cnn3_fc1000`` with Dropout(0.5) after the 1000-unit layer."""
    return _create_convnet("cnn3_fc1000_dropout", (3, 32, 32), num_classes=num_classes, in_chans=in_chans)


@register_model(family="cnn", source=f"{_R004} (questions 32-34)", dataset="cifar10",
                expected_params=1_191_490,
                expected_flops=46_304_800, params_note="BatchNorm adds 2 x (32+64+64) = 320 parameters.")
def cnn3_fc1000_bn(*, num_classes: int = 10, in_chans: int | None = None) -> ConvNet:
    """``cnn3_fc1000`` with BatchNorm2d after each conv."""
    return _create_convnet("cnn3_fc1000_bn", (3, 32, 32), num_classes=num_classes, in_chans=in_chans)


@register_model(family="cnn", source=f"{_R004} (questions 32-34, the last step of the ladder)", dataset="cifar10",
                expected_params=1_191_490,
                expected_flops=46_304_800, params_note="BatchNorm adds 2 x (32+64+64) = 320 parameters.",
                weights=_WEIGHTS["cnn3_fc1000_bn_dropout"])
def cnn3_fc1000_bn_dropout(*, num_classes: int = 10, in_chans: int | None = None) -> ConvNet:
    """``cnn3_fc1000`` with BatchNorm2d after each conv and Dropout(0.5) after the 1000-unit layer."""
    return _create_convnet("cnn3_fc1000_bn_dropout", (3, 32, 32), num_classes=num_classes, in_chans=in_chans)
