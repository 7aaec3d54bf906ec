"""The job behind ``zoo-eval``: ``evaluate_model`` builds the model, loads its weights, loads the data (or
the embedded sample), runs it with a ``zoo.runners`` backend and scores it (``zoo.scoring.evaluate``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .builder import create
from .data.datasets import Split, get_dataset_spec, load_for_eval
from .data.folders import is_image_folder, load_image_folder
from .errors import InvalidArgumentError
from .registry import get_entry, parse_model_name
from .scoring import evaluate
from .utils.machine import resolve_device

__all__ = ["EvalResult", "evaluate_model"]

_logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Metrics of one evaluation; ``to_dict`` is what ``zoo-eval --json`` prints."""

    model: str
    dataset: str
    split: str
    num_images: int
    is_sample: bool
    data_verification: str
    weights: str | None
    weights_sha256: str | None
    weights_note: str
    top1: float
    top5: float
    loss: float
    correct: int
    per_class: list[dict[str, Any]]
    confusion: list[list[int]]
    classes: list[str]
    mean: list[float]
    std: list[float]
    batch_size: int
    device: str
    images_per_s: float
    wall_s: float
    notes: list[str] = field(default_factory=list)
    backend: str = "eager"  # as asked: auto, eager, an exported backend, or zoo.runners modifiers
    setting: str = "eager"  # what ran: ``auto`` resolved (e.g. fold-bn+channels-last+bf16-cast)
    parity: dict[str, Any] | None = None  # vs eager: top-1 of both, eager top-5 and loss, disagreeing images
    recorded_top1: float | None = None  # the released checkpoint's recorded top-1 (fp32 eager), when comparable

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_model(name: str, dataset: str, *, weights: str | None = None, split: str = "test",
                   data_dir: str | None = None, download: bool = False, verify: bool = True,
                   batch_size: int = 256, device: str = "cpu", limit: int | None = None,
                   mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                   allow_sample: bool = True, progress: bool = False, seed: int = 0, backend: str = "auto",
                   artefact: str | None = None, trust_artefact: bool = False) -> EvalResult:
    """Build ``name``, load ``weights`` (default: its released default checkpoint), evaluate on ``dataset``.

    With no released checkpoint and no ``weights``, the model is evaluated with random weights from
    ``seed`` and the result says so. When the dataset is absent and ``allow_sample``, the embedded
    1,000-image sample is used and the result says so.

    ``backend``: ``auto`` (the default) runs the setting measured fastest for a pass over a dataset on
    ``device`` (``zoo.runners.resolve_auto``: measured per CPU class, setup time included; often bf16),
    whose top-1 can differ from fp32 by a few images; ``eager`` runs the model as built in fp32, which
    is how every recorded accuracy was measured and reproduces it exactly. Other ``zoo.runners``
    specs (``bf16``, ``fold-bn+channels-last``...) run as given. An exported backend alone
    (``onnxruntime``, ``pt2``, ``torchscript``, ``openvino``, ``openvino-bf16`` and the int8 ones,
    ``zoo.runners.EXPORTED``) evaluates an exported artefact (``artefact``, or a fresh export of the
    same weights; int8 calibrated on 300 training images); the eager model is evaluated too and
    ``parity`` counts the images whose top-1 differs. A pt2 or TorchScript ``artefact`` is code by nature
    and is refused unless ``trust_artefact`` (``zoo.runners.load``).
    """
    from .runners.runner import EXPORTED, backend_of, parse_backend

    if backend != "auto":
        parse_backend(backend)  # an unknown name fails here, before any work
    entry = get_entry(name) if parse_model_name(name)[0] == "zoo" else None
    folder = is_image_folder(dataset)  # an ImageFolder tree: scored at the model's own input size and statistics
    spec = get_dataset_spec(entry.dataset if folder and entry is not None else "cifar10" if folder else dataset)
    dev = resolve_device(device)
    notes: list[str] = []
    if weights is None and entry is not None and entry.weights:
        weights = "default"
    torch.manual_seed(seed)
    model = create(name, num_classes=spec.num_classes if entry is None else None)
    loaded = None
    weights_note = ""
    if weights is None:
        weights_note = (f"no released checkpoint for {name}: random weights (seed {seed}), accuracy is chance level; "
                        f"pass --weights FILE, or train one with `zoo train --model {name} --recipe ...`")
        notes.append(weights_note)
    else:
        from .weights.load import load_into

        loaded = load_into(model, name, weights)
        weights_note = f"loaded {loaded.name}" if loaded is not None else f"loaded {weights}"
        if loaded is not None and loaded.dataset != spec.name:
            notes.append(f"checkpoint {loaded.name} was trained on {loaded.dataset}, evaluated on {spec.name}")
    if loaded is not None and loaded.dataset == spec.name:  # the checkpoint's statistics for its own dataset
        mean = tuple(loaded.mean) if mean is None else mean
        std = tuple(loaded.std) if std is None else std
    mean = tuple(mean) if mean is not None else spec.mean
    std = tuple(std) if std is not None else spec.std
    if len(mean) != spec.input_size[0] or len(std) != spec.input_size[0]:
        raise InvalidArgumentError(f"--mean/--std need {spec.input_size[0]} values for {spec.name}, "
                                   f"got {len(mean)} and {len(std)}")
    if not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
        raise InvalidArgumentError(f"--mean must be finite and --std finite and positive, got mean {list(mean)} "
                                   f"and std {list(std)}")
    if folder:
        classes = tuple(loaded.classes) if loaded is not None else spec.classes
        data = load_image_folder(dataset, split, input_size=spec.input_size, mean=mean, std=std, classes=classes)
        notes.append(f"image folder {data.root}: {len(data):,} images, classes {', '.join(data.dataset.classes)}")
    else:
        data = load_for_eval(spec.name, split, data_dir=data_dir, download=download, verify=verify,
                             allow_sample=allow_sample)
    if data.is_sample:
        notes.append(f"{spec.name} not found: evaluated on the embedded {len(data):,}-image sample of the test "
                     "split, not the full test set")
    if limit is not None:
        if limit < 1:
            raise InvalidArgumentError(f"--limit must be positive, got {limit}")
        data = data.head(limit)
        notes.append(f"limited to the first {len(data):,} images")
    parity = None
    if artefact is not None and backend == "auto":  # the file says how it runs: .onnx, .pt2, .ts.pt, .xml
        backend = backend_of(artefact)
    if artefact is not None and backend not in EXPORTED:
        raise InvalidArgumentError(f"--artefact needs --backend {', '.join(EXPORTED)}, not {backend!r}")
    if backend in EXPORTED:
        setting = backend
        metrics, parity = _evaluate_backend(model, name, backend, artefact, data, batch_size, dev, mean,
                                            std, progress, spec.name, data_dir, trust_artefact)
        notes.append(f"{backend}: {parity['summary']}")
    else:
        runner, setting = _prepare(model, backend, spec.input_size, dev, batch_size, name, len(data))
        metrics = evaluate(runner, data, batch_size=batch_size, device=dev, mean=mean, std=std, progress=progress,
                           name=name)
        if "bf16" in setting:
            notes.append(f"{backend} ran {setting}: bf16 arithmetic, whose top-1 can differ from fp32 by a few "
                         "images; --backend eager gives the exact fp32 result")
    recorded = None
    if (loaded is not None and not folder and loaded.dataset == spec.name and split == loaded.metrics.split
            and not data.is_sample
            and limit is None and tuple(mean) == tuple(loaded.mean) and tuple(std) == tuple(loaded.std)):
        recorded = loaded.metrics.top1
        delta = metrics["top1"] - recorded
        notes.append(f"recorded top-1 of {loaded.name} (fp32 eager): {recorded:.2f}%; "
                     + ("this run reproduces it exactly" if delta == 0 else f"this run differs by {delta:+.2f}"))
    sha = getattr(loaded, "sha256", None)
    return EvalResult(
        model=name, dataset=data.dataset.name, split=split, is_sample=data.is_sample,
        data_verification=data.verification, weights=loaded.name if loaded is not None else weights,
        weights_sha256=sha, weights_note=weights_note, classes=list(data.dataset.classes), mean=list(mean),
        std=list(std), batch_size=batch_size, device=str(dev), notes=notes, backend=backend, setting=setting,
        parity=parity, recorded_top1=recorded, **metrics,
    )


