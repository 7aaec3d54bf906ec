"""Model families. Importing this package registers every architecture."""

from . import cnn, fastnet, mlp, resnet, torchvision_models, vgg  # noqa: F401  (registration on import)

__all__ = ["cnn", "fastnet", "mlp", "resnet", "torchvision_models", "vgg"]
