"""The job behind ``zoo-eval``: ``evaluate_model`` builds the model, loads its weights, loads the data (or
the embedded sample), runs it with a ``zoo.runners`` backend and scores it (``zoo.scoring.evaluate``).

The backend: ``auto`` (the default) runs the setting measured fastest for a pass over the data on the device
(``zoo.runners.resolve_auto``: this machine's own tuning, which a large pass makes once, ``zoo.benchmark.tune``;
else the shipped table of its CPU class; setup time included; often bf16), whose top-1 can differ from fp32 by a
few images. ``eager`` runs the model as built in fp32, which is how every recorded accuracy was measured and
reproduces it exactly. Other ``zoo.runners`` specs (``bf16``, ``fold-bn+channels-last``...) run as given. An
exported backend alone (``onnxruntime``, ``pt2``, ``torchscript``, ``openvino``, ``openvino-bf16`` and the int8
ones, ``zoo.runners.EXPORTED``) evaluates an exported artefact (given, or a fresh export of the same weights;
int8 calibrated on 300 training images); the eager model is evaluated too and ``parity`` counts the images
whose top-1 differs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .benchmark.tune import maybe_tune
from .builder import create, pretrained_cfg
from .calibration import ECE_DEFINITION, calibration_metrics, fit_temperature
from .data.datasets import get_dataset_spec, load_for_eval, load_split
from .data.folders import is_image_folder, load_image_folder
from .data.splits import Split
from .errors import InvalidArgumentError
from .metadata import Weights
from .registry import get_entry, parse_model_name
from .runners import (
    AUTO_SPECS,
    EXPORTED,
    INT8,
    agreement,
    backend_of,
    calibration_images,
    load,
    parse_backend,
    prepare,
)
from .scoring import evaluate
from .specs import DatasetSpec
from .utils.machine import resolve_device
from .weights import load_into

__all__ = ["EvalResult", "evaluate_model", "CalibrationResult", "calibrate_model"]

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
    temperature: float = 1.0  # divided into the logits before loss and calibration (1: none)
    ece: float = 0.0  # zoo.calibration.ECE_DEFINITION
    brier: float = 0.0
    calibration_bins: list[dict[str, Any]] = field(default_factory=list)  # the reliability diagram's data

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CalibrationResult:
    """``zoo calibrate``: a temperature fitted on held-out training images, and the test split's calibration
    before and after it (``ece``, ``nll``, ``brier``, ``calibration_bins``); ``to_dict`` is its ``--json``."""

    model: str
    weights: str | None
    weights_sha256: str | None
    temperature: float
    holdout_images: int  # the last images of the training split
    holdout_seen_in_training: bool | None  # whether the checkpoint's recipe trained on them (None: unknown)
    holdout_nll: tuple[float, float]  # on the held-out images: at 1 and at the fitted temperature
    test_images: int
    top1: float
    before: dict[str, Any]
    after: dict[str, Any]
    ece_definition: str = ECE_DEFINITION
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate_model(name: str, *, weights: str | None = None, holdout: int = 5000, data_dir: str | None = None,
                    verify: bool = True, batch_size: int = 500, device: str = "cpu",
                    progress: bool = False) -> CalibrationResult:
    """Fit the temperature of ``name``'s checkpoint on held-out training images (never the test split) and
    measure the test split's calibration at temperature 1 and at the fitted one (fp32 eager): ``zoo calibrate``.

    Args:
        name: a registered architecture with a checkpoint.
        weights: its checkpoint (default: the released one).
        holdout: how many of the last training images to fit on.
        data_dir: the dataset root (default: ``$ZOO_DATA``, else the cache).
        verify: check the dataset files first.
        batch_size: images per batch.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        progress: a progress bar on stderr.

    Returns:
        A ``CalibrationResult``: the temperature, and ECE, NLL and Brier before and after it.

    Raises:
        UnknownModelError: an unknown model or weights name.
        DatasetError: the training or test split is absent or fails verification.
    """
    entry = get_entry(name)
    spec = get_dataset_spec(entry.dataset)
    notes: list[str] = []
    model, loaded, _ = _build(name, weights, entry, spec, 0, notes)
    if weights is None and loaded is None:
        raise InvalidArgumentError(f"{name} has no released checkpoint to calibrate; pass --weights FILE")
    mean, std = _statistics(loaded, spec, None, None)
    dev = resolve_device(device)
    scoring = dict(batch_size=batch_size, device=dev, mean=mean, std=std, progress=progress, return_logits=True)
    full_train = load_split(spec.name, "train", data_dir=data_dir, verify=verify)
    if not 1 <= holdout < len(full_train):
        raise InvalidArgumentError(f"--holdout must be in 1..{len(full_train) - 1}, got {holdout}")
    held_out = full_train.tail(holdout)
    held_logits = evaluate(model, held_out, name=f"{name} (held out)", **scoring)["logits"]
    temperature = fit_temperature(held_logits, held_out.labels)
    held_nll = tuple(calibration_metrics(held_logits, held_out.labels, t)["nll"] for t in (1.0, temperature))
    test = load_split(spec.name, "test", data_dir=data_dir, verify=verify)
    tested = evaluate(model, test, name=name, **scoring)
    seen = _seen_in_training(loaded, len(full_train), holdout)
    if seen:
        notes.append(f"the checkpoint's recipe trained on all {len(full_train):,} training images, these "
                     f"{holdout:,} included: the temperature is fitted on images it has seen, not truly held out")
    return CalibrationResult(
        model=name, weights=loaded.name if loaded is not None else weights,
        weights_sha256=getattr(loaded, "sha256", None), temperature=temperature, holdout_images=len(held_out),
        holdout_seen_in_training=seen, holdout_nll=held_nll, test_images=tested["num_images"], top1=tested["top1"],
        before=calibration_metrics(tested["logits"], test.labels),
        after=calibration_metrics(tested["logits"], test.labels, temperature), notes=notes)


def _seen_in_training(loaded: Weights | None, train_images: int, holdout: int) -> bool | None:
    """Whether the checkpoint's recipe trained on the last ``holdout`` training images (None: unknown recipe)."""
    from .train.recipes import RECIPES

    recipe = RECIPES.get(loaded.recipe) if loaded is not None else None
    if recipe is None:
        return None
    return not recipe.train_limit or recipe.train_limit > train_images - holdout


