"""Wide ResNets (WRN-d-k) for CIFAR.

Paper: S. Zagoruyko, N. Komodakis, "Wide Residual Networks", BMVC 2016.

WRN-d-k as in the paper (Table 1) and the common CIFAR implementations (osmr/imgclsmob's pytorchcv
``wrn_cifar.py``, xternalz/WideResNet-pytorch): a 3x3 stem conv of 16 channels, three stages of
n = (d - 4) / 6 pre-activation basic blocks of 16k, 32k and 64k channels (stride 1, 2, 2; a 1x1-conv
projection of the pre-activated input where the shape changes), a final BN-ReLU, global average pool,
Linear. ``dropout`` (default 0) sits between the two convs of each block, after the ReLU, as in the paper.
The network is ``zoo.models.preact_resnet.PreActResNet`` with these settings (one class for both families).
"""

from __future__ import annotations

from ..metadata import PYTORCHCV, PublicResult
from ..registry import register_model
from .preact_resnet import PreActResNet

__all__: list[str] = []  # the network class is zoo.models.preact_resnet.PreActResNet

_BASE_WIDTHS = (16, 32, 64)


def _create_wide_resnet(depth: int, widen: int, *, num_classes: int = 10, in_chans: int | None = None,
                        dropout: float = 0.0) -> PreActResNet:
    if (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
    n = (depth - 4) // 6
    return PreActResNet([n] * 3, [w * widen for w in _BASE_WIDTHS], stem=16, final_norm=True, dropout=dropout,
                        num_classes=num_classes, in_chans=3 if in_chans is None else in_chans)


_SRC = "Zagoruyko & Komodakis 2016, Table 1; as pytorchcv (osmr/imgclsmob) wrn_cifar.py"


@register_model(family="wide_resnet", source=_SRC, dataset="cifar10", expected_params=10_961_370,
                expected_flops=3_096_291_328,
                params_note="Zagoruyko & Komodakis round to 11.0M.")
def wrn16_8(*, num_classes: int = 10, in_chans: int | None = None, dropout: float = 0.0) -> PreActResNet:
    """WRN-16-8: two blocks per stage, 128-256-512 channels, final BN-ReLU; optional Dropout in each block."""
    return _create_wide_resnet(16, 8, num_classes=num_classes, in_chans=in_chans, dropout=dropout)


@register_model(family="wide_resnet", source=_SRC, dataset="cifar10", expected_params=36_479_194,
                expected_flops=10_486_657_536,
                reported_accuracy=97.61,
                public=(PublicResult(97.61, *PYTORCHCV),))
def wrn28_10(*, num_classes: int = 10, in_chans: int | None = None, dropout: float = 0.0) -> PreActResNet:
    """WRN-28-10: four blocks per stage, 160-320-640 channels, final BN-ReLU; optional Dropout in each block.

    pytorchcv publishes 36,479,194 parameters and 2.39% CIFAR-10 error (its converted checkpoint).
    """
    return _create_wide_resnet(28, 10, num_classes=num_classes, in_chans=in_chans, dropout=dropout)
