"""What a user who never heard of zoo would run instead: zoo's ONNX file (``zoo export --format onnx``: dynamic
batch, fp32) opened by onnxruntime or OpenVINO with that runtime's own defaults, only the thread count set to the
run's (``zoo bench --peers``). They are the rows ``auto`` is measured against; zoo's own backends configure the
same runtimes their own way (``zoo.runners.exported``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import InvalidArgumentError
from . import serialize
from .base import Runner

__all__ = ["PEERS", "is_peer", "peer_runner"]

PEERS = {"onnxruntime-defaults": "onnxruntime", "openvino-defaults": "openvino"}  # name -> the package it needs


def is_peer(spec: str | tuple[str, ...]) -> bool:
    name = spec[0] if isinstance(spec, tuple) and len(spec) == 1 else spec
    return isinstance(name, str) and name in PEERS


def _ort(path: Path, threads: int | None) -> tuple[Any, str, list[str]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.detach().cpu().float().contiguous().numpy()})[0])

    return run, "fp32", [f"onnxruntime {ort.__version__} with its defaults (all graph optimisations, memory arena)"]


def _openvino(path: Path, threads: int | None) -> tuple[Any, str, list[str]]:
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads} if threads else {})
    hint = compiled.get_property("PERFORMANCE_HINT")
    precision = compiled.get_property("INFERENCE_PRECISION_HINT")

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(compiled(x.detach().cpu().float().contiguous().numpy())[0].copy())

    precision = precision.to_string() if hasattr(precision, "to_string") else str(precision)  # an ov.Type: "bf16"
    runs_in = "bf16" if "bf16" in precision.lower() else "fp32"
    return run, runs_in, [f"OpenVINO {ov.__version__.split('-')[0]} with its defaults: performance hint {hint}, "
                          f"inference precision {precision} (its own choice on this CPU)"]


def peer_runner(kind: str, model: nn.Module, *, input_size: tuple[int, ...], threads: int | None, workdir: Path,
                name: str = "model") -> Runner:
    """A ``Runner`` of ``model``'s ONNX file run by the ``kind`` runtime (``PEERS``) with that runtime's defaults.

    Raises:
        InvalidArgumentError: ``kind`` is not one of ``PEERS``.
    """
    if kind not in PEERS:
        raise InvalidArgumentError(f"unknown peer {kind!r}; use one of {', '.join(PEERS)}")
    path = Path(workdir) / f"{name.replace('/', '_')}-peer.onnx"
    if not path.exists():  # with a shared workdir, one file serves every thread count and both runtimes
        serialize.write("onnx", model, path, input_size=input_size)
    run, runs_in, notes = (_ort if kind == "onnxruntime-defaults" else _openvino)(path, threads)
    return Runner(None, torch.device("cpu"), tuple(input_size), (kind,), threads, Path(workdir), name, fn=run,
                  path=path, notes=notes, runs_in=runs_in)
