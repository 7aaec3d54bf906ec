"""Exported backends: a model written to a file (ONNX, pt2, TorchScript, OpenVINO IR, their int8 forms) and run
by its runtime; what int8 is made from and calibrated on.

A file zoo is given is an input it did not make: ``open_file`` measures a zip-based one before torch opens it,
and pt2 and TorchScript files (``CODE_FORMATS``: programs, whose loading can unpickle objects or run ops that
write files) are refused by ``zoo.runners.load`` unless the caller trusts them. One call of an ONNX or OpenVINO
graph is stopped after ``CALL_DEADLINE_S``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..data.datasets import DatasetMissingError, calibration_batch
from ..errors import InvalidArgumentError, ZooError, summarize
from ..specs import DatasetSpec
from ..utils.fileio import check_zip
from . import serialize
from .base import INT8, INT8_RUNTIME, RUNTIME_FORMATS, RunFn, Runner
from .modifiers import count_bn, fold_batchnorm
from .serialize import ExportError

__all__ = ["CODE_FORMATS", "CALL_DEADLINE_S", "UntrustedArtefactError", "exported", "int8_source",
           "calibration_images", "open_file"]

# Formats that are code by nature: a TorchScript file is a program (its graph can call any registered op, write
# files with torch.from_file(shared=True) or print), and torch.export.load unpickles sample inputs and constants.
# zoo runs such a file only when the caller says it trusts it (``trust=True``, ``--trust-artefact``).
CODE_FORMATS = ("pt2", "torchscript")


class UntrustedArtefactError(ZooError):
    """A pt2 or TorchScript file was given without ``trust=True``: loading it can run code."""



def int8_source(module: nn.Module) -> tuple[nn.Module, str | None]:
    """The module an int8 file is made from, and a note: ``module`` with every BatchNorm folded.

    Quantisers fold a conv + BatchNorm pair themselves, not a BatchNorm after a pool, whose per-tensor input
    range then spans channels whose scales differ by thousands (fastnet_mnist fell to chance so): int8 is
    always made from the folded model.
    """
    before = count_bn(module)
    if not before:
        return module, None
    folded = fold_batchnorm(module)
    return folded, f"folded {before - count_bn(folded)} of {before} BatchNorm layers before quantising"


def calibration_images(dataset: str | DatasetSpec | None, n: int = 300, *, mean: tuple[float, ...] | None = None,
                       std: tuple[float, ...] | None = None, data_dir: str | os.PathLike[str] | None = None,
                       random_shape: tuple[int, ...] | None = None) -> tuple[torch.Tensor, str]:
    """What int8 calibrates on, and a note saying so: ``n`` training images of ``dataset``, normalised.

    Training images only: calibrating on test images would fit int8 to the images it is scored on. When they
    are absent, ``DatasetMissingError``; or, given ``random_shape`` (C, H, W), ``n`` random inputs (enough to
    time the int8 kernels; the accuracy then means nothing).
    """
    if dataset is not None:
        try:
            return (calibration_batch(dataset, n, mean=mean, std=std, data_dir=data_dir),
                    f"calibrated on {n} training images")
        except DatasetMissingError:
            if random_shape is None:
                raise
    if random_shape is None:
        raise InvalidArgumentError("int8 calibration needs a dataset (or random_shape for random inputs)")
    return (torch.randn(n, *random_shape, generator=torch.Generator().manual_seed(0)),
            f"calibrated on {n} random inputs (training images absent): for speed only")


def exported(backend: str) -> Callable[[Runner], Runner]:
    """The builder of an exported backend: the runner's module written to a file, quantised for int8, loaded."""
    def build(p: Runner) -> Runner:
        if p.device.type != "cpu":
            raise InvalidArgumentError(f"{backend} runs on the CPU here; use device cpu")
        if backend in INT8 and p.calibration is None:
            raise InvalidArgumentError(f"{backend} needs calibration images: pass calibration= (training images "
                                       "of the model's dataset, zoo.runners.calibration_images)")
        fmt = RUNTIME_FORMATS[backend]
        stem = p.name.replace("/", "_")
        fp32_spec = "+".join(INT8_RUNTIME.get(m, m) for m in p.mods)
        with contextlib.ExitStack() as stack:
            workdir = p.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zoo-backend-")))
            module = p.module.eval()
            if backend in INT8 and "fold-bn" not in p.mods:
                module, note = int8_source(module)
                if note:
                    p.notes.append(note)
                    fp32_spec = f"fold-bn+{fp32_spec}"
            path = workdir / f"{stem}-{fp32_spec}{serialize.FORMATS[fmt]}"
            if not path.exists():  # with a shared workdir, one export serves every thread count
                _, how = serialize.write(fmt, module, path, input_size=p.input_size)
                p.notes.append(f"{fmt} exported by {how}")
            if backend in INT8:
                src, path = path, workdir / f"{stem}-{p.spec}{serialize.FORMATS[fmt]}"
                if not path.exists():
                    p.notes.append(serialize.write_int8(fmt, src, path, p.calibration)[1])
            p.fn = open_file(path, backend, p.threads)  # loaded into memory: the temp dir may go
            p.path = path if p.workdir else None
        return p

    return build


