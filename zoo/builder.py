"""Build registered models and describe them: ``create``, ``model_info``, ``layer_summary``.

This is the one place that does the plumbing between the registry, the models and the weights.
Builders never touch the device: models come back on the CPU in fp32, in train mode, like
torchvision's.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .errors import InvalidArgumentError
from .metadata import PublicResult, Weights, data_config
from .registry import get_entry, parse_model_name
from .specs import get_dataset_spec

__all__ = ["create", "pretrained_cfg", "model_info", "ModelInfo", "LayerRow", "layer_summary", "count_params",
           "count_flops", "deploy_form"]

_logger = logging.getLogger(__name__)

FLOPS_NOTE = ("FLOPs of one forward pass of one image, counted by torch.utils.flop_counter: convolutions, "
              "linear layers and matmuls, FLOPs = 2 x multiply-accumulates; norms, activations and pools "
              "are not counted.")


def _accepted_kwargs(fn: Any) -> list[str]:
    return [p.name for p in inspect.signature(fn).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def create(name: str, *, num_classes: int | None = None, in_chans: int | None = None,
           weights: str | None = None, **kwargs: Any) -> nn.Module:
    """Build model ``name``.

    Args:
        name: a registered name (``zoo.list_models()``), ``timm/<name>`` for a timm architecture
            adapted to the dataset's input size (see ``zoo.interop.from_timm``), or a Hugging Face Hub
            model in zoo's layout, ``hf-hub:ORG/NAME`` or a folder ``local-dir:PATH`` (``zoo.interop.hf_hub``;
            its weights are loaded and their sha256 checked, so ``weights`` must be None).
        num_classes: classifier outputs (default: the model's dataset).
        in_chans: input channels (default: the model's dataset).
        weights: a weight name ``arch.tag``, a tag of this model, ``"default"``, or a file path.
        **kwargs: options of the model's builder (e.g. ``dropout``); an unknown one raises.
            Options that are ``None`` are dropped, so a CLI can pass its options straight through.

    Returns:
        The model in training mode on the CPU, with ``model.pretrained_cfg`` (input size, mean, std, class
        names, the checkpoint's name and sha256 when weights were loaded), as timm models carry it.

    Raises:
        UnknownModelError: ``name`` or ``weights`` is not registered (the message lists the closest names).
        InvalidArgumentError: an option the builder does not take, or ``weights`` with a model that brings
            its own (``timm/``, ``hf-hub:``, ``local-dir:``).
        CheckpointError: the weights file is missing, fails its sha256, or does not match the model
            (every missing key, unexpected key and shape mismatch is named).

    Example:
        ```python
        model = zoo.create("resnet20", weights="default").eval()
        transform = zoo.get_weights("resnet20.cifar10").transforms()
        ```
    """
    source, bare = parse_model_name(name)
    if source == "timm":
        from .interop.from_timm import create_timm

        if weights is not None:  # never silently dropped: every caller then expects a checkpoint's config
            raise InvalidArgumentError(f"{name} is built from timm with random weights; zoo's checkpoints are for "
                                       "zoo's own models (zoo list --pretrained)")
        return create_timm(bare, num_classes=num_classes, in_chans=in_chans, **kwargs)
    if source != "zoo":
        return _create_from_hub(source, bare, weights, num_classes=num_classes, in_chans=in_chans, **kwargs)
    entry = get_entry(name)
    options = {k: v for k, v in dict(kwargs, num_classes=num_classes, in_chans=in_chans).items() if v is not None}
    accepted = _accepted_kwargs(entry.fn)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InvalidArgumentError(
            f"{name} does not accept {', '.join(unknown)}; its options are: {', '.join(accepted)}"
        )
    model = entry.fn(**options)
    loaded = None
    if weights is not None:
        from .weights.load import load_into

        # num_classes with weights is fine-tuning: a classifier of another size starts fresh (logged)
        head = getattr(model, "classifier_path", None) if num_classes is not None else None
        loaded = load_into(model, name, weights, new_head=head)
    model.pretrained_cfg = pretrained_cfg(name, model, loaded)
    return model


def _create_from_hub(source: str, where: str, weights: str | None, **kwargs: Any) -> nn.Module:
    """``create`` for ``hf-hub:ORG/NAME`` and ``local-dir:PATH``: the folder's architecture, with its weights."""
    from .interop.hf_hub import fetch_folder, read_folder
    from .weights.load import load_into

    if weights is not None:
        raise InvalidArgumentError(f"{source}:{where} brings its own weights; leave weights unset")
    arch, path, sha256, registered = read_folder(fetch_folder(where) if source == "hf-hub" else where)
    model = create(arch, **kwargs)
    head = getattr(model, "classifier_path", None) if kwargs.get("num_classes") is not None else None
    load_into(model, arch, path, new_head=head, sha256=sha256)
    model.pretrained_cfg = {**pretrained_cfg(arch, model, registered), "source": f"{source}:{where}"}
    return model


def pretrained_cfg(name: str, model: nn.Module, weights: Weights | None = None) -> dict[str, Any]:
    """What ``create`` attaches to every model as ``model.pretrained_cfg`` (timm's name for it).

    The data config (``zoo.metadata.data_config``) of the loaded weights, else of the model's dataset,
    with the model's actual class count, the names of its first layer and its classifier, and the
    loaded weights' name and sha256 (None without registered weights).
    """
    entry = get_entry(name)
    cfg = data_config(weights if weights is not None else get_dataset_spec(entry.dataset))
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, nn.Linear) and head.out_features != cfg["num_classes"]:  # fine-tuned: the classes are new
        cfg.update(num_classes=head.out_features, classes=())
    first = next((n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))), "")
    return {**cfg, "architecture": name, "first_conv": first, "classifier": getattr(model, "classifier_path", ""),
            "weights": weights.name if weights is not None else None,
            "sha256": weights.sha256 if weights is not None else None}


