"""How a recipe updates the weights: the optimizer, the learning-rate schedule and weight averaging.

The optimizer comes from timm's factory over timm's weight-decay groups (with ``muon_lr``, timm's Muon for the
convolution filters beside it), the schedule from timm's per-update schedulers, the EMA from
``torch.optim.swa_utils``; Lookahead is airbench's variant. The trainer (``zoo.train``) calls these once per
run; nothing here touches data or files.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from timm.optim import Muon, create_optimizer_v2, param_groups_weight_decay
from timm.scheduler import CosineLRScheduler, MultiStepLRScheduler, PolyLRScheduler, StepLRScheduler
from timm.scheduler.scheduler import Scheduler

from ..errors import InvalidArgumentError
from .recipes import Recipe

__all__ = ["FilterMuon", "Lookahead", "OptimizerChain", "create_ema", "create_optimizer", "create_scheduler", "lr_at"]

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)  # their tensors train at lr x norm_lr_scale


def lr_at(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    """Learning rate at optimiser update ``step`` (0-based), as the trainer's scheduler sets it (for plots, tests)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=recipe.lr)
    create_scheduler(recipe, opt, steps_per_epoch).step_update(step)
    return opt.param_groups[0]["lr"]


def create_scheduler(recipe: Recipe, opt: torch.optim.Optimizer | OptimizerChain, steps_per_epoch: int) -> Scheduler:
    """timm's schedulers, stepped per update (``step_update``); each group's lr is the schedule x its ``lr_scale``.

    ``triangle``: linear from lr x initial_lr_ratio up to lr over the first ``onecycle_pct`` of the updates, then
    linear down to lr x final_lr_ratio. ``onecycle``: linear up from lr/25 (as torch's OneCycleLR starts), then cosine
    down to lr x final_lr_ratio. The other schedules start with ``warmup_epochs`` of linear warm-up from lr/warm-up
    updates. The schedule is a function of the update count alone, so a resumed run continues it exactly.
    """
    total = recipe.epochs * steps_per_epoch
    base, final = recipe.lr, recipe.lr * recipe.final_lr_ratio
    if recipe.schedule in ("triangle", "onecycle"):
        peak = max(1, int(recipe.onecycle_pct * total))
        ramp: dict[str, Any] = {"warmup_t": peak, "warmup_prefix": True, "t_initial": max(1, total - peak),
                                "lr_min": final, "t_in_epochs": False}
        if recipe.schedule == "triangle":
            return PolyLRScheduler(opt, power=1.0, warmup_lr_init=base * recipe.initial_lr_ratio, **ramp)
        return CosineLRScheduler(opt, warmup_lr_init=base * 0.04, **ramp)
    warm = round(recipe.warmup_epochs * steps_per_epoch)
    warmup: dict[str, Any] = {"warmup_t": warm, "warmup_lr_init": base / warm if warm else 0.0, "t_in_epochs": False}
    if recipe.schedule == "cosine":
        return CosineLRScheduler(opt, t_initial=max(1, total - warm), lr_min=final, warmup_prefix=True, **warmup)
    if recipe.schedule == "step":  # timm applies a milestone d from update d - 1: +1 puts epoch m's at its first update
        return MultiStepLRScheduler(opt, decay_t=[round(m * steps_per_epoch) + 1 for m in recipe.milestones],
                                    decay_rate=recipe.gamma, warmup_prefix=False, **warmup)
    rate = recipe.gamma if recipe.schedule == "exponential" else 1.0  # constant: a step schedule that never decays
    return StepLRScheduler(opt, decay_t=steps_per_epoch, decay_rate=rate, warmup_prefix=False, **warmup)


