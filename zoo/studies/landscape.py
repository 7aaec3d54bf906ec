"""Report 002's BatchNorm study (``zoo.studies.analyze``): its settings (``LandscapeConfig``, ``PRESETS``) and
what it records (``RunTrace`` per model and learning rate, ``LandscapeResult`` for the whole study).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import InvalidArgumentError
from ..registry import get_entry
from ..specs import get_dataset_spec
from ..utils.fileio import strict_json

__all__ = ["OPTIMIZERS", "LandscapeConfig", "PRESETS", "landscape_config", "RunTrace", "LandscapeResult"]


OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class LandscapeConfig:
    """Settings of one study. ``models`` is (without BatchNorm, with BatchNorm)."""

    models: tuple[str, str] = ("vgga", "vgga_bn")
    lrs: tuple[float, ...] = (1e-3, 2e-3, 1e-4, 5e-4)  # report 002, section 2.2
    optimizer: str = "adam"  # the report's VGG-A did not train with SGD; it used Adam
    steps: int = 25 * (50_000 // 128)  # the report's 25 epochs
    batch_size: int = 128
    train_images: int = 0  # the first N training images (0 = all)
    probe_every: int = 1  # measure the gradient change every N steps
    augment: bool = False  # flip + pad-and-crop (zoo.data.augment.augment_flip_crop)
    dataset: str = "cifar10"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "lrs", tuple(float(lr) for lr in self.lrs))
        checks = [
            (len(self.models) == 2, "models must be two names: without and with BatchNorm"),
            (len(self.lrs) >= 1 and all(lr > 0 for lr in self.lrs), "lrs must be positive numbers"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.steps >= 2, "steps must be >= 2"),
            (self.batch_size >= 2, "batch_size must be >= 2 (BatchNorm needs two images)"),
            (self.train_images >= 0, "train_images must be >= 0"),
            (self.probe_every >= 1, "probe_every must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidArgumentError(f"landscape config: {message}")
        for name in self.models:
            get_entry(name)
        get_dataset_spec(self.dataset)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, LandscapeConfig] = {
    # Under 15 minutes on 2 CPU cores shared with another job: 8 runs of 60 steps of 64 images.
    "short": LandscapeConfig(steps=60, batch_size=64, train_images=5_000, probe_every=3),
    # Report 002: 25 epochs at batch 128 on the 50,000 training images, every step probed (GPU hours).
    "full": LandscapeConfig(),
}


def landscape_config(preset: str = "short", **overrides: Any) -> LandscapeConfig:
    """The preset with ``overrides`` applied; ``None`` values are dropped, unknown keys raise."""
    if preset not in PRESETS:
        raise InvalidArgumentError(f"unknown landscape preset {preset!r}; known: {', '.join(PRESETS)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(LandscapeConfig)})
    if unknown:
        raise InvalidArgumentError(f"unknown landscape settings: {', '.join(unknown)}")
    return dataclasses.replace(PRESETS[preset], **changes)


@dataclass
class RunTrace:
    """What one (model, learning rate) run recorded. Lists hold None where the run had diverged."""

    model: str
    lr: float
    loss: list[float | None]  # training loss of every step's batch, before the step
    probe_steps: list[int]
    grad_change: list[float | None]  # ||g(w_t+1) - g(w_t)|| on the same batch, all parameters
    grad_change_last: list[float | None]  # the same, last Linear layer only
    beta: list[float | None]  # grad_change / ||w_t+1 - w_t||
    beta_last: list[float | None]
    step_norm: list[float | None]  # ||w_t+1 - w_t||
    diverged_at: int | None = None
    wall_s: float = 0.0


@dataclass
class LandscapeResult:
    config: dict[str, Any]
    runs: list[RunTrace]
    summary: dict[str, Any]
    bn_effect: dict[str, Any]
    hardware: str
    torch_version: str
    wall_s: float
    complete: bool
    paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return strict_json(asdict(self))
