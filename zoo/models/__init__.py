"""Model families. Importing this package registers every architecture."""

from . import (  # noqa: F401  (registration on import)
    cnn,
    densenet,
    fastnet,
    mlp,
    mobilenetv2,
    preact_resnet,
    repvgg,
    resnet,
    shufflenetv2,
    torchvision_models,
    vgg,
    wide_resnet,
)

__all__ = ["cnn", "densenet", "fastnet", "mlp", "mobilenetv2", "preact_resnet", "repvgg", "resnet", "shufflenetv2",
           "torchvision_models", "vgg", "wide_resnet"]