def deploy_form(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """The form of ``model`` to export and run: re-parameterised when it has ``reparameterize()`` (RepVGG's
    branches fused into one conv per block), else ``model`` itself.

    The caller's model is left as it is (a re-parameterised copy is returned) unless ``inplace``, for a caller
    that already holds its own copy.
    """
    if not callable(getattr(model, "reparameterize", None)):
        return model
    if not inplace:
        model = copy.deepcopy(model)
    _logger.debug("%s re-parameterised to its deploy form", type(model).__name__)
    return model.reparameterize()  # type: ignore[operator]


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on one input of ``input_size`` (see ``FLOPS_NOTE``).

    Runs on whatever device the model is on, the meta device included (no computation is done there).
    """
    device = next(model.parameters()).device
    x = torch.zeros((1, *input_size), device=device)
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class ModelInfo:
    """What zoo knows about an architecture (``zoo.model_info``). Counts are measured on the built model.

    Attributes:
        params: parameters counted on the built model; ``expected_params`` is the registry's figure and
            ``params_match`` says whether they agree; ``reported_params`` is the source's own count, when
            it publishes one (``params_note`` says why it differs).
        gflops: multiply-accumulates per image at ``input_size``, in billions (``flops_note`` says how counted).
        reported_accuracy: the top-1 the source reports, when it does.
        weights: the names of its released checkpoints.
        public: other collections' published top-1 for this architecture, with where each comes from.
    """

    name: str
    family: str
    description: str
    source: str
    dataset: str
    num_classes: int
    input_size: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    params: int
    expected_params: int
    reported_params: int | None
    params_note: str
    gflops: float
    flops_note: str
    reported_accuracy: float | None
    weights: tuple[str, ...]
    public: tuple[PublicResult, ...] = ()  # other collections' published top-1 (registry entry)

    @property
    def params_match(self) -> bool:
        return self.params == self.expected_params

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["params_match"] = self.params_match
        return d


def _build_on_meta(name: str) -> nn.Module:
    with torch.device("meta"):
        return get_entry(name).fn()


@functools.cache
def model_info(name: str) -> ModelInfo:
    """Describe architecture ``name``: its source, counted vs expected parameters, GFLOPs, its checkpoints.

    The model is built on the meta device, so this is cheap even for the largest networks.

    Args:
        name: a registered architecture (``zoo.list_models()``).

    Returns:
        A ``ModelInfo``, the card ``zoo info NAME`` prints.

    Raises:
        UnknownModelError: ``name`` is not registered.
    """
    entry = get_entry(name)
    spec = get_dataset_spec(entry.dataset)
    model = _build_on_meta(name)
    return ModelInfo(
        name=name,
        family=entry.family,
        description=entry.description,
        source=entry.source,
        dataset=spec.name,
        num_classes=spec.num_classes,
        input_size=spec.input_size,
        mean=spec.mean,
        std=spec.std,
        params=count_params(model),
        expected_params=entry.expected_params,
        reported_params=entry.reported_params,
        params_note=entry.params_note,
        gflops=count_flops(model, spec.input_size) / 1e9,
        flops_note=FLOPS_NOTE,
        reported_accuracy=entry.reported_accuracy,
        weights=tuple(w.name for w in entry.weights),
        public=entry.public,
    )


@dataclass(frozen=True)
class LayerRow:
    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int


def layer_summary(name: str) -> list[LayerRow]:
    """The layers of architecture ``name``, as ``zoo info NAME --layers`` prints them.

    Args:
        name: a registered architecture.

    Returns:
        One ``LayerRow`` per leaf module in call order: its name, type, the output shape for one input of
        the model's default size, and its own parameter count.

    Raises:
        UnknownModelError: ``name`` is not registered.
    """
    entry = get_entry(name)
    model = _build_on_meta(name).eval()
    rows: list[LayerRow] = []
    hooks = []
    for mod_name, module in model.named_modules():
        if list(module.children()) or isinstance(module, nn.Identity):
            continue

        def hook(mod: nn.Module, args: Any, out: Any, mod_name: str = mod_name) -> None:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
            rows.append(LayerRow(mod_name, type(mod).__name__, shape, sum(p.numel() for p in mod.parameters())))

        hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.zeros((1, *entry.input_size), device="meta"))
    for h in hooks:
        h.remove()
    return rows
