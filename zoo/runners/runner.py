"""Runners: every way to run a model is a ``Runner``, made here and only here.

A ``Runner`` is a callable fp32 NCHW batch -> fp32 logits, with casts, layout and the runtime inside.
``prepare(model, spec)`` makes one from a module; ``load(path)`` from an exported file. Both are named by
a backend spec: one name of ``BACKENDS`` or several joined by ``+`` (``fold-bn+channels-last+bf16-cast``);
the modifiers apply in the order of ``BACKENDS`` whatever order they are written in. ``auto`` stands
for the setting measured fastest on the device for the work of one call (``resolve_auto``). Exported
backends (``EXPORTED``: onnxruntime, pt2, torchscript, openvino, their int8 forms) write the model with
the serializers of ``zoo.runners.serialize`` and combine only with ``fold-bn``; the int8 ones are calibrated on
the images given as ``calibration`` (training images: ``zoo.deploy.calibration_images``).

A file given to ``load`` is an input zoo did not make: it must be a regular file, a zip-based one is
measured before torch opens it, and pt2 and TorchScript files (``CODE_FORMATS``: programs, whose loading
can unpickle objects or run ops that write files) are refused unless the caller passes ``trust=True``.

    runner = zoo.runners.prepare(zoo.create("resnet18"), "auto", input_size=(3, 32, 32))
    logits = runner(images)          # fp32 NCHW in, fp32 logits out; casts and layout inside
    runner = zoo.runners.load("resnet18.onnx")                # onnxruntime, from the suffix
    runner = zoo.runners.load("resnet18.xml", "openvino-bf16")

``zoo.benchmark`` measures them; ``benchmarks/results/throughput.md`` holds the measurements that
chose ``auto``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..builder import deploy_form
from ..errors import InvalidArgumentError, ZooError, summarize
from ..utils.fileio import check_zip, regular_file
from ..utils.machine import cpu_class, cpu_has_bf16

__all__ = ["BACKENDS", "EXPORTED", "INT8", "RUNTIME_FORMATS", "FORMAT_RUNTIMES", "Runner", "RunFn", "backend_of",
           "prepare", "load", "precision_of", "parse_backend", "resolve_auto", "auto_table", "auto_rule",
           "fold_batchnorm",
           "cpu_has_bf16", "missing_dependency", "AUTO_CANDIDATES", "AUTO_ORT_MAX_GFLOP", "CODE_FORMATS",
           "UntrustedArtefactError"]

_logger = logging.getLogger(__name__)

RunFn = Callable[[torch.Tensor], torch.Tensor]

# exported backend -> the file format it runs (zoo.runners.serialize.FORMATS). The int8 backends run a quantised file
# of the same format; loading one back needs no calibration, so ``load`` treats them as their runtime.
RUNTIME_FORMATS = {"onnxruntime": "onnx", "onnxruntime-int8": "onnx", "pt2": "pt2", "torchscript": "torchscript",
                   "openvino": "openvino", "openvino-bf16": "openvino", "openvino-int8": "openvino"}
FORMAT_RUNTIMES = {"onnx": "onnxruntime", "pt2": "pt2", "torchscript": "torchscript", "openvino": "openvino"}
INT8 = ("onnxruntime-int8", "openvino-int8")


def precision_of(mods: Sequence[str]) -> str:
    """The arithmetic a backend's modifiers run in: ``int8``, ``bf16`` or ``fp32``."""
    if set(mods) & set(INT8):
        return "int8"
    return "bf16" if set(mods) & {"bf16", "bf16-cast", "openvino-bf16"} else "fp32"


def _missing_error(what: str, missing: str) -> ZooError:
    extra = "openvino" if missing in ("openvino", "nncf") else "onnx"
    return ZooError(f"{what} needs {missing}: pip install 'zoo[{extra}]'")