def evaluate_model(name: str, dataset: str, *, weights: str | None = None, split: str = "test",
                   data_dir: str | None = None, download: bool = False, verify: bool = True,
                   batch_size: int = 256, device: str = "cpu", limit: int | None = None,
                   mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                   allow_sample: bool = True, progress: bool = False, seed: int = 0, backend: str = "auto",
                   artefact: str | None = None, trust_artefact: bool = False,
                   temperature: float | str | None = None) -> EvalResult:
    """Build ``name``, load ``weights`` and evaluate it on ``dataset``: what ``zoo-eval`` runs.

    Args:
        name: a registered architecture, ``timm/<name>``, ``hf-hub:ORG/NAME`` or ``local-dir:PATH``.
        dataset: ``cifar10``, ``mnist``... or an ImageFolder tree (at the model's own input size and statistics).
        weights: as ``zoo.create``'s (default: the released default checkpoint; without one, random weights
            from ``seed``, and the result says so).
        split: ``"test"`` or ``"train"``.
        data_dir: the dataset root (default: ``$ZOO_DATA``, else the cache).
        download: fetch a missing dataset (torchvision's mirrors).
        verify: check the dataset files (md5 or content fingerprint) first.
        batch_size: images per batch.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        limit: score only the first ``limit`` images.
        mean: normalisation mean (with ``std``), overriding the checkpoint's.
        std: see ``mean``.
        allow_sample: fall back to the embedded 1,000-image sample when the dataset is absent (the result says so).
        progress: a progress bar on stderr.
        seed: the seed of random weights, when there is no checkpoint.
        backend: ``auto``, ``eager``, other ``zoo.runners`` specs, or an exported backend (the module
            docstring says what each does).
        artefact: an exported file to evaluate with an exported ``backend``.
        trust_artefact: allow a pt2 or TorchScript ``artefact``, which is code by nature (``zoo.runners.load``).
        temperature: divides the logits first: a number, or ``"fitted"`` for the card's (``zoo calibrate``).

    Returns:
        An ``EvalResult``: top-1, top-5, the NLL, the calibration (ECE, Brier, the reliability bins), the
        setting that ran, throughput and notes; ``to_dict()`` is ``zoo-eval --json``.

    Raises:
        UnknownModelError: an unknown model or weights name.
        InvalidArgumentError: an unknown backend or a bad option.
        DatasetError: the dataset is absent (and ``allow_sample`` is off) or fails verification.
        CheckpointError: the weights fail their sha256 or do not fit the model.
    """
    if backend not in AUTO_SPECS:
        parse_backend(backend)  # an unknown name fails here, before any work
    entry = get_entry(name) if parse_model_name(name)[0] == "zoo" else None
    folder = is_image_folder(dataset)  # an ImageFolder tree: scored at the model's own input size and statistics
    spec = get_dataset_spec(entry.dataset if folder and entry is not None else "cifar10" if folder else dataset)
    dev = resolve_device(device)
    notes: list[str] = []
    model, loaded, weights_note = _build(name, weights, entry, spec, seed, notes)
    mean, std = _statistics(loaded, spec, mean, std)
    t = _temperature(temperature, loaded, notes)
    if folder:
        classes = tuple(loaded.classes) if loaded is not None else spec.classes
        data = load_image_folder(dataset, split, input_size=spec.input_size, mean=mean, std=std, classes=classes)
        notes.append(f"image folder {data.root}: {len(data):,} images, classes {', '.join(data.dataset.classes)}")
    else:
        data = load_for_eval(spec.name, split, data_dir=data_dir, download=download, verify=verify,
                             allow_sample=allow_sample)
    data = _limited(data, limit, notes)
    backend = _artefact_backend(artefact, backend)
    scoring = dict(batch_size=batch_size, device=dev, mean=mean, std=std, progress=progress, temperature=t)
    parity = None
    if backend in EXPORTED:
        setting = backend
        metrics, parity = _evaluate_backend(model, name, backend, artefact, data, spec.name, data_dir, trust_artefact,
                                            scoring)
        notes.append(f"{backend}: {parity['summary']}")
    else:
        metrics, setting = _evaluate_torch(model, name, backend, data, tuple(spec.input_size), scoring, notes)
    comparable = (loaded is not None and not folder and loaded.dataset == spec.name and split == loaded.metrics.split
                  and not data.is_sample and limit is None and mean == tuple(loaded.mean) and std == tuple(loaded.std))
    recorded = _recorded(loaded, metrics["top1"], notes) if comparable else None
    return EvalResult(
        model=name, dataset=data.dataset.name, split=split, is_sample=data.is_sample,
        data_verification=data.verification, weights=loaded.name if loaded is not None else weights,
        weights_sha256=getattr(loaded, "sha256", None), weights_note=weights_note,
        classes=list(data.dataset.classes), mean=list(mean), std=list(std), batch_size=batch_size, device=str(dev),
        notes=notes, backend=backend, setting=setting, parity=parity, recorded_top1=recorded, **metrics,
    )


