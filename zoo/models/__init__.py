"""Model families. Importing this package registers every architecture."""

from . import cnn, mlp, resnet, vgg  # noqa: F401  (registration on import)

__all__ = ["cnn", "mlp", "resnet", "vgg"]
