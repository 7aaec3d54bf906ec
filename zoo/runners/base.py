"""Backend specs and the ``Runner`` they make: names, what each needs, and how a spec is parsed.

A backend spec is one name of ``BACKENDS`` or several joined by ``+`` (``fold-bn+channels-last+bf16-cast``);
the modifiers apply in the order of ``BACKENDS`` whatever order they are written in. ``auto`` stands for
the setting measured fastest (``zoo.runners.auto``). Exported backends (``EXPORTED``) combine only with
``fold-bn``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import InvalidArgumentError, ZooError

__all__ = ["BACKENDS", "EXPORTED", "INT8", "RUNTIME_FORMATS", "FORMAT_RUNTIMES", "Runner", "RunFn", "precision_of",
           "parse_backend", "missing_dependency"]

RunFn = Callable[[torch.Tensor], torch.Tensor]

# exported backend -> the file format it runs (zoo.runners.serialize.FORMATS). The int8 backends run a quantised
# file of the same format; loading one back needs no calibration, so ``load`` treats them as their runtime.
RUNTIME_FORMATS = {"onnxruntime": "onnx", "onnxruntime-int8": "onnx", "pt2": "pt2", "torchscript": "torchscript",
                   "openvino": "openvino", "openvino-bf16": "openvino", "openvino-int8": "openvino"}
FORMAT_RUNTIMES = {"onnx": "onnxruntime", "pt2": "pt2", "torchscript": "torchscript", "openvino": "openvino"}
INT8 = ("onnxruntime-int8", "openvino-int8")
INT8_RUNTIME = {"onnxruntime-int8": "onnxruntime", "openvino-int8": "openvino"}  # the runtime an int8 file runs on
EXPORTED = tuple(RUNTIME_FORMATS)

_ONNX = ("onnx", "onnxscript", "onnxruntime")
# name -> (modules it needs, what it does). Modifiers apply in this order.
BACKENDS: dict[str, tuple[tuple[str, ...], str]] = {
    "eager": ((), "the model as built, fp32, NCHW"),
    "fold-bn": ((), "BatchNorm folded into the preceding conv/linear (torch.fx fuse)"),
    "channels-last": ((), "weights and input in channels_last (NHWC) memory format"),
    "bf16-cast": ((), "weights and activations cast to bfloat16 (pure bf16)"),
    "bf16": ((), "torch.autocast bfloat16 (AMP): fp32 weights, convs and matmuls in bf16"),
    "compile": ((), "torch.compile (inductor, freezing, static shapes)"),
    "cuda-graph": ((), "CUDA only: each batch shape captured once as a CUDA graph and replayed"),
    "onnxruntime": (_ONNX, "ONNX (zoo.runners.serialize.to_onnx) run by onnxruntime, CPU provider, all graph "
                           "optimisations"),
    "onnxruntime-int8": (_ONNX, "the ONNX file quantised to int8 by onnxruntime (static, QDQ, per channel, 7-bit "
                                "weights), calibrated on the calibration images"),
    "pt2": ((), "torch.export program (zoo.runners.serialize.to_pt2)"),
    "torchscript": ((), "TorchScript (zoo.runners.serialize.to_torchscript)"),
    "openvino": (("openvino",), "OpenVINO IR (zoo.runners.serialize.to_openvino) on OpenVINO's CPU plugin, fp32, "
                                "latency hint"),
    "openvino-bf16": (("openvino",), "the same IR with INFERENCE_PRECISION_HINT=bf16 (AMX or AVX512-BF16 kernels)"),
    "openvino-int8": (("openvino", "nncf"), "the IR quantised to int8 by NNCF (static, performance preset, min-max "
                                            "ranges, bias correction, 7-bit weights), calibrated on the calibration "
                                            "images; other operations in fp32"),
}


def precision_of(mods: Sequence[str]) -> str:
    """The arithmetic a backend's modifiers run in: ``int8``, ``bf16`` or ``fp32``."""
    if set(mods) & set(INT8):
        return "int8"
    return "bf16" if set(mods) & {"bf16", "bf16-cast", "openvino-bf16"} else "fp32"


def missing_error(what: str, missing: str) -> ZooError:
    extra = "openvino" if missing in ("openvino", "nncf") else "onnx"
    return ZooError(f"{what} needs {missing}: pip install 'zoo[{extra}]'")


@dataclass
class Runner:
    """One way to run a model: call it with an fp32 NCHW batch, get fp32 logits (``zoo.runners.prepare``,
    ``zoo.runners.load``).

    Attributes:
        module: the prepared module (None for a runner loaded from a file).
        mods: the modifiers it applies, in order; ``spec`` joins them (``"fold-bn+channels-last"``) and
            ``precision`` says fp32, bf16 or int8.
        fn: what runs instead of ``module`` when the model was exported or compiled.
        path: the file it runs (exported backends).
        notes: what preparing it decided, for the logs and ``--json`` (a fallback, a chunked batch).
    """

    module: nn.Module | None
    device: torch.device
    input_size: tuple[int, ...]
    mods: tuple[str, ...] = ()
    threads: int | None = None
    workdir: Path | None = None
    name: str = "model"
    memory_format: torch.memory_format = torch.contiguous_format
    dtype: torch.dtype = torch.float32
    autocast: torch.dtype | None = None
    fn: RunFn | None = None
    calibration: torch.Tensor | None = None
    path: Path | None = None
    notes: list[str] = field(default_factory=list)
    runs_in: str | None = None  # the arithmetic, where the runtime chooses it (a peer's defaults), not the mods

    @property
    def precision(self) -> str:
        return self.runs_in or precision_of(self.mods)

    @property
    def spec(self) -> str:
        return "+".join(self.mods)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        fn: Any = self.fn if self.fn is not None else self.module  # (a compiled module has no bool)
        x = x.to(self.device, dtype=self.dtype, memory_format=self.memory_format)
        if self.autocast is None:
            return fn(x).float()
        with torch.autocast(self.device.type, dtype=self.autocast):
            return fn(x).float()


def parse_backend(spec: str) -> tuple[str, ...]:
    """``"compile+bf16"`` -> the modifiers in application order (``auto``: see ``resolve_auto``)."""
    parts = [s.strip() for s in spec.split("+") if s.strip()]
    unknown = [s for s in parts if s not in BACKENDS]
    if not parts or unknown:
        raise InvalidArgumentError(f"unknown backend {spec!r}; use auto, or one or more of "
                                   f"{', '.join(BACKENDS)} joined by '+'")
    order = list(BACKENDS)
    mods = tuple(sorted(set(parts) - ({"eager"} if len(set(parts)) > 1 else set()), key=order.index))
    exported = [m for m in mods if m in EXPORTED]
    if exported and (len(exported) > 1 or set(mods) - {exported[0], "fold-bn"}):
        raise InvalidArgumentError(f"backend {spec!r}: {exported[0]} combines only with fold-bn")
    if "bf16" in mods and "bf16-cast" in mods:
        raise InvalidArgumentError(f"backend {spec!r}: use bf16 (autocast) or bf16-cast, not both")
    return mods


def missing_dependency(mods: Sequence[str]) -> str | None:
    """The first module that the backend modifiers ``mods`` need and that cannot be imported, else None."""
    for mod in mods:
        for module in BACKENDS[mod][0]:
            try:
                importlib.import_module(module)
            except ImportError:
                return module
    return None
