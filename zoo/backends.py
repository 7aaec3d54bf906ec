"""Inference backends: one model, several ways to run it, each a callable fp32 NCHW batch -> fp32 logits.

A backend spec is one name of ``BACKENDS`` or several joined by ``+`` (``fold-bn+channels-last+bf16-cast``);
the modifiers apply in the order of ``BACKENDS`` whatever order they are written in. ``auto`` stands
for the setting measured fastest on the device for the work of one call (``resolve_auto``). Exported
backends (``onnxruntime``, ``pt2``, ``torchscript``) go through ``zoo.export`` and combine only with
``fold-bn``.

    runner = zoo.backends.prepare(zoo.create("resnet18"), "auto", input_size=(3, 32, 32)).run
    logits = runner(images)          # fp32 NCHW in, fp32 logits out; casts and layout inside

``zoo.benchmark`` measures them; ``benchmarks/results/throughput.md`` holds the measurements that
chose ``auto``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn

from .errors import InvalidArgumentError, ZooError, summarize

__all__ = ["BACKENDS", "EXPORTED", "Prepared", "Runner", "prepare", "parse_backend", "resolve_auto",
           "fold_batchnorm", "cpu_has_bf16", "missing_dependency", "auto_rule", "AUTO_ORT_MAX_GFLOP"]

_logger = logging.getLogger(__name__)

Runner = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Prepared:
    """A model prepared for inference: the module, how its input is laid out, and (if exported or compiled)
    the callable that runs it. ``run`` is what to call."""

    module: nn.Module
    device: torch.device
    input_size: tuple[int, ...]
    mods: tuple[str, ...] = ()
    threads: int | None = None
    workdir: Path | None = None
    name: str = "model"
    memory_format: torch.memory_format = torch.contiguous_format
    dtype: torch.dtype = torch.float32
    autocast: torch.dtype | None = None
    runner: Runner | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def precision(self) -> str:
        return "bf16" if torch.bfloat16 in (self.dtype, self.autocast) else "fp32"

    @property
    def spec(self) -> str:
        return "+".join(self.mods)

    @property
    def run(self) -> Runner:
        fn: Runner = self.runner if self.runner is not None else self.module  # (a compiled module has no bool)
        autocast, device_type = self.autocast, self.device.type
        dtype, fmt = self.dtype, self.memory_format

        def run(x: torch.Tensor) -> torch.Tensor:
            x = x.to(self.device, dtype=dtype, memory_format=fmt)
            with torch.autocast(device_type, dtype=autocast) if autocast else contextlib.nullcontext():
                return fn(x).float()

        return run


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference with every BatchNorm that follows a conv or linear layer folded into it.

    The model is traced by torch.fx in eval mode; dropout layers (the identity in eval mode) are dropped
    so that a conv -> dropout -> BatchNorm chain folds too; then ``torch.fx.experimental.optimization.fuse``
    folds each conv/linear + BatchNorm pair (``fuse_conv_bn_eval``). A BatchNorm after an activation
    cannot be folded and stays. Raises ``ZooError`` when the model cannot be traced by torch.fx.
    """
    from torch import fx
    from torch.fx.experimental.optimization import fuse

    try:
        traced = fx.symbolic_trace(copy.deepcopy(model).eval())
    except Exception as e:
        raise ZooError(f"cannot fold BatchNorm: the model is not traceable by torch.fx "
                       f"({type(e).__name__}: {summarize(e)})") from e
    for node in list(traced.graph.nodes):
        if node.op == "call_module" and isinstance(traced.get_submodule(node.target), nn.modules.dropout._DropoutNd):
            node.replace_all_uses_with(node.args[0])
            traced.graph.erase_node(node)
    traced.recompile()
    folded = fuse(traced, inplace=True, no_trace=True)
    folded.delete_all_unused_submodules()  # the folded BatchNorms (and dropouts) are no longer called
    return folded.eval()


def _count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


# Builders: each takes the setting prepared so far and returns it changed.


def _eager(p: Prepared) -> Prepared:
    return p


def _fold_bn(p: Prepared) -> Prepared:
    before = _count_bn(p.module)
    p.module = fold_batchnorm(p.module)
    p.notes.append(f"folded {before - _count_bn(p.module)} of {before} BatchNorm layers")
    return p