def _prepare(model: nn.Module, backend: str, input_size: tuple[int, ...], dev: torch.device, batch_size: int,
             name: str, images: int) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """The callable that evaluates ``model`` with ``backend``, and the setting it resolved to."""
    from .builder import count_flops
    from .runners.runner import AUTO_CPU_BF16, AUTO_CPU_FP32, cpu_has_bf16, parse_backend, prepare, resolve_auto

    if backend == "eager":
        return model.to(dev).eval(), "eager"
    if backend != "auto":
        p = prepare(model, backend, input_size=tuple(input_size), device=dev, batch_size=batch_size, name=name)
        return p, p.spec
    # auto: the setting measured fastest for a pass over `images` images (an export's setup time counts);
    # should it fail on this model (an export, or torch.fx tracing for fold-bn), the next simpler one.
    try:
        gflops: float | None = count_flops(model, tuple(input_size)) / 1e9
    except Exception:  # input the model cannot take: evaluate's own check says so in one line
        gflops = None
    chosen = resolve_auto(dev, batch_size, gflops, images=images)
    tries = [chosen]
    if dev.type == "cpu":
        plain = AUTO_CPU_BF16 if cpu_has_bf16() else AUTO_CPU_FP32
        tries += [plain, "+".join(m for m in parse_backend(plain) if m != "fold-bn")]
    tries = list(dict.fromkeys(tries))
    for i, spec in enumerate(tries):
        try:
            p = prepare(model, spec, input_size=tuple(input_size), device=dev, batch_size=batch_size, name=name)
        except Exception as e:  # auto's own choice must not fail where a simpler setting works
            if i == len(tries) - 1:
                raise
            _logger.warning("%s: %s; evaluating with %s", name, e, tries[i + 1])
        else:
            return p, p.spec
    raise AssertionError("unreachable")


