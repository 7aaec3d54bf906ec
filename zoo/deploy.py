"""Deployment jobs: export a registered model with its weights and check it; quantise an exported file.

``export_model`` builds the model with its checkpoint (``zoo.create``), writes the artefact with the
serializers of ``zoo.runners.serialize``, loads it back as a ``zoo.runners`` runner and runs it against eager on
random inputs and on a real batch at two batch sizes; ``parity`` records the max abs difference and
whether the argmax is identical, and an ``ExportError`` is raised when the difference exceeds the
tolerance (the file at ``out`` is then left as it was). ``quantize`` makes a static int8 file (ONNX
through onnxruntime, OpenVINO IR through NNCF) calibrated on training images and scores both files
on the test split.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ._version import __version__
from .builder import create
from .data.datasets import DatasetMissingError, load_for_eval
from .data.splits import batches
from .errors import InvalidArgumentError, ZooError, summarize
from .registry import get_entry, get_weights
from .runners import Parity, agreement, backend_of, calibration_images, check_parity, int8_source, load
from .runners.base import FORMAT_RUNTIMES, RUNTIME_FORMATS
from .runners.serialize import FORMATS, ExportError, write, write_int8
from .specs import get_dataset_spec
from .utils.fileio import atomic_path, replace_into

__all__ = ["ATOL", "ExportResult", "export_model", "QuantResult", "quantize"]

_logger = logging.getLogger(__name__)

ATOL = 1e-4  # max logit difference allowed between an artefact and eager (fp32), times max(1, max |logit|)


@dataclass
class ExportResult:
    model: str
    format: str
    path: str
    exporter: str
    weights: str | None
    metadata: dict[str, str]
    parity: list[Parity] = field(default_factory=list)
    tolerance: float = ATOL
    notes: list[str] = field(default_factory=list)
    int8: QuantResult | None = None  # with int8=True: the int8 file beside the artefact and its scores

    @property
    def ok(self) -> bool:
        return all(p.max_abs_diff <= self.tolerance * max(1.0, p.logit_scale) and p.argmax_identical
                   for p in self.parity)

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), ok=self.ok, int8=self.int8.to_dict() if self.int8 else None)


def _metadata(name: str, cfg: dict[str, Any]) -> dict[str, str]:
    """The artefact's metadata from the model's ``pretrained_cfg`` (its weights' data config)."""
    return {
        "zoo.model": name,
        "zoo.weights": cfg["weights"] or "",
        "zoo.weights_sha256": cfg["sha256"] or "",
        "zoo.num_classes": str(cfg["num_classes"]),
        "zoo.classes": json.dumps(list(cfg["classes"])),
        "zoo.mean": json.dumps(list(cfg["mean"])),
        "zoo.std": json.dumps(list(cfg["std"])),
        "zoo.input_size": json.dumps(list(cfg["input_size"])),
        "zoo.version": __version__,
    }


def export_model(name: str, fmt: str, *, weights: str | None = None, out: str | os.PathLike[str] | None = None,
                 opset: int | None = None, batch: str | int = "dynamic", real_batch: torch.Tensor | None = None,
                 tolerance: float = ATOL, seed: int = 0, data_dir: str | os.PathLike[str] | None = None,
                 int8: bool = False, calibration: int = 300, threads: int | None = None) -> ExportResult:
    """Export model ``name`` and check its parity with the eager model on real images: ``zoo export``.

    Args:
        name: a registered architecture.
        fmt: ``onnx``, ``openvino``, ``pt2`` or ``torchscript``.
        weights: its checkpoint (default: its default checkpoint, if any; random weights otherwise).
        out: the file to write (default: ``<name>.<suffix>`` in the working directory); written atomically.
        opset: the ONNX opset (default: the exporter's).
        batch: ``"dynamic"`` or a fixed batch size.
        real_batch: normalised real images for the parity check (default: the first images of the test
            split of the model's dataset under ``data_dir``, else the embedded sample).
        tolerance: the largest logit difference allowed, relative to the logits' scale when above 1.
        seed: the seed of random weights, when there is no checkpoint.
        data_dir: the dataset root for ``real_batch`` and the int8 calibration images.
        int8: (ONNX and OpenVINO) also write ``<stem>.int8<suffix>`` beside it, quantised from the model with
            its BatchNorms folded (``zoo.runners.fold_batchnorm``), and score both files.
        calibration: how many training images the int8 file is calibrated on.
        threads: intra-op threads of the runtime that checks parity.

    Returns:
        An ``ExportResult``: the file's path, the exporter used, each parity check (the largest logit
        difference and whether every top-1 agrees) and, with ``int8``, both files' scores (``result.int8``).

    Raises:
        InvalidArgumentError: an unknown format or a bad option.
        ExportError: parity fails; the file at ``out`` is then left as it was.
    """
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if int8 and fmt not in ("onnx", "openvino"):
        raise InvalidArgumentError(f"int8 applies to the onnx and openvino formats, not {fmt}")
    if batch != "dynamic" and (not str(batch).isdigit() or int(batch) < 1):
        raise InvalidArgumentError(f"batch must be 'dynamic' or a positive integer, got {batch!r}")
    if opset is not None and fmt != "onnx":
        raise InvalidArgumentError(f"--opset {opset}: applies to --format onnx only")
    if opset is not None:
        import onnx

        newest = onnx.defs.onnx_opset_version()
        if not 7 <= opset <= newest:
            raise InvalidArgumentError(f"--opset {opset}: ONNX opsets run from 7 to {newest} with this onnx")
    entry = get_entry(name)
    spec = get_dataset_spec(entry.dataset)
    torch.manual_seed(seed)
    if weights is None and entry.weights:
        weights = "default"
    model = create(name, weights=weights).eval()
    loaded = get_weights(model.pretrained_cfg["weights"]) if model.pretrained_cfg["weights"] else None
    out_path = Path(out) if out else Path(f"{name}{FORMATS[fmt]}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    metadata = _metadata(name, model.pretrained_cfg)
    # The artefact is written beside --out and moved there only once its parity holds: a failed export
    # never leaves a file behind, and never replaces a good one.
    if real_batch is None:
        real_batch = _real_batch(entry.dataset, 7 if batch == "dynamic" else int(batch), metadata, data_dir)
    if fmt == "openvino":  # two files (.xml and .bin, found by the .xml's name): staged in a folder beside --out
        with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".zoo-export-") as scratch:
            staged = Path(scratch) / out_path.name
            result = _export_and_check(model, name, fmt, staged, spec, batch, opset, metadata, loaded, weights,
                                       real_batch, tolerance, seed)
            replace_into(staged.with_suffix(".bin"), out_path.with_suffix(".bin"))
            replace_into(staged, out_path)
    else:
        with atomic_path(out_path) as staged:  # moved to out_path only if _export_and_check returns
            result = _export_and_check(model, name, fmt, staged, spec, batch, opset, metadata, loaded, weights,
                                       real_batch, tolerance, seed)
    result.path = str(out_path)
    if int8:
        result.int8 = _quantize_folded(model, fmt, out_path, spec, batch, metadata, name=name,
                                       calibration=calibration, data_dir=data_dir, threads=threads)
    return result


def _quantize_folded(model: nn.Module, fmt: str, fp32_path: Path, spec: Any, batch: str | int,
                     metadata: dict[str, str], **kwargs: Any) -> QuantResult:
    """The int8 file of ``fp32_path``, quantised from ``model`` with every BatchNorm folded
    (``zoo.runners.int8_source`` says why)."""
    with tempfile.TemporaryDirectory(dir=fp32_path.parent, prefix=".zoo-int8-") as scratch:
        source, _ = write(fmt, int8_source(model)[0], Path(scratch) / fp32_path.name, input_size=spec.input_size,
                          batch=batch, metadata=metadata)
        return quantize(fp32_path, fp32_path.with_name(f"{fp32_path.stem}.int8{fp32_path.suffix}"),
                        source=source, **kwargs)


def _export_and_check(model: nn.Module, name: str, fmt: str, path: Path, spec: Any, batch: str | int,
                      opset: int | None, metadata: dict[str, str], loaded: Any, weights: str | None,
                      real_batch: torch.Tensor | None, tolerance: float, seed: int) -> ExportResult:
    try:
        path, exporter = write(fmt, model, path, input_size=spec.input_size, batch=batch, opset=opset,
                               metadata=metadata)
    except (ZooError, OSError):
        raise
    except Exception as e:
        raise ExportError(f"exporting {name} to {fmt} failed: {type(e).__name__}: "
                          f"{summarize(e)}") from e
    if fmt == "onnx" and opset is not None:
        import onnx

        got = next((o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")), None)
        if got != opset:
            raise ExportError(f"--opset {opset} was asked for but the exporter wrote opset {got}; "
                              f"leave --opset out, or choose {got}")
    runner = load(path, FORMAT_RUNTIMES[fmt], trust=True)  # the file zoo has just written
    result = ExportResult(name, fmt, str(path), exporter, loaded.name if loaded else weights, metadata,
                          tolerance=tolerance)
    if loaded is None:
        result.notes.append("random weights (no checkpoint given or released)")
    sizes = [2, 7] if batch == "dynamic" else [int(batch)] * 2
    gen = torch.Generator().manual_seed(seed)
    real = real_batch
    for n in sizes:
        result.parity.append(check_parity(model, runner, torch.randn(n, *spec.input_size, generator=gen), "random"))
        if real is not None:
            result.parity.append(check_parity(model, runner, real[:n], "real"))
    if not result.ok:
        worst = max(result.parity, key=lambda p: p.max_abs_diff)
        raise ExportError(f"{name} {fmt} export disagrees with eager: max abs diff {worst.max_abs_diff:.3g} "
                          f"(tolerance {tolerance:g}) on {worst.inputs} batch of {worst.batch_size}, "
                          f"argmax identical: {worst.argmax_identical}")
    return result


def _real_batch(dataset: str, n: int, metadata: dict[str, str], data_dir: str | os.PathLike[str] | None = None
                ) -> torch.Tensor | None:
    """The first ``n`` images of the test split (or the embedded sample), normalised as the model expects."""
    try:
        split = load_for_eval(dataset, "test", data_dir=data_dir)
    except DatasetMissingError:  # absent and no sample; a corrupt or unsafe file is an error, not a skip
        return None
    mean, std = tuple(json.loads(metadata["zoo.mean"])), tuple(json.loads(metadata["zoo.std"]))
    x, _ = next(batches(split, n, mean=mean, std=std))
    return x


@dataclass
class QuantResult:
    """int8 vs fp32 file on the same images: accuracy and throughput (onnxruntime or OpenVINO, CPU)."""

    fp32_path: str
    int8_path: str
    backend: str  # the int8 file's runtime: onnxruntime-int8 or openvino-int8
    method: str
    calibration_images: int
    eval_images: int
    is_sample: bool
    fp32_top1: float
    int8_top1: float
    disagreeing_images: int
    fp32_images_per_s: float
    int8_images_per_s: float
    fp32_bytes: int
    int8_bytes: int

    @property
    def speedup(self) -> float:
        return self.int8_images_per_s / self.fp32_images_per_s

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), speedup=self.speedup, top1_change=self.int8_top1 - self.fp32_top1)


def _file_metadata(path: Path) -> dict[str, str]:
    """The zoo.* metadata of an exported ONNX file or OpenVINO IR (empty when zoo did not export it)."""
    if path.suffix == ".xml":
        import openvino as ov

        model = ov.Core().read_model(str(path))
        if not model.has_rt_info(["zoo", "mean"]):
            return {}
        keys = ("model", "mean", "std", "num_classes", "input_size", "weights", "weights_sha256")
        return {f"zoo.{k}": model.get_rt_info(["zoo", k]).astype(str) for k in keys if model.has_rt_info(["zoo", k])}
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _file_bytes(path: Path) -> int:
    return path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)