@dataclass
class Runner:
    """One way to run a model: call it with an fp32 NCHW batch, get fp32 logits.

    ``module`` is the prepared module (None for a runner loaded from a file), ``fn`` what runs instead
    of it when the model was exported or compiled, ``path`` the file it runs (exported backends).
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

    @property
    def precision(self) -> str:
        return precision_of(self.mods)

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


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference with every BatchNorm that follows a conv or linear layer folded into it.

    The model is traced by torch.fx in eval mode; dropout layers (the identity in eval mode) are dropped
    so that a conv -> dropout -> BatchNorm chain folds too, and a BatchNorm after a conv -> max-pool pair
    (FastNet's order) is moved before the pool when every channel's scale is positive (a max commutes
    with an increasing per-channel affine map, so the result is the same); then
    ``torch.fx.experimental.optimization.fuse`` folds each conv/linear + BatchNorm pair
    (``fuse_conv_bn_eval``). A BatchNorm after an activation cannot be folded and stays. Raises
    ``ZooError`` when the model cannot be traced by torch.fx.
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
    for node in list(traced.graph.nodes):
        _swap_pool_and_batchnorm(traced, node)
    traced.graph.lint()
    traced.recompile()
    folded = fuse(traced, inplace=True, no_trace=True)
    folded.delete_all_unused_submodules()  # the folded BatchNorms (and dropouts) are no longer called
    return folded.eval()


def _swap_pool_and_batchnorm(traced: Any, bn: Any) -> None:
    """conv -> max-pool -> BatchNorm becomes conv -> BatchNorm -> max-pool (then foldable) when exact."""
    from torch import fx

    def module(node: Any, kind: type | tuple[type, ...]) -> Any:
        if not isinstance(node, fx.Node) or node.op != "call_module":
            return None
        mod = traced.get_submodule(node.target)
        return mod if isinstance(mod, kind) else None

    norm = module(bn, nn.modules.batchnorm._BatchNorm)
    if norm is None or norm.running_var is None:
        return
    pool = bn.args[0]
    max_pool = module(pool, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d))
    if max_pool is None or max_pool.return_indices or len(pool.users) != 1:
        return
    conv = pool.args[0]
    if module(conv, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) is None or len(conv.users) != 1:
        return
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    if not bool((scale > 0).all()):  # a negative scale turns the max into a min: not the same function
        return
    bn.replace_all_uses_with(pool)
    bn.args = (conv,)
    pool.args = (bn, *pool.args[1:])
    pool.prepend(bn)


def _count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


# Builders: each takes the setting prepared so far and returns it changed.


def _eager(p: Runner) -> Runner:
    return p


def _fold_bn(p: Runner) -> Runner:
    before = _count_bn(p.module)
    p.module = fold_batchnorm(p.module)
    p.notes.append(f"folded {before - _count_bn(p.module)} of {before} BatchNorm layers")
    return p


def _channels_last(p: Runner) -> Runner:
    if len(p.input_size) != 3:  # channels_last is a layout of 4-d (N, C, H, W) tensors
        p.notes.append(f"channels_last skipped: input of shape {p.input_size} is not an image")
        return p
    p.module = p.module.to(memory_format=torch.channels_last)
    p.memory_format = torch.channels_last
    return p


def _bf16_cast(p: Runner) -> Runner:
    p.module = p.module.to(torch.bfloat16)  # weights and activations in bf16, logits cast back to fp32
    p.dtype = torch.bfloat16
    return p


def _bf16(p: Runner) -> Runner:
    p.autocast = torch.bfloat16  # AMP: fp32 weights, convs and matmuls in bf16
    return p


def _compile(p: Runner) -> Runner:
    # freezing: weights become constants, so inductor can pre-pack them for oneDNN (CPU) and fold ops.
    # dynamic=False: one graph per batch size, specialised (the first call at each size compiles).
    p.fn = torch.compile(p.module, dynamic=False, options={"freezing": True})
    return p


def _cuda_graph(p: Runner) -> Runner:
    """Each batch shape's forward captured once as a CUDA graph and replayed: no per-kernel launch cost."""
    if p.device.type != "cuda":
        raise InvalidArgumentError("cuda-graph needs a CUDA device (--device cuda)")
    fn: Any = p.fn if p.fn is not None else p.module
    graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def replay(x: torch.Tensor) -> torch.Tensor:  # called inside Runner.__call__ (autocast included)
        key = tuple(x.shape)
        if key not in graphs:
            static_in = x.clone()
            side = torch.cuda.Stream(p.device)
            side.wait_stream(torch.cuda.current_stream(p.device))
            with torch.cuda.stream(side), torch.no_grad():
                for _ in range(3):  # warm-up on a side stream, as CUDA graph capture requires
                    fn(static_in)
            torch.cuda.current_stream(p.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.no_grad():
                static_out = fn(static_in)
            graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    p.fn = replay
    return p


def _exported(backend: str) -> Callable[[Runner], Runner]:
    def build(p: Runner) -> Runner:
        from . import serialize as export

        if p.device.type != "cpu":
            raise InvalidArgumentError(f"{backend} runs on the CPU here; use device cpu")
        if backend in INT8 and p.calibration is None:
            raise InvalidArgumentError(f"{backend} needs calibration images: pass calibration= (training images "
                                       "of the model's dataset, zoo.data.calibration_batch)")
        fmt = RUNTIME_FORMATS[backend]
        stem = p.name.replace("/", "_")
        fp32_spec = "+".join(_INT8_RUNTIME.get(m, m) for m in p.mods)
        with contextlib.ExitStack() as stack:
            workdir = p.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zoo-backend-")))
            module = p.module.eval()
            if backend in INT8 and "fold-bn" not in p.mods and _count_bn(module):
                # Quantisers fold a conv + BatchNorm pair themselves, not a BatchNorm after a pool, whose
                # per-tensor input range then spans channels whose scales differ by thousands
                # (fastnet_mnist fell to chance so): int8 is always made from the folded model.
                before, module = _count_bn(module), fold_batchnorm(module)
                p.notes.append(f"folded {before - _count_bn(module)} of {before} BatchNorm layers before quantising")
                fp32_spec = f"fold-bn+{fp32_spec}"
            path = workdir / f"{stem}-{fp32_spec}{export.FORMATS[fmt]}"
            if not path.exists():  # with a shared workdir, one export serves every thread count
                save = {"onnx": export.to_onnx, "pt2": export.to_pt2, "torchscript": export.to_torchscript,
                        "openvino": export.to_openvino}[fmt]
                _, how = save(module, path, input_size=p.input_size)
                p.notes.append(f"{fmt} exported by {how}")
            if backend in INT8:
                src, path = path, workdir / f"{stem}-{p.spec}{export.FORMATS[fmt]}"
                if not path.exists():
                    quantize = export.quantize_onnx_static if fmt == "onnx" else export.quantize_openvino
                    _, how = quantize(src, path, p.calibration)
                    p.notes.append(how)
            p.fn = _load_file(path, backend, p.threads)  # loaded into memory: the temp dir may go
            p.path = path if p.workdir else None
        return p

    return build


_INT8_RUNTIME = {"onnxruntime-int8": "onnxruntime", "openvino-int8": "openvino"}

# name -> (builder, modules it needs, what it does). Modifiers apply in this order.
BACKENDS: dict[str, tuple[Callable[[Runner], Runner], tuple[str, ...], str]] = {
    "eager": (_eager, (), "the model as built, fp32, NCHW"),
    "fold-bn": (_fold_bn, (), "BatchNorm folded into the preceding conv/linear (torch.fx fuse)"),
    "channels-last": (_channels_last, (), "weights and input in channels_last (NHWC) memory format"),
    "bf16-cast": (_bf16_cast, (), "weights and activations cast to bfloat16 (pure bf16)"),
    "bf16": (_bf16, (), "torch.autocast bfloat16 (AMP): fp32 weights, convs and matmuls in bf16"),
    "compile": (_compile, (), "torch.compile (inductor, freezing, static shapes)"),
    "cuda-graph": (_cuda_graph, (), "CUDA only: each batch shape captured once as a CUDA graph and replayed"),
    "onnxruntime": (_exported("onnxruntime"), ("onnx", "onnxscript", "onnxruntime"),
                    "ONNX (zoo.runners.serialize.to_onnx) run by onnxruntime, CPU provider, all graph optimisations"),
    "onnxruntime-int8": (_exported("onnxruntime-int8"), ("onnx", "onnxscript", "onnxruntime"),
                         "the ONNX file quantised to int8 by onnxruntime (static, QDQ, per channel, 7-bit weights), "
                         "calibrated on the calibration images"),
    "pt2": (_exported("pt2"), (), "torch.export program (zoo.runners.serialize.to_pt2)"),
    "torchscript": (_exported("torchscript"), (), "TorchScript (zoo.runners.serialize.to_torchscript)"),
    "openvino": (_exported("openvino"), ("openvino",),
                 "OpenVINO IR (zoo.runners.serialize.to_openvino) on OpenVINO's CPU plugin, fp32, latency hint"),
    "openvino-bf16": (_exported("openvino-bf16"), ("openvino",),
                      "the same IR with INFERENCE_PRECISION_HINT=bf16 (AMX or AVX512-BF16 kernels)"),
    "openvino-int8": (_exported("openvino-int8"), ("openvino", "nncf"),
                      "the IR quantised to int8 by NNCF (static, performance preset, min-max ranges, bias "
                      "correction, 7-bit weights), calibrated on the calibration images; other operations in fp32"),
}
EXPORTED = tuple(RUNTIME_FORMATS)


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


# What ``auto`` stands for is chosen by measurement. ``benchmarks/throughput.py`` (part ``sweep``) times the
# AUTO_CANDIDATES side by side per model and batch size on the machine at hand and writes ``zoo/auto.json``:
# per CPU class (``zoo.utils.machine.cpu_class``), the measured points (GFLOP per call) with each candidate's
# images/s and setup time (export, compilation, first call). ``resolve_auto`` takes the measured point
# nearest in GFLOP per call (log scale) and picks the fastest installed candidate there; a candidate whose
# results are fp32 wins when it is within AUTO_TIE of the fastest. For a pass over ``images`` images, the
# setup time counts too. A CPU class not measured yet gets the fallback rule below.
AUTO_CANDIDATES = ("eager", "fold-bn+channels-last", "fold-bn+channels-last+bf16-cast", "onnxruntime", "openvino",
                   "openvino-bf16")
AUTO_TIE = 0.05
AUTO_TABLE = Path(__file__).with_name("auto.json")
# Fallback (no measurement for this CPU class): the rule measured on an AMD EPYC (Zen 4) with torch alone:
# onnxruntime up to 1 GFLOP per call (its per-operator overhead is far below eager PyTorch's), else BatchNorm
# folded, channels_last and bf16 (fp32 on a CPU without native bf16).
AUTO_ORT_MAX_GFLOP = 1.0
AUTO_CPU_SMALL = "onnxruntime"
AUTO_CPU_BF16 = "fold-bn+channels-last+bf16-cast"
AUTO_CPU_FP32 = "fold-bn+channels-last"
AUTO_CUDA = "channels-last+bf16"  # AMP; not measured (no GPU on the machines of the recorded results)


@functools.cache
def auto_table(path: Path = AUTO_TABLE) -> dict[str, Any]:
    """The recorded measurements behind ``auto``: {cpu class: {"machine", "recorded", "threads", "points"}}."""
    try:
        return json.loads(path.read_text())["cpus"]
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError) as e:
        _logger.warning("ignoring %s (%s): auto uses its fallback rule", path, summarize(e))
        return {}


