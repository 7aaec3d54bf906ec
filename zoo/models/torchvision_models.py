"""torchvision's own ImageNet architectures, built by torchvision's builders (not copied).

``tv_resnet18`` is ``torchvision.models.resnet18(weights=None, num_classes=...)``: the ImageNet design
with its 7x7 stride-2 stem and max-pool, the network report 003 fine-tunes. Its state dict is exactly
torchvision's, so a torchvision ResNet-18 file (``resnet18-f37072fd.pth``) starts ``zoo train --init-from``
directly (the 1000-class ``fc`` is replaced for the new classes). On 32x32 input the stem leaves a 1x1
map at ``layer4``; ``input_resize=224`` resizes every input inside the model (bilinear), as the
ImageNet weights expect, at about 50x the compute.
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import register_model

__all__ = ["tv_resnet18"]

_logger = logging.getLogger(__name__)

_SOURCE = ("torchvision.models.resnet18 (He et al. 2016, Table 1, the ImageNet design: 7x7/2 stem + max-pool); "
           "report 003 (003_148fa9d481c7e76e.txt), section 3")


def _resize_hook(size: int):  # type: ignore[no-untyped-def]
    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = args[0]
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
        return (x, *args[1:])

    return hook


@register_model(family="torchvision", source=_SOURCE, dataset="cifar10", expected_params=11_181_642,
                expected_flops=74_033_152,
                params_note="torchvision's ImageNet ResNet-18 with a 10-class fc (11,689,512 with 1000 classes); "
                            "FLOPs at 32x32 input, without input_resize.")
def tv_resnet18(*, num_classes: int = 10, in_chans: int | None = None, input_resize: int = 0) -> nn.Module:
    """torchvision's ResNet-18 (ImageNet stem) for transfer learning; ``input_resize`` resizes inputs inside."""
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    if in_chans not in (None, 3):
        model.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
    model.classifier_path = "fc"  # for zoo.create(..., num_classes=N) and zoo train --init-from
    if input_resize:
        model.register_forward_pre_hook(_resize_hook(input_resize))
        _logger.info("tv_resnet18: inputs are resized to %dx%d inside the model", input_resize, input_resize)
    return model
