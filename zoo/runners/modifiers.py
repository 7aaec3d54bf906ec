"""Eager modifiers: BatchNorm folding, channels_last, bf16, ``torch.compile``, CUDA graphs.

Each builder takes the ``Runner`` prepared so far and returns it changed (``MODIFIERS``); ``prepare``
(``zoo.runners.runner``) applies them in the order of ``BACKENDS``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from ..errors import InvalidArgumentError, ZooError, summarize
from .base import Runner

__all__ = ["MODIFIERS", "fold_batchnorm", "count_bn"]


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


def count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _eager(p: Runner) -> Runner:
    return p


def _fold_bn(p: Runner) -> Runner:
    before = count_bn(p.module)
    p.module = fold_batchnorm(p.module)
    p.notes.append(f"folded {before - count_bn(p.module)} of {before} BatchNorm layers")
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



MODIFIERS: dict[str, Callable[[Runner], Runner]] = {
    "eager": _eager, "fold-bn": _fold_bn, "channels-last": _channels_last, "bf16-cast": _bf16_cast, "bf16": _bf16,
    "compile": _compile, "cuda-graph": _cuda_graph,
}