def _measured() -> dict[str, Any] | None:
    """This machine's CPU class in the recorded table, if it was measured."""
    return auto_table().get(cpu_class())


def _pick(candidates: dict[str, dict[str, float]], images: int | None, bf16: bool | None = None) -> str | None:
    """The fastest installed candidate (fp32 preferred within AUTO_TIE); ``images``: count setup time too.

    ``bf16``: whether bf16 candidates may be picked (default: whether this CPU runs bf16 natively; a report
    of another machine's measurements passes that machine's).
    """
    bf16 = cpu_has_bf16() if bf16 is None else bf16
    usable = {spec: c for spec, c in candidates.items()
              if c.get("images_per_s") and missing_dependency(parse_backend(spec)) is None
              and (precision_of(parse_backend(spec)) == "fp32" or bf16)}
    if not usable:
        return None
    cost = {spec: (c.get("setup_s", 0.0) if images else 0.0) + (images or 1) / c["images_per_s"]
            for spec, c in usable.items()}
    best = min(cost.values())
    close = [s for s in cost if cost[s] <= best * (1 + AUTO_TIE)]
    return min(close, key=lambda s: (precision_of(parse_backend(s)) != "fp32", cost[s]))


def resolve_auto(device: str | torch.device = "cpu", batch_size: int = 256, gflops: float | None = None,
                 images: int | None = None) -> str:
    """The backend spec ``auto`` stands for on ``device`` for calls of ``batch_size`` images of ``gflops`` GFLOPs.

    CPU: the fastest candidate at the measured point of this CPU class nearest in GFLOP per call (unknown
    ``gflops``: the largest measured call); ``images``: a pass over that many images, where a backend's
    setup time (an export) counts too. Without a measurement for this CPU class: onnxruntime up to
    ``AUTO_ORT_MAX_GFLOP`` per call, else ``AUTO_CPU_BF16`` (``AUTO_CPU_FP32`` without native bf16).
    CUDA: channels_last with bf16 autocast.
    """
    if torch.device(device).type == "cuda":
        return AUTO_CUDA
    measured = _measured()
    if measured and measured.get("points"):
        points = measured["points"]
        if gflops is None:
            point = max(points, key=lambda p: p["gflop_per_call"])
        else:
            work = max(batch_size * gflops, 1e-9)
            point = min(points, key=lambda p: abs(math.log(max(p["gflop_per_call"], 1e-9) / work)))
        picked = _pick(point["candidates"], images)
        if picked:
            return picked
    small = gflops is not None and batch_size * gflops <= AUTO_ORT_MAX_GFLOP
    if small and missing_dependency(parse_backend(AUTO_CPU_SMALL)) is None:
        return AUTO_CPU_SMALL
    return AUTO_CPU_BF16 if cpu_has_bf16() else AUTO_CPU_FP32