def _evaluate_backend(model: nn.Module, name: str, backend: str, artefact: str | None, data: Split, batch_size: int,
                      dev: torch.device, mean: tuple[float, ...], std: tuple[float, ...],
                      progress: bool, dataset_name: str, data_dir: Any, trust: bool = False
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    from .data.datasets import calibration_batch
    from .runners.runner import EXPORTED, INT8, load, prepare

    if backend not in EXPORTED:
        raise InvalidArgumentError(f"unknown backend {backend!r}; use one of eager, {', '.join(EXPORTED)}")
    if dev.type != "cpu":
        raise InvalidArgumentError(f"--backend {backend} runs on the CPU here; use --device cpu")
    if artefact is not None:
        runner = load(artefact, backend, trust=trust)
    else:  # the same weights, exported now (zoo.runners writes the artefact in a scratch folder and loads it)
        calibration = None
        if backend in INT8:  # training images of the model's dataset, never the images scored here
            calibration = calibration_batch(dataset_name, mean=mean, std=std, data_dir=data_dir)
        runner = prepare(model, backend, input_size=tuple(data.dataset.input_size), device=dev,
                         batch_size=batch_size, name=name, calibration=calibration)
    metrics = evaluate(runner, data, batch_size=batch_size, device=dev, mean=mean, std=std, progress=progress,
                       name=f"{name} ({backend})", return_predictions=True)
    eager = evaluate(model, data, batch_size=batch_size, device=dev, mean=mean, std=std, name=name,
                     return_predictions=True)
    differ = int((metrics.pop("predictions") != eager["predictions"]).sum())
    parity = {"eager_top1": eager["top1"], "eager_top5": eager["top5"], "eager_loss": eager["loss"],
              "backend_top1": metrics["top1"], "eager_correct": eager["correct"],
              "backend_correct": metrics["correct"], "disagreeing_images": differ, "identical": differ == 0,
              "summary": ("top-1 predictions identical to eager on all images" if differ == 0 else
                          f"top-1 predictions differ from eager on {differ} of {metrics['num_images']} images "
                          f"(eager {eager['correct']} correct, {backend} {metrics['correct']})")}
    return metrics, parity