def _artefact_backend(artefact: str | None, backend: str) -> str:
    """The backend an ``artefact`` runs on: its file's (``.onnx``, ``.pt2``, ``.ts.pt``, ``.xml``) under ``auto``."""
    if artefact is not None and backend == "auto":
        backend = backend_of(artefact)
    if artefact is not None and backend not in EXPORTED:
        raise InvalidArgumentError(f"--artefact needs --backend {', '.join(EXPORTED)}, not {backend!r}")
    return backend


def _evaluate_torch(model: nn.Module, name: str, backend: str, data: Any, input_size: tuple[int, ...],
                    scoring: dict[str, Any], notes: list[str]) -> tuple[dict[str, Any], str]:
    """Score ``model`` run in torch (``eager``, ``auto`` or ``zoo.runners`` modifiers); the metrics and the
    setting that ran. ``auto`` is the setting measured fastest for a pass over these images, setup included,
    tuned here first when the pass pays for it (``zoo.benchmark.tune.maybe_tune``)."""
    dev, batch_size = scoring["device"], scoring["batch_size"]
    runner: Callable[[torch.Tensor], torch.Tensor] = model.to(dev).eval()
    setting = "eager"
    if backend != "eager":
        if backend in AUTO_SPECS:  # once per machine, model and batch size
            tuned = maybe_tune(name, batch_size=batch_size, images=len(data), device=dev, int8=backend == "auto-int8")
            notes += [tuned.summary] if tuned is not None else []
        runner = prepare(model, backend, input_size=input_size, device=dev, batch_size=batch_size, name=name,
                         images=len(data))
        setting = runner.spec
        notes += [n for n in runner.notes if n.startswith(("auto ran", "auto-int8 ran"))]
    metrics = evaluate(runner, data, name=name, **scoring)
    if "bf16" in setting:
        notes.append(f"{backend} ran {setting}: bf16 arithmetic, whose top-1 can differ from fp32 by a few "
                     "images; --backend eager gives the exact fp32 result")
    return metrics, setting