def auto_rule() -> dict[str, str]:
    """What ``auto`` stands for on this machine, in words, per device."""
    measured = _measured()
    large = AUTO_CPU_BF16 if cpu_has_bf16() else AUTO_CPU_FP32
    if measured and measured.get("points"):
        points = sorted(measured["points"], key=lambda p: p["gflop_per_call"])
        spans: list[list[Any]] = []  # [winner, low, high]
        for p in points:
            won = _pick(p["candidates"], None) or large
            if spans and spans[-1][0] == won:
                spans[-1][2] = p["gflop_per_call"]
            else:
                spans.append([won, p["gflop_per_call"], p["gflop_per_call"]])
        words = "; ".join(f"{w} ({lo:.2g}-{hi:.3g} GFLOP per call)" if lo != hi else f"{w} ({lo:.3g} GFLOP)"
                          for w, lo, hi in spans)
        where = measured["machine"] if cpu_class() in measured["machine"] else f"{measured['machine']} ({cpu_class()})"
        cpu = (f"measured on {where} on {measured['recorded']}: {words}; "
               "a pass over a dataset counts setup time too")
    else:
        missing = missing_dependency(parse_backend(AUTO_CPU_SMALL))
        cpu = (f"not measured for {cpu_class()}: "
               + (large if missing else f"{AUTO_CPU_SMALL} up to {AUTO_ORT_MAX_GFLOP:g} GFLOP per call, else {large}"))
    return {"cpu": cpu, "cuda": AUTO_CUDA}


