"""Serializers and runners: ONNX, torch.export (``.pt2``) and TorchScript files, and loading them back.

``zoo.deploy`` is the job above: export a registered model with its weights, check parity, quantise.

- ONNX goes through ``torch.onnx.export`` with the current (dynamo) exporter and a dynamic batch
  axis (exported with a batch of 2); only if that fails is the legacy TorchScript-based exporter used,
  and the reason is logged and recorded. The model is checked with ``onnx.checker`` (full check)
  and carries metadata_props: model name, weight name and sha256, num_classes, class names, mean/std,
  input size, zoo version, so a deployment needs nothing else (see ``examples/classify_onnx.py``).
- ``.pt2`` is ``torch.export.save`` of an ``ExportedProgram`` with the same dynamic batch.
- TorchScript is ``torch.jit.script``, else ``torch.jit.trace`` (the reason is logged).
- OpenVINO IR (``.xml`` + ``.bin``) is ``openvino.convert_model`` of the module, fp32 weights, the same
  metadata in its rt_info under ``zoo``; ``openvino`` runs it in fp32, ``openvino-bf16`` with OpenVINO's
  bf16 precision hint.

``load_runner`` turns an artefact into a callable (float32 NCHW -> logits) for a runtime
(``RUNTIME_FORMATS``: onnxruntime, pt2, torchscript); ``check_parity`` compares one with eager.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from .errors import InvalidArgumentError, ZooError, summarize
from .fileio import atomic_path, replace_into

__all__ = ["ExportError", "Parity", "FORMATS", "RUNTIME_FORMATS", "FORMAT_RUNTIMES", "to_openvino", "to_onnx", "to_pt2", "to_torchscript", "load_runner",
           "check_parity", "ATOL"]

_logger = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".ts.pt", "openvino": ".xml"}
# runtime -> the format it runs; openvino-bf16 is OpenVINO's CPU plugin with INFERENCE_PRECISION_HINT=bf16
RUNTIME_FORMATS = {"onnxruntime": "onnx", "pt2": "pt2", "torchscript": "torchscript", "openvino": "openvino",
                   "openvino-bf16": "openvino"}
FORMAT_RUNTIMES = {"onnx": "onnxruntime", "pt2": "pt2", "torchscript": "torchscript", "openvino": "openvino"}
ATOL = 1e-4  # max logit difference allowed between an artefact and eager (fp32), times max(1, max |logit|)


class ExportError(ZooError):
    """An export failed or its artefact disagrees with eager beyond the tolerance."""


@dataclass
class Parity:
    """Artefact vs eager on one input batch."""

    inputs: str  # "random" or "real"
    batch_size: int
    max_abs_diff: float
    argmax_identical: bool
    logit_scale: float = 1.0  # max |eager logit|: the tolerance is relative to it when it exceeds 1


def to_onnx(model: nn.Module, path: str | os.PathLike[str], *, input_size: tuple[int, ...],
            batch: str | int = "dynamic", opset: int | None = None, metadata: dict[str, str] | None = None
            ) -> tuple[Path, str]:
    """Export ``model`` (eval mode) to ONNX at ``path``; returns the path and the exporter used."""
    import onnx

    path = Path(path)
    model = model.eval()
    n = 2 if batch == "dynamic" else int(batch)
    x = torch.randn(n, *input_size)
    with atomic_path(path) as tmp:  # the file appears whole, or not at all
        kwargs: dict[str, Any] = {"dynamo": True, "verbose": False}
        if batch == "dynamic":
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=65536)},)
        if opset is not None:
            kwargs["opset_version"] = opset
        try:  # only the exporter itself: a failure to write the file is not a reason to switch exporters
            program = torch.onnx.export(model, (x,), input_names=["input"], output_names=["logits"], **kwargs)
        except Exception as e:  # the dynamo exporter failed: fall back, and say why
            program = None
            reason = f"{type(e).__name__}: {summarize(e)}"
            _logger.warning("dynamo ONNX export failed (%s); using the legacy exporter", reason)
            torch.onnx.export(model, (x,), str(tmp), dynamo=False, input_names=["input"], output_names=["logits"],
                              opset_version=opset or 17,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}} if batch == "dynamic"
                              else None)
            exporter = f"legacy ({reason})"
        if program is not None:
            program.save(str(tmp))
            exporter = "dynamo"
        proto = onnx.load(str(tmp))
        for key, value in (metadata or {}).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
    return path, exporter


def to_pt2(model: nn.Module, path: str | os.PathLike[str], *, input_size: tuple[int, ...],
           batch: str | int = "dynamic") -> tuple[Path, str]:
    path = Path(path)
    n = 2 if batch == "dynamic" else int(batch)
    dyn = ({0: torch.export.Dim("batch", min=1, max=65536)},) if batch == "dynamic" else None
    program = torch.export.export(model.eval(), (torch.randn(n, *input_size),), dynamic_shapes=dyn)
    with atomic_path(path) as tmp:
        torch.export.save(program, str(tmp))
    return path, "torch.export"


def to_torchscript(model: nn.Module, path: str | os.PathLike[str], *, input_size: tuple[int, ...]) -> tuple[Path, str]:
    import warnings

    path = Path(path)
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still what many deploy
        try:
            scripted = torch.jit.script(model)
            how = "script"
        except Exception as e:
            reason = summarize(e)
            _logger.warning("torch.jit.script failed (%s); tracing instead", reason)
            scripted = torch.jit.trace(model, torch.randn(2, *input_size))
            how = f"trace ({reason})"
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(scripted, str(tmp))
    return path, how


def to_openvino(model: nn.Module, path: str | os.PathLike[str], *, input_size: tuple[int, ...],
                batch: str | int = "dynamic", metadata: dict[str, str] | None = None) -> tuple[Path, str]:
    """OpenVINO IR (``path`` .xml and its .bin) through ``openvino.convert_model``, fp32 weights.

    ``metadata`` goes into the model's rt_info under ``zoo`` (``model.get_rt_info(["zoo", key])``). The
    .bin is moved into place before the .xml, so an .xml never appears without its weights.
    """
    import warnings

    try:
        import openvino as ov
    except ImportError:
        raise ZooError("OpenVINO export needs openvino: pip install 'zoo[openvino]'") from None
    path = Path(path)
    if path.suffix != ".xml":
        raise InvalidArgumentError(f"an OpenVINO IR is an .xml file (with a .bin beside it), got {path}")
    n = 2 if batch == "dynamic" else int(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # convert_model traces with torch.jit
        ov_model = ov.convert_model(model.eval(), example_input=torch.randn(n, *input_size),
                                    input=[ov.PartialShape([-1 if batch == "dynamic" else n, *input_size])])
    for key, value in (metadata or {}).items():
        ov_model.set_rt_info(value, ["zoo", key.removeprefix("zoo.")])
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}-") as scratch:
        ov.save_model(ov_model, str(Path(scratch) / path.name), compress_to_fp16=False)
        replace_into(Path(scratch) / path.with_suffix(".bin").name, path.with_suffix(".bin"))
        replace_into(Path(scratch) / path.name, path)
    return path, f"openvino.convert_model (OpenVINO {ov.__version__.split('-')[0]})"


def load_runner(path: str | os.PathLike[str], backend: str, *, threads: int | None = None
                ) -> Callable[[torch.Tensor], torch.Tensor]:
    """A callable float32 NCHW tensor -> logits tensor for an exported artefact.

    A file the backend cannot read (corrupt, truncated, or another format) raises ``ExportError``.
    """
    if backend not in RUNTIME_FORMATS:
        raise InvalidArgumentError(f"unknown backend {backend!r}; use one of eager, {', '.join(RUNTIME_FORMATS)}")
    try:
        return _load_runner(str(path), backend, threads)
    except ZooError:
        raise
    except Exception as e:  # a boundary: each runtime raises its own exception types for a bad file
        if isinstance(e, OSError) and not os.path.isfile(path):
            raise
        raise ExportError(f"{path} is not a readable {RUNTIME_FORMATS[backend]} artefact for --backend {backend} "
                          f"({type(e).__name__}: {summarize(e)}); export it again with `zoo export`") from None


def _load_runner(path: str, backend: str, threads: int | None) -> Callable[[torch.Tensor], torch.Tensor]:
    if backend in ("pt2", "torchscript"):
        import zipfile

        if not zipfile.is_zipfile(path):  # checked first: torch logs a whole traceback for a non-zip file
            raise ExportError(f"{path} is not a readable {RUNTIME_FORMATS[backend]} artefact for --backend {backend} "
                              f"(not a zip archive, as every {RUNTIME_FORMATS[backend]} file is); export it again with "
                              f"`zoo export`")
    if backend == "onnxruntime":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ZooError("the onnxruntime backend needs onnxruntime: pip install 'zoo[onnx]'") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {name: x.detach().cpu().float().contiguous().numpy()})[0])

        return run
    if backend == "pt2":
        module = torch.export.load(path).module()
        return lambda x: module(x)
    if backend in ("openvino", "openvino-bf16"):
        try:
            import openvino as ov
        except ImportError:
            raise ZooError("the openvino backend needs openvino: pip install 'zoo[openvino]'") from None
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "bf16" if backend == "openvino-bf16" else "f32",
                                  "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = ov.Core().compile_model(path, "CPU", config)

        def run_ov(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(compiled(x.detach().cpu().float().contiguous().numpy())[0].copy())

        return run_ov
    if backend == "torchscript":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(path, map_location="cpu").eval()
        return lambda x: module(x)
    raise AssertionError(backend)  # load_runner checked the name


@torch.no_grad()
def check_parity(model: nn.Module, runner: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                 kind: str) -> Parity:
    expected = model.eval()(inputs)
    got = runner(inputs)
    return Parity(kind, int(inputs.shape[0]), float((expected - got).abs().max()),
                  bool(torch.equal(expected.argmax(1), got.argmax(1))), float(expected.abs().max()))