def create_optimizer(recipe: Recipe, model: nn.Module) -> torch.optim.Optimizer | OptimizerChain:
    """timm's optimizer factory over timm's weight-decay groups (no decay on biases and other 1-d tensors).

    The groups are, in this order (a saved optimizer state depends on it): tensors with weight decay, tensors
    without, and norm-layer tensors, which train at lr x ``norm_lr_scale`` (the group's ``lr_scale``, which timm's
    schedulers honour). Frozen tensors (a whitened stem, unit BatchNorm scales) never reach the optimizer.

    With ``muon_lr``, the convolution filters (trainable 4-d tensors) leave these groups for a ``FilterMuon``
    at lr x muon_lr / lr (its ``lr_scale``: the same schedule), chained after the recipe's optimizer.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for group in param_groups_weight_decay(model, recipe.weight_decay):
        (decay if group["weight_decay"] else no_decay).extend(group["params"])
    filters = [p for p in decay + no_decay if p.dim() == 4] if recipe.muon_lr else []
    if recipe.muon_lr and not filters:
        raise InvalidArgumentError(f"recipe {recipe.name!r}: muon_lr is set but {recipe.model or 'the model'} "
                                   f"has no trainable convolution filters")
    if filters:
        decay, no_decay = [p for p in decay if p.dim() != 4], [p for p in no_decay if p.dim() != 4]
    norms = {id(p) for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters()}
    groups = [{"params": decay, "weight_decay": recipe.weight_decay, "lr_scale": 1.0},
              {"params": [p for p in no_decay if id(p) not in norms], "weight_decay": 0.0, "lr_scale": 1.0},
              {"params": [p for p in no_decay if id(p) in norms], "weight_decay": 0.0,
               "lr_scale": recipe.norm_lr_scale}]
    fused = {"fused": True} if _fused_ok(model) else {}  # one kernel over all tensors instead of a loop per tensor
    if recipe.optimizer == "sgd":  # timm's "sgd" is SGD with Nesterov momentum, its "momentum" without
        opt = create_optimizer_v2(groups, opt="sgd" if recipe.nesterov else "momentum", lr=recipe.lr,
                                  weight_decay=recipe.weight_decay, momentum=recipe.momentum, **fused)
    else:
        opt = create_optimizer_v2(groups, opt=recipe.optimizer, lr=recipe.lr, weight_decay=recipe.weight_decay,
                                  betas=tuple(recipe.betas), **fused)
    if not filters:
        return opt
    muon = FilterMuon([{"params": filters, "lr_scale": recipe.muon_lr / recipe.lr, "use_muon": True}],
                      lr=recipe.lr, momentum=recipe.muon_momentum)
    return OptimizerChain(opt, muon)


class FilterMuon(Muon):
    """timm's Muon (Nesterov momentum, orthogonalised by Newton-Schulz) for convolution filters, as airbench94_muon
    trains them: each filter tensor is rescaled to norm sqrt(out channels) before its update, no weight decay, no
    shape-dependent lr factor.

    Only for filters followed by a norm layer (BatchNorm), which makes their scale irrelevant to the network's
    output: the rescaling then keeps the update's size relative to the weights fixed, where weight decay would
    otherwise have to.
    """

    def __init__(self, params: Any, lr: float, momentum: float) -> None:
        super().__init__(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=0.0, adjust_lr_fn=None,
                         conv_mode="flatten")

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.mul_(p.shape[0] ** 0.5 / p.norm().clamp_min(1e-12))
        return super().step(closure)


class OptimizerChain:
    """Optimizers stepped as one: one list of their parameter groups (for a timm scheduler), one state dict."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"chain": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state.get("chain", ())) != len(self.optimizers):
            raise InvalidArgumentError(f"the saved optimizer state holds {len(state.get('chain', ()))} optimizers, "
                                       f"this recipe {len(self.optimizers)}")
        for opt, s in zip(self.optimizers, state["chain"], strict=True):
            opt.load_state_dict(s)


def _fused_ok(model: nn.Module) -> bool:
    """Fused optimizer kernels exist for float tensors on the CPU and CUDA (PyTorch >= 2.4)."""
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in model.parameters())


def create_ema(model: nn.Module, recipe: Recipe) -> Any:
    """An exponential moving average of the weights and buffers (``recipe.ema_decay``), or None.

    It is updated after every optimiser step, evaluated every epoch and stored at the end in place
    of the raw weights (``torch.optim.swa_utils.AveragedModel``; BatchNorm statistics are averaged
    too).
    """
    if not recipe.ema_decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)


class Lookahead:
    """Lookahead (Zhang et al. 2019) with a decay that rises during training, as airbench uses it.

    Every ``k`` optimiser steps the slow copy moves towards the model, ``slow = d * slow + (1 - d) *
    model`` with ``d = decay * progress**3``, and the model restarts from it; floating-point buffers
    (BatchNorm statistics) are averaged too. Early in training ``d`` is near 0 (no averaging); at the
    end the slow weights average the last steps; a last blend after the final step gives the stored
    weights.
    """

    def __init__(self, model: nn.Module, k: int, decay: float, total_steps: int) -> None:
        self.k, self.decay, self.total_steps = k, decay, total_steps
        self.slow = {name: t.detach().clone() for name, t in model.state_dict().items() if t.is_floating_point()}

    @torch.no_grad()
    def step(self, model: nn.Module, step: int, *, sync: bool = False) -> None:
        """After optimiser step ``step`` (1-based); ``sync`` blends whatever the step number."""
        if step % self.k and not sync:
            return
        d = self.decay * (step / self.total_steps) ** 3
        for name, t in model.state_dict().items():
            if name in self.slow:
                self.slow[name].mul_(d).add_(t, alpha=1 - d)  # exact at d = 0
                t.copy_(self.slow[name])

    def store_into(self, model: nn.Module) -> nn.Module:
        """The model after a last blend at full decay (the steps since the last blend count too)."""
        self.step(model, self.total_steps, sync=True)
        return model

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.slow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, t in state.items():
            self.slow[name].copy_(t)