def _channels_last(p: Prepared) -> Prepared:
    if len(p.input_size) != 3:  # channels_last is a layout of 4-d (N, C, H, W) tensors
        p.notes.append(f"channels_last skipped: input of shape {p.input_size} is not an image")
        return p
    p.module = p.module.to(memory_format=torch.channels_last)
    p.memory_format = torch.channels_last
    return p


def _bf16_cast(p: Prepared) -> Prepared:
    p.module = p.module.to(torch.bfloat16)  # weights and activations in bf16, logits cast back to fp32
    p.dtype = torch.bfloat16
    return p


def _bf16(p: Prepared) -> Prepared:
    p.autocast = torch.bfloat16  # AMP: fp32 weights, convs and matmuls in bf16
    return p


def _compile(p: Prepared) -> Prepared:
    # freezing: weights become constants, so inductor can pre-pack them for oneDNN (CPU) and fold ops.
    # dynamic=False: one graph per batch size, specialised (the first call at each size compiles).
    p.runner = torch.compile(p.module, dynamic=False, options={"freezing": True})
    return p


def _exported(backend: str) -> Callable[[Prepared], Prepared]:
    def build(p: Prepared) -> Prepared:
        from . import export

        if p.device.type != "cpu":
            raise InvalidArgumentError(f"{backend} runs on the CPU here (zoo.export.load_runner); use device cpu")
        fmt = export.RUNTIME_FORMATS[backend]
        with contextlib.ExitStack() as stack:
            workdir = p.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zoo-backend-")))
            path = workdir / f"{p.name.replace('/', '_')}-{p.spec}{export.FORMATS[fmt]}"
            if not path.exists():  # with a shared workdir, one export serves every thread count
                save = {"onnx": export.to_onnx, "pt2": export.to_pt2, "torchscript": export.to_torchscript,
                        "openvino": export.to_openvino}[fmt]
                _, how = save(p.module.eval(), path, input_size=p.input_size)
                p.notes.append(f"{fmt} exported by {how}")
            p.runner = export.load_runner(path, backend, threads=p.threads)  # loaded into memory
        return p

    return build


# name -> (builder, modules it needs, what it does). Modifiers apply in this order.
BACKENDS: dict[str, tuple[Callable[[Prepared], Prepared], tuple[str, ...], str]] = {
    "eager": (_eager, (), "the model as built, fp32, NCHW"),
    "fold-bn": (_fold_bn, (), "BatchNorm folded into the preceding conv/linear (torch.fx fuse)"),
    "channels-last": (_channels_last, (), "weights and input in channels_last (NHWC) memory format"),
    "bf16-cast": (_bf16_cast, (), "weights and activations cast to bfloat16 (pure bf16)"),
    "bf16": (_bf16, (), "torch.autocast bfloat16 (AMP): fp32 weights, convs and matmuls in bf16"),
    "compile": (_compile, (), "torch.compile (inductor, freezing, static shapes)"),
    "onnxruntime": (_exported("onnxruntime"), ("onnx", "onnxscript", "onnxruntime"),
                    "ONNX (zoo.export.to_onnx) run by onnxruntime, CPU provider, all graph optimisations"),
    "pt2": (_exported("pt2"), (), "torch.export program (zoo.export.to_pt2)"),
    "torchscript": (_exported("torchscript"), (), "TorchScript (zoo.export.to_torchscript)"),
    "openvino": (_exported("openvino"), ("openvino",),
                 "OpenVINO IR (zoo.export.to_openvino) on OpenVINO's CPU plugin, fp32, latency hint"),
    "openvino-bf16": (_exported("openvino-bf16"), ("openvino",),
                      "the same IR with INFERENCE_PRECISION_HINT=bf16 (AMX or AVX512-BF16 kernels)"),
}
EXPORTED = ("onnxruntime", "pt2", "torchscript", "openvino", "openvino-bf16")


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
        for module in BACKENDS[mod][1]:
            try:
                importlib.import_module(module)
            except ImportError:
                return module
    return None


