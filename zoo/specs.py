"""Dataset constants: classes, input size and mean/std of every dataset zoo knows (no I/O).

The one source of truth for these numbers: models, weights metadata, evaluation, export and the
loaders in ``zoo.data`` read them from ``DATASETS``. Kept apart from ``zoo.data`` so that metadata
modules can use them without importing the loaders, numpy or torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DatasetError

__all__ = ["DatasetSpec", "DATASETS", "get_dataset_spec"]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
    "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
    "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class DatasetSpec:
    """What a model needs to know about a dataset.

    ``mean``/``std`` are the per-channel statistics of the training split on the [0, 1] scale;
    ``input_size`` is (C, H, W) for images and (F,) for tabular data.
    """

    name: str
    num_classes: int
    input_size: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    torchvision_class: str | None  # name in torchvision.datasets, None when not an image set


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        # CIFAR-10 train statistics (verified on the real train split, see ../shared/datasets).
        DatasetSpec("cifar10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                    CIFAR10_CLASSES, "CIFAR10"),
        DatasetSpec("cifar100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                    CIFAR100_CLASSES, "CIFAR100"),
        DatasetSpec("mnist", 10, (1, 28, 28), (0.1307,), (0.3081,), MNIST_CLASSES, "MNIST"),
        DatasetSpec("fashion_mnist", 10, (1, 28, 28), (0.2860,), (0.3530,), FASHION_MNIST_CLASSES,
                    "FashionMNIST"),
        # Two concentric circles in the plane (report 004's "Circles" data); features are used raw.
        DatasetSpec("circles", 2, (2,), (0.0, 0.0), (1.0, 1.0), ("outer", "inner"), None),
    )
}


def get_dataset_spec(name: str) -> DatasetSpec:
    """Return the spec of dataset ``name`` (case-insensitive, ``-`` and ``_`` alike)."""
    key = name.lower().replace("-", "_")
    if key == "fashionmnist":
        key = "fashion_mnist"
    try:
        return DATASETS[key]
    except KeyError:
        raise DatasetError(
            f"unknown dataset {name!r}; known: {', '.join(DATASETS)}"
        ) from None