def open_file(path: Path, backend: str, threads: int | None) -> RunFn:
    try:
        return _open_runtime(str(path), backend, threads)
    except ZooError:
        raise
    except Exception as e:  # a boundary: each runtime raises its own exception types for a bad file
        if isinstance(e, OSError) and not path.is_file():
            raise
        raise ExportError(f"{path} is not a readable {RUNTIME_FORMATS[backend]} artefact for --backend {backend} "
                          f"({type(e).__name__}: {summarize(e)}); export it again with `zoo export`") from None


CALL_DEADLINE_S = 600.0  # one call of an ONNX or OpenVINO graph: a graph that loops without end is stopped here


def _past_deadline(path: str) -> ZooError:
    return ExportError(f"{path}: one call of the graph ran past {CALL_DEADLINE_S:g} s and was stopped (a loop that "
                       "does not end?); zoo runs a file's graph for at most that long per batch")


class _Watchdog:
    """One daemon thread for every onnxruntime call in flight, polling once a second: a call past
    ``CALL_DEADLINE_S`` gets its ``RunOptions.terminate`` set (a timer thread per call cost about 0.5 ms)."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[Any, float]] = {}
        self._thread: Any = None

    def _watch(self) -> None:
        import time

        while True:
            time.sleep(1.0)
            now = time.monotonic()
            for options, deadline in list(self._calls.values()):
                if now > deadline:
                    options.terminate = True

    def start(self, options: Any) -> None:
        import threading
        import time

        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, daemon=True, name="zoo-ort-watchdog")
            self._thread.start()
        self._calls[id(options)] = (options, time.monotonic() + CALL_DEADLINE_S)

    def stop(self, options: Any) -> None:
        self._calls.pop(id(options), None)


_WATCHDOG = _Watchdog()


def _ort_runner(session: Any, name: str, path: str) -> RunFn:
    """``session.run`` under ``CALL_DEADLINE_S``."""
    import onnxruntime as ort

    def run(x: torch.Tensor) -> torch.Tensor:
        options = ort.RunOptions()
        _WATCHDOG.start(options)
        try:
            out = session.run(None, {name: x.detach().cpu().float().contiguous().numpy()}, options)
        except Exception:
            if options.terminate:
                raise _past_deadline(path) from None
            raise
        finally:
            _WATCHDOG.stop(options)
        return torch.from_numpy(out[0])

    return run


def _ov_runner(compiled: Any, path: str) -> RunFn:
    """One OpenVINO inference under ``CALL_DEADLINE_S``: an asynchronous request, cancelled past it."""
    request = compiled.create_infer_request()

    def run_ov(x: torch.Tensor) -> torch.Tensor:
        request.start_async(x.detach().cpu().float().contiguous().numpy())
        if not request.wait_for(int(CALL_DEADLINE_S * 1000)):
            request.cancel()
            raise _past_deadline(path)
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    return run_ov


def _in_chunks(run: RunFn, batch: int) -> RunFn:
    """``run``, for a file exported with a fixed batch size: any batch goes through in chunks of ``batch``
    images, the last one padded with zeros (whose outputs are dropped)."""
    def chunked(x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == batch:
            return run(x)
        outs = []
        for start in range(0, x.shape[0], batch):
            part = x[start:start + batch]
            n = part.shape[0]
            if n < batch:
                part = torch.cat([part, part.new_zeros((batch - n, *part.shape[1:]))])
            outs.append(run(part)[:n])
        return torch.cat(outs)

    return chunked


def _open_runtime(path: str, backend: str, threads: int | None) -> RunFn:
    runtime = INT8_RUNTIME.get(backend, backend)  # an int8 file runs on its format's runtime
    if runtime in ("pt2", "torchscript"):
        import zipfile

        if not zipfile.is_zipfile(path):  # checked first: torch logs a whole traceback for a non-zip file
            raise ExportError(f"{path} is not a readable {RUNTIME_FORMATS[backend]} artefact for --backend {backend} "
                              f"(not a zip archive, as every {RUNTIME_FORMATS[backend]} file is); export it again "
                              f"with `zoo export`")
        check_zip(path, f"{RUNTIME_FORMATS[backend]} artefact")
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        first = session.get_inputs()[0]
        run = _ort_runner(session, first.name, path)
        fixed = first.shape[0] if first.shape and isinstance(first.shape[0], int) and first.shape[0] > 0 else None
        return _in_chunks(run, fixed) if fixed else run
    if runtime == "pt2":
        module = torch.export.load(path).module()
        return lambda x: module(x)
    if runtime in ("openvino", "openvino-bf16"):
        import openvino as ov

        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "bf16" if runtime == "openvino-bf16" else "f32",
                                  "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = ov.Core().compile_model(path, "CPU", config)
        run_ov = _ov_runner(compiled, path)
        shape = compiled.inputs[0].get_partial_shape()
        fixed = shape[0].get_length() if shape.rank.is_static and len(shape) and shape[0].is_static else None
        return _in_chunks(run_ov, fixed) if fixed else run_ov
    if runtime == "torchscript":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(path, map_location="cpu").eval()
        return lambda x: module(x)
    raise AssertionError(backend)  # load checked the name