# What ``auto`` stands for, chosen from benchmarks/results/throughput.md (AMD EPYC Zen 4 with avx512_bf16,
# torch 2.14.1, one thread), where the numbers and the reasons are. onnxruntime's per-operator overhead is
# far below eager PyTorch's, which decides calls with little arithmetic in them (resnet20 at batch 1 and 4,
# 0.08 and 0.32 GFLOP: about 2.8x and 2.0x eager, vs 1.4x and 1.8x for bf16); from about 1 GFLOP per call
# on, halving the arithmetic's cost with bf16 wins (resnet18 at batch 1, 1.1 GFLOP: 1.75x vs 1.5x). Between
# the two (vgg19_bn at batch 1, 0.8 GFLOP) they tie within the noise, and the tie goes to onnxruntime, whose
# results are fp32.
AUTO_ORT_MAX_GFLOP = 1.0  # per call (batch size x GFLOPs per image): onnxruntime (fp32) up to this, if installed
AUTO_CPU_SMALL = "onnxruntime"
AUTO_CPU_BF16 = "fold-bn+channels-last+bf16-cast"
AUTO_CPU_FP32 = "fold-bn+channels-last"  # CPUs without native bf16, where bf16 is emulated and slower
AUTO_CUDA = "channels-last+bf16"  # AMP; not measured (no GPU on the machine of the recorded results)


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_auto(device: str | torch.device = "cpu", batch_size: int = 256, gflops: float | None = None) -> str:
    """The backend spec ``auto`` stands for on ``device`` for ``batch_size`` images of ``gflops`` GFLOPs each.

    CPU: onnxruntime when a call does at most ``AUTO_ORT_MAX_GFLOP`` (and onnxruntime is installed),
    else BatchNorm folded, channels_last and bf16 (fp32 on a CPU without native bf16). Unknown
    ``gflops`` counts as a large call. CUDA: channels_last with bf16 autocast.
    """
    if torch.device(device).type == "cuda":
        return AUTO_CUDA
    small = gflops is not None and batch_size * gflops <= AUTO_ORT_MAX_GFLOP
    if small and missing_dependency(parse_backend(AUTO_CPU_SMALL)) is None:
        return AUTO_CPU_SMALL
    return AUTO_CPU_BF16 if cpu_has_bf16() else AUTO_CPU_FP32


def auto_rule() -> dict[str, str]:
    """What ``auto`` stands for on this machine, in words, per device."""
    missing = missing_dependency(parse_backend(AUTO_CPU_SMALL))
    large = AUTO_CPU_BF16 if cpu_has_bf16() else AUTO_CPU_FP32
    cpu = large if missing else f"{AUTO_CPU_SMALL} up to {AUTO_ORT_MAX_GFLOP:g} GFLOP per call, else {large}"
    return {"cpu": cpu, "cuda": AUTO_CUDA}


def prepare(model: nn.Module, spec: str | Sequence[str], *, input_size: tuple[int, ...],
            device: str | torch.device = "cpu", threads: int | None = None, batch_size: int = 256,
            gflops: float | None = None, workdir: Path | None = None, name: str = "model") -> Prepared:
    """Prepare a copy of ``model`` for inference with backend ``spec`` (a spec string, ``auto``, or modifiers).

    ``input_size`` (C, H, W) is what exports trace with. ``batch_size`` and ``gflops`` (per image;
    counted on the model when not given) only resolve ``auto``. ``threads`` sets onnxruntime's
    intra-op threads (torch's are the caller's to set). ``workdir`` keeps exported files (default: a
    temp dir removed once they are loaded). Raises ``ZooError`` when a dependency is missing.
    """
    device = torch.device(device)
    if spec == "auto" and gflops is None and device.type == "cpu":
        from .builder import count_flops

        gflops = count_flops(model, tuple(input_size)) / 1e9
    if isinstance(spec, str):
        mods = parse_backend(resolve_auto(device, batch_size, gflops) if spec == "auto" else spec)
    else:
        mods = tuple(spec)
    missing = missing_dependency(mods)
    if missing:
        extra = "openvino" if missing == "openvino" else "onnx"
        raise ZooError(f"backend {'+'.join(mods)} needs {missing}: pip install 'zoo[{extra}]'")
    p = Prepared(copy.deepcopy(model).eval().to(device), device, tuple(input_size), mods, threads, workdir, name)
    for mod in mods:
        p = BACKENDS[mod][0](p)
    _logger.debug("%s prepared as %s%s", name, p.spec, "".join(f"; {n}" for n in p.notes))
    return p
