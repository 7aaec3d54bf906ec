"""What a released checkpoint is: the ``Weights`` and ``Metrics`` records (data only, no I/O).

Model files list their released checkpoints with these records; ``zoo.registry`` owns the lookup
(``list_weights``, ``get_weights``) and ``zoo.weights`` the file format, finding and loading.
Importing this module pulls in neither torch nor safetensors.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgumentError
from .specs import get_dataset_spec

__all__ = ["Metrics", "Weights", "PublicResult", "SAFETENSORS_SUFFIX", "STORAGE_DTYPES", "data_config",
           "CHENYAOFO", "KUANGLIU", "PYTORCHCV"]

SAFETENSORS_SUFFIX = ".safetensors"
STORAGE_DTYPES = ("float32", "float16")  # how a released file may store its tensors


@dataclass(frozen=True)
class PublicResult:
    """Another public collection's CIFAR-10 top-1 (%) for an architecture, as its README gives it.

    Most collections report the best epoch on the test split; zoo's figures are the last epoch, measured
    from the stored file. ``source`` names the collection (``owner/repo``), ``url`` where the figure is;
    ``note`` says where its network differs from zoo's (another shortcut, another parameter count).
    """

    top1: float
    source: str
    url: str
    note: str = ""


CHENYAOFO = ("chenyaofo/pytorch-cifar-models", "https://github.com/chenyaofo/pytorch-cifar-models#cifar-10")
KUANGLIU = ("kuangliu/pytorch-cifar", "https://github.com/kuangliu/pytorch-cifar#accuracy")
PYTORCHCV = ("osmr/imgclsmob (pytorchcv)", "https://github.com/osmr/imgclsmob/blob/master/pytorch/README.md")


@dataclass(frozen=True, kw_only=True)
class Metrics:
    """Scores of a checkpoint, measured from the stored file on the whole ``split`` (``num_images`` images).

    Attributes:
        top1: top-1 accuracy in percent.
        top5: top-5 accuracy in percent; None when there are fewer than 5 classes.
        loss: mean cross-entropy (the negative log-likelihood) over the split.
        split: the split it was measured on (``"test"``).
        num_images: how many images that split holds.
    """

    top1: float
    top5: float | None
    loss: float
    split: str = "test"
    num_images: int


@dataclass(frozen=True, kw_only=True)
class Weights:
    """One released checkpoint of ``arch``, named ``arch.tag``; how it was made and what it scores.

    ``num_classes``, ``classes``, ``input_size``, ``mean`` and ``std`` default to the dataset's
    (``zoo.data.DATASETS``); an entry gives them only where its checkpoint differs. As torchvision's
    ``Weights``, the card gives the preprocessing: ``weights.transforms()``.

    Attributes:
        arch: the architecture (``zoo.create(arch)``); ``name`` is ``arch.tag``.
        file_name: the safetensors file under ``weights/`` (or the weights packages); ``sha256`` its hash,
            checked on the exact bytes before every load; ``file_size`` its size in bytes and ``dtype`` how
            its tensors are stored (``float32``, or ``float16`` for the largest networks).
        metrics: the scores measured from the stored file on the full test split (``Metrics``).
        num_params: parameters of the model it loads into; ``gflops`` its GFLOPs per image.
        recipe: the ``zoo.train.recipes`` name it was trained with (``zoo train --recipe``).
        train_time_s: the training's wall time in seconds; ``hardware`` the machine it ran on.
        url: where the file can be downloaded from, when it is published outside this repository.
        temperature: the temperature fitted by ``zoo calibrate`` on held-out training images (0: not fitted).
    """

    arch: str
    tag: str
    file_name: str
    sha256: str
    dataset: str
    metrics: Metrics
    num_params: int
    gflops: float
    recipe: str
    train_time_s: float
    hardware: str
    file_size: int
    dtype: str = "float32"
    licence: str = "MIT"
    url: str | None = None
    num_classes: int = 0  # 0: the dataset's
    classes: tuple[str, ...] = ()  # (): the dataset's, and so on below
    input_size: tuple[int, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    temperature: float = 0.0  # fitted by `zoo calibrate` on held-out training images (0: not fitted)

    def __post_init__(self) -> None:
        spec = get_dataset_spec(self.dataset)
        if not self.num_classes:
            object.__setattr__(self, "num_classes", spec.num_classes)
        for name in ("classes", "input_size", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)) or tuple(getattr(spec, name)))
        if "." in self.arch or not self.tag:
            raise InvalidArgumentError(f"weights need an arch without dots and a tag, got {self.arch!r}.{self.tag!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise InvalidArgumentError(f"weights {self.name}: sha256 must be 64 lowercase hex digits")
        if self.dtype not in STORAGE_DTYPES:
            raise InvalidArgumentError(f"weights {self.name}: dtype must be one of {', '.join(STORAGE_DTYPES)}")
        if not (self.temperature == 0 or 0 < self.temperature < 100):
            raise InvalidArgumentError(f"weights {self.name}: temperature must be 0 (not fitted) or in (0, 100)")
        if not self.file_name.endswith(SAFETENSORS_SUFFIX) or "/" in self.file_name:
            raise InvalidArgumentError(f"weights {self.name}: file_name must be a bare *{SAFETENSORS_SUFFIX} name")

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.tag}"

    def to_dict(self) -> dict[str, Any]:
        return dict(dataclasses.asdict(self), name=self.name)

    def data_config(self) -> dict[str, Any]:
        """The preprocessing this checkpoint expects (see ``zoo.metadata.data_config``)."""
        return data_config(self)

    def transforms(self) -> Any:
        """A torchvision-style callable: PIL image, uint8 tensor or array -> the normalised float tensor this
        checkpoint expects (``zoo.data.transforms.make_transform``; other image sizes are resized, and it says so)."""
        from .data.transforms import make_transform  # torchvision, only when asked for

        return make_transform(self.data_config())


def data_config(source: Any) -> dict[str, Any]:
    """The data config of a checkpoint, a model or a dataset, in timm's ``pretrained_cfg`` vocabulary.

    ``source`` is a ``Weights``, a model that ``zoo.create`` built (it carries ``pretrained_cfg``), a
    ``DatasetSpec`` or a dataset name. Keys: ``input_size`` (C, H, W), ``mean``, ``std``, ``num_classes``,
    ``classes``, ``interpolation``, ``crop_pct`` and ``crop_mode`` (zoo's images are used whole: no crop).
    """
    cfg = getattr(source, "pretrained_cfg", None)
    if isinstance(cfg, dict) and "input_size" in cfg:
        return {k: cfg[k] for k in _DATA_KEYS if k in cfg}
    if isinstance(source, Weights):
        spec: Any = source
    elif isinstance(source, str):
        spec = get_dataset_spec(source)
    elif all(hasattr(source, k) for k in ("input_size", "mean", "std", "num_classes", "classes")):
        spec = source
    else:
        raise InvalidArgumentError(f"no data config for a {type(source).__name__}: pass a Weights, a model built by "
                                   f"zoo.create, a DatasetSpec or a dataset name")
    return {"input_size": tuple(spec.input_size), "mean": tuple(spec.mean), "std": tuple(spec.std),
            "num_classes": spec.num_classes, "classes": tuple(spec.classes), "interpolation": "bilinear",
            "crop_pct": 1.0, "crop_mode": "center"}


_DATA_KEYS = ("input_size", "mean", "std", "num_classes", "classes", "interpolation", "crop_pct", "crop_mode")
