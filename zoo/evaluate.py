"""Evaluation: top-1, top-5, mean loss, per-class accuracy, confusion matrix, throughput.

``evaluate`` runs a model over a ``zoo.data.Split``; ``evaluate_model`` is the whole job behind
``zoo-eval``: build the model, load its weights, load the data (or the embedded sample), evaluate.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .builder import create
from .data import Split, batches, get_dataset_spec, load_for_eval
from .errors import InvalidArgumentError, ZooError, summarize
from .folders import is_image_folder, load_image_folder
from .registry import get_entry, parse_model_name

__all__ = ["EvalResult", "evaluate", "evaluate_model", "resolve_device"]

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
    backend: str = "eager"  # as asked: auto, eager, an exported backend, or zoo.backends modifiers
    setting: str = "eager"  # what ran: ``auto`` resolved (e.g. fold-bn+channels-last+bf16-cast)
    parity: dict[str, Any] | None = None  # vs eager: top-1 of both, eager top-5 and loss, disagreeing images
    recorded_top1: float | None = None  # the released checkpoint's recorded top-1 (fp32 eager), when comparable

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; a CUDA request on a machine without CUDA raises."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidArgumentError(f"invalid device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"--device {device}: no CUDA device is available on this machine; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"unsupported device {device!r}; use cpu or cuda")
    return dev


def _progress(it: Iterator[Any], total: int, enabled: bool, desc: str) -> Iterator[Any]:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return iter(tqdm(it, total=total, desc=desc, unit="batch", leave=False))


def _check_shapes(model: Callable[[torch.Tensor], torch.Tensor], split: Split, num_classes: int, device: torch.device,
                  name: str) -> None:
    """Fail with a clear message when the model does not fit the data (input shape or class count)."""
    x = split.images[:2]
    try:
        with torch.no_grad():
            out = model(x.to(device, torch.float32))
    except Exception as e:  # a boundary: torch raises RuntimeError, onnxruntime its own exception types
        shape = "x".join(map(str, x.shape[1:]))
        raise InvalidArgumentError(
            f"{name} cannot take {split.dataset.name} input of shape {shape}: "
            f"{summarize(e, limit=300)}"
        ) from None
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise InvalidArgumentError(
            f"{name} outputs {tuple(out.shape[1:])} scores but {split.dataset.name} has {num_classes} classes"
        )
    _check_batch(out, x.shape[0], name)


def _check_batch(out: Any, images: int, name: str) -> None:
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != images:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidArgumentError(f"{name} gave outputs of shape {shape} for a batch of {images} images; "
                                   f"expected ({images}, classes): its batch size does not follow the input")


def _scores(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, name: str, index: int) -> torch.Tensor:
    """The logits of one batch: every failure of the model (an artefact's runtime raises its own types) is one line."""
    try:
        out = model(x)
    except ZooError:
        raise
    except Exception as e:  # noqa: BLE001  (a boundary: torch, onnxruntime and OpenVINO raise their own types)
        raise InvalidArgumentError(f"{name} failed on batch {index + 1} ({x.shape[0]} images): "
                                   f"{type(e).__name__}: {summarize(e, limit=300)}") from None
    _check_batch(out, x.shape[0], name)
    return out.float()


@torch.no_grad()
def evaluate(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], split: Split, *, batch_size: int = 256,
             device: str | torch.device = "cpu", mean: tuple[float, ...] | None = None,
             std: tuple[float, ...] | None = None, progress: bool = False, name: str = "model",
             return_predictions: bool = False) -> dict[str, Any]:
    """Evaluate ``model`` (a module, or any callable batch -> logits) on ``split``.

    Returns the metrics of ``EvalResult`` as a dict (plus ``predictions``, a tensor of the top-1
    class per image, with ``return_predictions``).
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch size must be positive, got {batch_size}")
    device = torch.device(device)
    num_classes = split.dataset.num_classes
    if isinstance(model, nn.Module):
        model = model.to(device).eval()
    _check_shapes(model, split, num_classes, device, name)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    loss_sum, top5_correct, n = 0.0, 0, 0
    k = min(5, num_classes)
    predictions: list[torch.Tensor] = []
    total = (len(split) + batch_size - 1) // batch_size
    t0 = time.perf_counter()
    for index, (x, y) in enumerate(_progress(batches(split, batch_size, mean=mean, std=std, device=device), total,
                                             progress, name)):
        logits = _scores(model, x, name, index)
        y = y.to(device)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        top5_correct += (logits.topk(k, 1).indices == y[:, None]).any(1).sum().item()
        pred = logits.argmax(1)
        if return_predictions:
            predictions.append(pred.cpu())
        confusion += torch.bincount((y * num_classes + pred).cpu(), minlength=num_classes**2).view(
            num_classes, num_classes)
        n += y.numel()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    correct = int(confusion.diag().sum())
    per_class_n = confusion.sum(1)
    per_class = [
        {"class": c, "images": int(per_class_n[i]),
         "accuracy": 100.0 * float(confusion[i, i]) / max(1, int(per_class_n[i]))}
        for i, c in enumerate(split.dataset.classes)
    ]
    out = dict(
        num_images=n,
        top1=100.0 * correct / max(1, n),
        top5=100.0 * top5_correct / max(1, n),
        loss=loss_sum / max(1, n),
        correct=correct,
        per_class=per_class,
        confusion=confusion.tolist(),
        images_per_s=n / wall if wall > 0 else float("inf"),
        wall_s=wall,
    )
    if return_predictions:
        out["predictions"] = torch.cat(predictions) if predictions else torch.zeros(0, dtype=torch.int64)
    return out


def _subset(split: Split, limit: int) -> Split:
    import dataclasses

    idx = split.indices[:limit] if split.indices is not None else None
    return dataclasses.replace(split, images=split.images[:limit], labels=split.labels[:limit], indices=idx)


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
    ``device`` (``zoo.backends.resolve_auto``: measured per CPU class, setup time included; often bf16),
    whose top-1 can differ from fp32 by a few images; ``eager`` runs the model as built in fp32, which
    is how every recorded accuracy was measured and reproduces it exactly. Other ``zoo.backends``
    specs (``bf16``, ``fold-bn+channels-last``...) run as given. An exported backend alone
    (``onnxruntime``, ``pt2``, ``torchscript``, ``openvino``, ``openvino-bf16`` and the int8 ones,
    ``zoo.backends.EXPORTED``) evaluates an exported artefact (``artefact``, or a fresh export of the
    same weights; int8 calibrated on 300 training images); the eager model is evaluated too and
    ``parity`` counts the images whose top-1 differs. A pt2 or TorchScript ``artefact`` is code by nature
    and is refused unless ``trust_artefact`` (``zoo.backends.load``).
    """
    from .backends import EXPORTED, backend_of, parse_backend

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
        from .weights import load_into

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
        data = _subset(data, limit)
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
    from .backends import AUTO_CPU_BF16, AUTO_CPU_FP32, cpu_has_bf16, parse_backend, prepare, resolve_auto
    from .builder import count_flops

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
    from .backends import EXPORTED, INT8, load, prepare
    from .data import calibration_batch

    if backend not in EXPORTED:
        raise InvalidArgumentError(f"unknown backend {backend!r}; use one of eager, {', '.join(EXPORTED)}")
    if dev.type != "cpu":
        raise InvalidArgumentError(f"--backend {backend} runs on the CPU here; use --device cpu")
    if artefact is not None:
        runner = load(artefact, backend, trust=trust)
    else:  # the same weights, exported now (zoo.backends writes the artefact in a scratch folder and loads it)
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