def prepare(model: nn.Module, spec: str | Sequence[str], *, input_size: tuple[int, ...],
            device: str | torch.device = "cpu", threads: int | None = None, batch_size: int = 256,
            gflops: float | None = None, workdir: Path | None = None, name: str = "model",
            calibration: torch.Tensor | None = None) -> Runner:
    """A ``Runner`` of a copy of ``model`` with backend ``spec`` (a spec string, ``auto``, or modifiers).

    ``input_size`` (C, H, W) is what exports trace with. ``batch_size`` and ``gflops`` (per image;
    counted on the model when not given) only resolve ``auto``. ``threads`` sets the intra-op threads
    of onnxruntime and OpenVINO (torch's are the caller's to set). ``workdir`` keeps exported files
    (default: a temp dir removed once they are loaded). ``calibration``: normalised images the int8
    backends calibrate on. Raises ``ZooError`` when a dependency is missing.
    """
    device = torch.device(device)
    if spec == "auto" and gflops is None and device.type == "cpu":
        from ..builder import count_flops

        gflops = count_flops(model, tuple(input_size)) / 1e9
    if isinstance(spec, str):
        mods = parse_backend(resolve_auto(device, batch_size, gflops) if spec == "auto" else spec)
    else:
        mods = tuple(spec)
    missing = missing_dependency(mods)
    if missing:
        raise _missing_error(f"backend {'+'.join(mods)}", missing)
    module = deploy_form(copy.deepcopy(model), inplace=True)  # e.g. RepVGG runs re-parameterised
    p = Runner(module.eval().to(device), device, tuple(input_size), mods, threads, workdir, name,
               calibration=calibration)
    for mod in mods:
        p = BACKENDS[mod][0](p)
    p.calibration = None  # used once; not kept alive with the runner
    _logger.debug("%s prepared as %s%s", name, p.spec, "".join(f"; {n}" for n in p.notes))
    return p