def _build(name: str, weights: str | None, entry: Any, spec: DatasetSpec, seed: int, notes: list[str]
           ) -> tuple[nn.Module, Weights | None, str]:
    """The model with its weights (default: the released default checkpoint; none: random from ``seed``),
    the checkpoint's card (None for a file without one, or random weights) and a note on what was loaded."""
    if weights is None and entry is not None and entry.weights:
        weights = "default"
    torch.manual_seed(seed)
    model = create(name, num_classes=spec.num_classes if entry is None else None)
    if weights is None:
        note = (f"no released checkpoint for {name}: random weights (seed {seed}), accuracy is chance level; "
                f"pass --weights FILE, or train one with `zoo train --model {name} --recipe ...`")
        notes.append(note)
        return model, None, note
    loaded = load_into(model, name, weights)
    if entry is not None:  # the card of what was loaded (auto-int8 reads its int8 record by name and sha256)
        model.pretrained_cfg = pretrained_cfg(name, model, loaded)
    if loaded is not None and loaded.dataset != spec.name:
        notes.append(f"checkpoint {loaded.name} was trained on {loaded.dataset}, evaluated on {spec.name}")
    return model, loaded, f"loaded {loaded.name}" if loaded is not None else f"loaded {weights}"


def _statistics(loaded: Weights | None, spec: DatasetSpec, mean: tuple[float, ...] | None,
                std: tuple[float, ...] | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation: as given, else the checkpoint's for its own dataset, else the dataset's."""
    if loaded is not None and loaded.dataset == spec.name:
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
    return mean, std


def _temperature(temperature: float | str | None, loaded: Weights | None, notes: list[str]) -> float:
    """The temperature to divide the logits by: 1 without one, the card's for ``"fitted"``."""
    if temperature is None:
        return 1.0
    if temperature == "fitted":
        if loaded is None or not loaded.temperature:
            which = loaded.name if loaded is not None else "these weights"
            raise InvalidArgumentError(f"--temperature fitted: {which} has no fitted temperature on its card; "
                                       f"fit one with `zoo calibrate`, or give a number")
        notes.append(f"temperature {loaded.temperature:.4g}: fitted on held-out training images (zoo calibrate)")
        return loaded.temperature
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"--temperature must be a number > 0 or 'fitted', got {temperature!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgumentError(f"--temperature must be a number > 0 or 'fitted', got {temperature!r}")
    if value != 1:
        notes.append(f"temperature {value:g}: the logits are divided by it before the loss and calibration")
    return value


def _limited(data: Split, limit: int | None, notes: list[str]) -> Split:
    if data.is_sample:
        notes.append(f"{data.dataset.name} not found: evaluated on the embedded {len(data):,}-image sample of the "
                     "test split, not the full test set")
    if limit is None:
        return data
    if limit < 1:
        raise InvalidArgumentError(f"--limit must be positive, got {limit}")
    notes.append(f"limited to the first {min(limit, len(data)):,} images")
    return data.head(limit)


def _recorded(loaded: Weights, top1: float, notes: list[str]) -> float:
    """The checkpoint's recorded top-1 (fp32 eager), with a note comparing this run to it."""
    recorded = loaded.metrics.top1
    delta = top1 - recorded
    notes.append(f"recorded top-1 of {loaded.name} (fp32 eager): {recorded:.2f}%; "
                 + ("this run reproduces it exactly" if delta == 0 else f"this run differs by {delta:+.2f}"))
    return recorded


def _evaluate_backend(model: nn.Module, name: str, backend: str, artefact: str | None, data: Split, dataset: str,
                      data_dir: Any, trust: bool, scoring: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An exported backend scored beside the eager model on the same images: its metrics and their parity."""
    dev = scoring["device"]
    if dev.type != "cpu":
        raise InvalidArgumentError(f"--backend {backend} runs on the CPU here; use --device cpu")
    if artefact is not None:
        runner = load(artefact, backend, trust=trust)
    else:  # the same weights, exported now (zoo.runners writes the artefact in a scratch folder and loads it)
        calibration = None
        if backend in INT8:  # training images of the model's dataset, never the images scored here
            calibration = calibration_images(dataset, mean=scoring["mean"], std=scoring["std"],
                                             data_dir=data_dir)[0]
        runner = prepare(model, backend, input_size=tuple(data.dataset.input_size), device=dev,
                         batch_size=scoring["batch_size"], name=name, calibration=calibration)
    metrics, eager, differ = agreement(model, runner, data, candidate_name=f"{name} ({backend})", reference_name=name,
                                       **scoring)
    parity = {"eager_top1": eager["top1"], "eager_top5": eager["top5"], "eager_loss": eager["loss"],
              "backend_top1": metrics["top1"], "eager_correct": eager["correct"],
              "backend_correct": metrics["correct"], "disagreeing_images": differ, "identical": differ == 0,
              "summary": ("top-1 predictions identical to eager on all images" if differ == 0 else
                          f"top-1 predictions differ from eager on {differ} of {metrics['num_images']} images "
                          f"(eager {eager['correct']} correct, {backend} {metrics['correct']})")}
    return metrics, parity