def quantize(fp32_path: str | os.PathLike[str], int8_path: str | os.PathLike[str], *, name: str,
             calibration: int = 300, data_dir: str | os.PathLike[str] | None = None, batch_size: int = 256,
             eval_limit: int | None = None, threads: int | None = None,
             source: str | os.PathLike[str] | None = None) -> QuantResult:
    """Static int8 post-training quantisation of a file ``zoo export`` wrote, calibrated on ``calibration``
    training images; both files are then scored on the test split (or the embedded sample when the
    dataset is absent). An ``.onnx`` file is quantised by onnxruntime, an OpenVINO ``.xml`` by NNCF.
    ``source``: the file to quantise when not ``fp32_path`` itself (``export_model`` passes an export of
    the same model with its BatchNorms folded); ``fp32_path`` is still what int8 is scored against.
    """
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    runtime = backend_of(fp32_path)
    if runtime not in ("onnxruntime", "openvino"):
        raise InvalidArgumentError(f"int8 quantisation takes an ONNX file or an OpenVINO IR (.xml), got {fp32_path}")
    if backend_of(int8_path) != runtime:
        raise InvalidArgumentError(f"the int8 file must have the format of {fp32_path.name}, got {int8_path.name}")
    meta = _file_metadata(fp32_path)
    if "zoo.mean" not in meta:
        raise ExportError(f"{fp32_path} was not exported by zoo (no zoo.* metadata); export it with `zoo export`")
    mean, std = tuple(json.loads(meta["zoo.mean"])), tuple(json.loads(meta["zoo.std"]))
    dataset = get_entry(name).dataset
    try:  # training images only: calibrating on test images would score int8 on what it was fitted to
        x_calib, _ = calibration_images(dataset, calibration, mean=mean, std=std, data_dir=data_dir)
    except DatasetMissingError as exc:
        raise ExportError(str(exc)) from None
    _, method = write_int8(RUNTIME_FORMATS[runtime], Path(source) if source is not None else fp32_path, int8_path,
                           x_calib)
    test = load_for_eval(dataset, "test", data_dir=data_dir).head(eval_limit or None)
    fp32_runner, int8_runner = load(fp32_path, runtime, threads=threads), load(int8_path, runtime, threads=threads)
    int8, fp32, differ = agreement(fp32_runner, int8_runner, test, warm_up=True, batch_size=batch_size, mean=mean,
                                   std=std)
    return QuantResult(str(fp32_path), str(int8_path), f"{runtime}-int8", method, len(x_calib), len(test),
                       test.is_sample, fp32["top1"], int8["top1"], differ, fp32["images_per_s"], int8["images_per_s"],
                       _file_bytes(fp32_path), _file_bytes(int8_path))