def backend_of(path: str | os.PathLike[str]) -> str:
    """The runtime that runs an exported file, from its suffix (``zoo.runners.serialize.FORMATS``)."""
    from .serialize import FORMATS

    name = os.fspath(path)
    fmt = next((f for f, suffix in sorted(FORMATS.items(), key=lambda kv: -len(kv[1])) if name.endswith(suffix)),
               None)
    if fmt is None:
        raise InvalidArgumentError(f"cannot tell the format of {name} from its suffix "
                                   f"({', '.join(FORMATS.values())}); name the backend")
    return FORMAT_RUNTIMES[fmt]


# Formats that are code by nature: a TorchScript file is a program (its graph can call any registered op, write
# files with torch.from_file(shared=True) or print), and torch.export.load unpickles sample inputs and constants.
# zoo runs such a file only when the caller says it trusts it (``trust=True``, ``--trust-artefact``).
CODE_FORMATS = ("pt2", "torchscript")


class UntrustedArtefactError(ZooError):
    """A pt2 or TorchScript file was given without ``trust=True``: loading it can run code."""


def load(path: str | os.PathLike[str], backend: str | None = None, *, threads: int | None = None,
         trust: bool = False) -> Runner:
    """A ``Runner`` of an exported file (``backend``: one of ``RUNTIME_FORMATS``, default from the suffix).

    The file must be a regular file of at most ``zoo.utils.fileio.MAX_FILE_BYTES``; a zip-based one (pt2,
    TorchScript) is measured before torch opens it (``zoo.utils.fileio.check_zip``). pt2 and TorchScript files
    are code by nature (``CODE_FORMATS``) and are refused unless ``trust`` is set: only load files you
    made or would run as a program. A file the backend cannot read (corrupt, truncated, or another format)
    raises ``ExportError``. A file exported with a fixed batch size runs any batch in chunks of that size.
    """
    backend = backend or backend_of(path)
    if backend not in RUNTIME_FORMATS:
        raise InvalidArgumentError(f"unknown backend {backend!r} for a file; use one of {', '.join(RUNTIME_FORMATS)}")
    path = regular_file(path, "artefact")
    if RUNTIME_FORMATS[backend] in CODE_FORMATS and not trust:
        raise UntrustedArtefactError(
            f"{path} is a {RUNTIME_FORMATS[backend]} artefact, a format that can run code when loaded; zoo runs one "
            f"only when told it is trusted: pass --trust-artefact (trust=True) for a file you made, or use an "
            f"ONNX or OpenVINO file")
    missing = missing_dependency((backend,))
    if missing:
        raise _missing_error(f"the {backend} backend", missing)
    return Runner(None, torch.device("cpu"), (), (backend,), threads, name=path.name,
                  fn=_load_file(path, backend, threads), path=path)


def _load_file(path: Path, backend: str, threads: int | None) -> RunFn:
    from .serialize import ExportError

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
    from .serialize import ExportError

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
    from .serialize import ExportError

    runtime = _INT8_RUNTIME.get(backend, backend)  # an int8 file runs on its format's runtime
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
