"""Training recipes as data.

A ``Recipe`` is one typed block of hyperparameters with defaults; named recipes hold only what they
change. ``resolve_recipe(name, overrides)`` applies ``key=value`` overrides and rejects unknown keys;
the resolved recipe (``Recipe.to_dict``) is saved with every run and checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError, UnknownModelError

__all__ = ["Recipe", "RECIPES", "get_recipe", "resolve_recipe", "list_recipes", "parse_overrides"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "exponential", "cosine", "onecycle", "triangle")
PRECISIONS = ("fp32", "bf16")
TEACHER_VIEWS = ("stored", "online")  # where a distillation teacher sees the images: zoo.train.distill


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a training run, saved with the run and with its checkpoint.

    Epoch-based quantities are in epochs. The defaults are one typed block; a recipe in ``RECIPES`` or a
    ``--set key=value`` override names only what it changes, and an unknown key is refused. The fields fall
    into the optimiser (``optimizer``, ``lr``, ``momentum``, ``nesterov``, ``betas``, ``weight_decay``,
    ``norm_lr_scale``, ``muon_lr``), the schedule (``schedule``: constant, step, exponential, cosine, onecycle,
    triangle; ``milestones``, ``gamma``, ``warmup_epochs``, ``onecycle_pct``), the averaging (``ema_decay`` or
    ``lookahead_steps``), the data (``flip``, ``crop_pad``, ``cutout``, ``low_res``, ``train_limit``), the
    arithmetic (``precision``: fp32 or bf16; ``channels_last``), and the starting point (``init_from``,
    ``freeze``, ``teacher`` for knowledge distillation).

    Raises:
        InvalidArgumentError: a value out of range, or two options that exclude each other; the message names
            the recipe and the field.

    Example:
        ```python
        from zoo.train.recipes import get_recipe
        recipe = dataclasses.replace(get_recipe("resnet20.cifar10.e150"), epochs=10)
        ```
    """

    name: str = "custom"
    description: str = ""
    model: str = ""
    dataset: str = "cifar10"
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "constant"
    milestones: tuple[float, ...] = ()  # step schedule: epochs at which lr is multiplied by gamma
    gamma: float = 0.1  # step / exponential (per epoch) decay factor
    warmup_epochs: float = 0.0  # linear warm-up from 0, before any schedule but onecycle
    onecycle_pct: float = 0.25  # onecycle / triangle: share of the run spent rising to lr
    initial_lr_ratio: float = 0.04  # triangle: start value as a share of lr (onecycle always starts at lr/25)
    final_lr_ratio: float = 0.0  # cosine / onecycle / triangle end value as a share of lr
    norm_lr_scale: float = 1.0  # lr multiplier for norm-layer parameters (biases and norms get no weight decay)
    muon_lr: float = 0.0  # > 0: convolution filters train with Muon at this peak lr, the rest with `optimizer`
    muon_momentum: float = 0.6  # Muon's Nesterov momentum
    label_smoothing: float = 0.0
    ema_decay: float = 0.0  # exponential moving average of the weights per step (0 = off); the EMA is stored
    lookahead_steps: int = 0  # Lookahead (Zhang et al. 2019): every k steps the weights move to slow weights (0 = off)
    lookahead_decay: float = 0.0  # slow-weight decay at the end of training, ramped up as progress**3; stored
    flip: bool = False
    alternate_flip: bool = False  # with flip: each image flipped in exactly one of every two consecutive epochs
    crop_pad: int = 0  # pad-and-random-crop; 0 = off
    cutout: int = 0  # cutout square size; 0 = off
    low_res: int = 0  # progressive resizing: the first low_res_epochs train on images resized to this side (0 = off)
    low_res_epochs: int = 0
    standardize: bool = True  # normalise with the dataset's mean/std, else only scale to [0, 1]
    precision: str = "fp32"
    channels_last: bool = False
    seed: int = 0
    eval_every: int = 1  # evaluate on the test split every N epochs (and always after the last)
    train_limit: int = 0  # train on the first N training images only (0 = all); for quick runs and studies
    init_from: str = ""  # start from this checkpoint (weights name or file); a classifier of another size starts fresh
    teacher: str = ""  # knowledge distillation from this released checkpoint (zoo.train.distill); "" = off
    distill_weight: float = 0.5  # with a teacher: the soft targets' share of the loss
    distill_temperature: float = 4.0  # with a teacher: the softmax temperature of both sides
    teacher_views: str = "stored"  # with a teacher: "stored" (once, each image and its mirror) or "online"
    freeze: str = ""  # layers not trained: fnmatch patterns of module names ("conv1,layer1*"), or "all-but-last:N"
    source: str = ""  # where the recipe comes from (a report and its section, or "zoo")

    def __post_init__(self) -> None:
        checks = [
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.eval_every >= 1, "eval_every must be >= 1"),
            (self.norm_lr_scale > 0, "norm_lr_scale must be > 0"),
            (self.muon_lr >= 0, "muon_lr must be >= 0 (0 = off)"),
            (0 <= self.muon_momentum < 1, "muon_momentum must be in [0, 1)"),
            (0 <= self.ema_decay < 1, "ema_decay must be in [0, 1)"),
            (self.lookahead_steps >= 0, "lookahead_steps must be >= 0 (0 = off)"),
            (0 <= self.lookahead_decay < 1, "lookahead_decay must be in [0, 1)"),
            (not (self.ema_decay and self.lookahead_steps), "ema_decay and lookahead_steps exclude each other"),
            (self.flip or not self.alternate_flip, "alternate_flip needs flip"),
            (self.train_limit >= 0, "train_limit must be >= 0 (0 = all images)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 < self.onecycle_pct < 1, "onecycle_pct must be in (0, 1)"),
            (self.low_res >= 0 and self.low_res_epochs >= 0, "low_res and low_res_epochs must be >= 0 (0 = off)"),
            (bool(self.low_res) == bool(self.low_res_epochs), "low_res and low_res_epochs go together"),
            (self.low_res_epochs < self.epochs, "low_res_epochs must leave the last epoch at full size"),
            (0 < self.distill_weight <= 1, "distill_weight must be in (0, 1]"),
            (self.distill_temperature > 0, "distill_temperature must be > 0"),
            (self.teacher_views in TEACHER_VIEWS, f"teacher_views must be one of {TEACHER_VIEWS}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidArgumentError(f"recipe {self.name!r}: {message}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise InvalidArgumentError(f"unknown recipe keys: {', '.join(unknown)}")
        d = dict(d)
        for key in ("betas", "milestones"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


def _r(**kwargs: Any) -> Recipe:
    return Recipe(**kwargs)


_R003 = "report 003 (003_148fa9d481c7e76e.txt), sections 1-2: Adam lr 1e-3, batch 64, 10 epochs, no augmentation"
_CIFAR_AUG = dict(flip=True, crop_pad=4)
# The zoo's recipe for small CIFAR nets: SGD-Nesterov, one-cycle, weight decay, flip + crop, label smoothing.
_SMALL_CIFAR = dict(dataset="cifar10", batch_size=128, optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True,
                    weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, precision="bf16",
                    channels_last=True, source="zoo", **_CIFAR_AUG)

# The headline long runs: one-cycle SGD-Nesterov, label smoothing, an EMA of the weights, flip + crop, bf16.
_LONG_CIFAR = dict(dataset="cifar10", optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=5e-4,
                   schedule="onecycle", onecycle_pct=0.15, label_smoothing=0.1, precision="bf16",
                   channels_last=True, source="zoo", **_CIFAR_AUG)
# The fast recipes (after airbench): SGD-Nesterov 0.85, triangular lr, BatchNorm shifts at 64x lr.
_FAST = dict(batch_size=512, optimizer="sgd", lr=0.75, momentum=0.85, nesterov=True, weight_decay=1.33e-3,
             schedule="triangle", onecycle_pct=0.23, initial_lr_ratio=0.2, final_lr_ratio=0.07, norm_lr_scale=64.0,
             crop_pad=2, precision="bf16", channels_last=True, source="zoo, after Jordan 2024 (arXiv:2404.00498)")

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    # -- MNIST ----------------------------------------------------------------------------------------
    _r(name="mlp_60_40_20_bn.mnist", model="mlp_60_40_20_bn", dataset="mnist", epochs=30, batch_size=128,
       optimizer="adam", lr=3e-3, weight_decay=0.0, schedule="onecycle", source="zoo",
       description="Adam, one-cycle lr 3e-3, 30 epochs, no augmentation (report 000 trains Adam with no schedule)."),
    _r(name="cnn_32_64_mnist.mnist", model="cnn_32_64_mnist", dataset="mnist", epochs=10, batch_size=128,
       optimizer="adam", lr=1e-3, schedule="onecycle", crop_pad=2, label_smoothing=0.1, precision="bf16",
       channels_last=True, source="zoo",
       description="Adam, one-cycle lr 1e-3, random 2-pixel shifts, label smoothing 0.1, 10 epochs, bf16, "
                   "channels_last (the stride-1 max-pools are 2x faster in channels_last)."),
    _r(name="mlp_2523.mnist", model="mlp_2523", dataset="mnist", epochs=15, batch_size=128, optimizer="adam",
       lr=1e-3, schedule="onecycle", precision="bf16", source="zoo",
       description="Adam, one-cycle lr 1e-3, 15 epochs, bf16 autocast."),
    # -- report 003 ------------------------------------------------------------------------------------
    _r(name="report003", dataset="cifar10", epochs=10, batch_size=64, optimizer="adam", lr=1e-3,
       source=_R003, description="Report 003's own recipe."),
    _r(name="report003_transfer", model="tv_resnet18", dataset="cifar10", epochs=10, batch_size=64,
       optimizer="adam", lr=5e-4, freeze="all-but-last:5",
       source="report 003 (003_148fa9d481c7e76e.txt), section 3.1: a pretrained ResNet-18, the first layers frozen, "
              "back-propagating through the last five; Adam, batch 64, lr 5e-4, no augmentation",
       description="Report 003's transfer learning: torchvision's ResNet-18 from --init-from (a torchvision "
                   "ResNet-18 file; no ImageNet weights can be downloaded here), all but the last five "
                   "parameterised layers frozen (layer4.1 and fc), Adam 5e-4, batch 64, 10 epochs."),
    _r(name="lenet_cifar.cifar10", model="lenet_cifar", epochs=30, **_SMALL_CIFAR,
       description="SGD-Nesterov, one-cycle lr 0.05, wd 5e-4, flip + crop, label smoothing 0.1, 30 epochs."),
    _r(name="lenet_cifar_bn.cifar10", model="lenet_cifar_bn", epochs=25, **_SMALL_CIFAR,
       description="SGD-Nesterov, one-cycle lr 0.05, wd 5e-4, flip + crop, label smoothing 0.1, 25 epochs."),
    _r(name="cnn_basic.cifar10", model="cnn_basic", epochs=25, **_SMALL_CIFAR,
       description="SGD-Nesterov, one-cycle lr 0.05, wd 5e-4, flip + crop, label smoothing 0.1, 25 epochs."),
    _r(name="vgga_light.cifar10", model="vgga_light", epochs=25, **_SMALL_CIFAR,
       description="SGD-Nesterov, one-cycle lr 0.05, wd 5e-4, flip + crop, label smoothing 0.1, 25 epochs."),
    _r(name="convnet5_bn.cifar10", model="convnet5_bn", epochs=4, **_SMALL_CIFAR,
       description="SGD-Nesterov, one-cycle lr 0.05, wd 5e-4, flip + crop, label smoothing 0.1, 4 epochs "
                   "(about 3.5 min per epoch on the 2-core CPU)."),
    # -- report 004's ladder ---------------------------------------------------------------------------
    _r(name="report004", dataset="cifar10", epochs=40, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9,
       schedule="exponential", gamma=0.95, flip=True, crop_pad=4, standardize=True,
       source="report 004 (004_f560f7d258634cdd.txt), section 2.2: standardisation, flip and crop, lr scheduler, "
              "dropout, BatchNorm (lr, batch and epochs are not given; chosen)",
       description="Report 004's ladder: standardisation, flip + crop, exponential lr decay."),
    _r(name="cnn3_fc1000_bn_dropout.cifar10", model="cnn3_fc1000_bn_dropout", epochs=40, **_SMALL_CIFAR,
       description="Report 004's ladder (standardisation, flip + crop, scheduler, dropout, BatchNorm) with "
                   "SGD-Nesterov, one-cycle lr 0.05, wd 5e-4, label smoothing 0.1, 40 epochs."),
    # -- ResNets -------------------------------------------------------------------------------------
    _r(name="resnet20.cifar10", model="resnet20", dataset="cifar10", epochs=50, batch_size=128, optimizer="sgd",
       lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1,
       precision="bf16", channels_last=True, source="zoo", **_CIFAR_AUG,
       description="SGD-Nesterov, one-cycle lr 0.2, wd 5e-4, flip + crop, label smoothing 0.1, bf16, 50 epochs."),
    # -- time to accuracy ------------------------------------------------------------------------------
    _r(name="fastnet.cifar10", model="fastnet", dataset="cifar10", epochs=16, label_smoothing=0.2, ema_decay=0.99,
       flip=True, **_FAST,
       description="Aiming at CIFAR-10 94% in under 30 minutes on a 2-core CPU with native bf16 (its run: 93.47% in "
                   "27 min on an AMD EPYC, class not recorded; in fp32 on an AVX2 CPU several times longer: zoo "
                   "train --estimate says how long here): FastNet with a whitened stem, "
                   "batch 512, SGD-Nesterov (momentum 0.85) with a triangular lr, BatchNorm shifts at 64x lr, "
                   "label smoothing 0.2, an EMA of the weights, flip + 2-pixel translate, bf16, channels_last, "
                   "16 epochs."),
    _r(name="fastnet.cifar10.la", model="fastnet", dataset="cifar10", epochs=17, label_smoothing=0.2,
       lookahead_steps=5, lookahead_decay=0.77, flip=True, alternate_flip=True, **_FAST,
       description="An experiment (its run: docs/runs/fastnet.cifar10.la-trial): fastnet.cifar10 with airbench's "
                   "other two ingredients, alternating flips and Lookahead (every 5 steps, decay rising to 0.77) "
                   "instead of an EMA, and 17 epochs (what 30 minutes allow on 2 AMD EPYC cores in bf16)."),
    _r(name="fastnet.cifar10.pr", model="fastnet", dataset="cifar10", epochs=20, label_smoothing=0.2,
       ema_decay=0.99, flip=True, low_res=28, low_res_epochs=12, **_FAST,
       description="An experiment (its full-data run, in fp32 on a Zen 1: docs/runs/fastnet.cifar10.pr-fp32, "
                   "93.72%, short of 94%): fastnet.cifar10 with progressive resizing, the first 12 of 20 epochs on "
                   "images resized to 28x28 (FastNet's 3x3 final pool needs at least 25). On the first 10,240 "
                   "training images, side by side on an AMD EPYC (Zen 1, fp32, 1 thread each): 84.06% vs "
                   "fastnet.cifar10's 82.52%, in 1.07x its training time."),
    _r(name="fastnet.cifar10.pr26", model="fastnet", dataset="cifar10", epochs=21, label_smoothing=0.2,
       ema_decay=0.99, flip=True, alternate_flip=True, low_res=26, low_res_epochs=13, eval_every=7, **_FAST,
       description="fastnet.cifar10's released recipe since its 93.78% (its run: docs/runs/fastnet.cifar10; "
                   "29.0 min in bf16 on an AMD EPYC Zen 4, 2 threads; it aimed at 94%): fastnet.cifar10.pr "
                   "with its low-resolution epochs at 26x26 (0.66x the pixels of 32x32), 13 of them, buying a "
                   "21st epoch in the same time, and alternating flips."),
    _r(name="fastnet_mnist.mnist", model="fastnet_mnist", dataset="mnist", epochs=2, label_smoothing=0.1, **_FAST,
       description="MNIST to 99% in 37 s on 2 cores of an AMD EPYC in bf16 (class not recorded): fastnet.cifar10's "
                   "recipe on the narrow "
                   "FastNet, 2-pixel translations (no flips: digits are not symmetric), 2 epochs."),
    # -- headline checkpoints: long one-cycle runs, trained across sessions with --max-minutes/--resume -------
    _r(name="resnet18.cifar10.e40", model="resnet18", epochs=40, batch_size=128, lr=0.1, ema_decay=0.999,
       eval_every=2, **_LONG_CIFAR,
       description="40 epochs of one-cycle SGD-Nesterov (lr 0.1, wd 5e-4), label smoothing 0.1, flip + crop, "
                   "an EMA of the weights, bf16, batch 128 (10% more images/s than 256 on the AMD EPYC): "
                   "aiming at 95%."),
    _r(name="resnet18.cifar10.e60", model="resnet18", epochs=60, batch_size=128, lr=0.1, ema_decay=0.999,
       eval_every=2, cutout=16, **_LONG_CIFAR,
       description="resnet18.cifar10.e40 with cutout (16 px) on top of flip + crop and 60 epochs, as "
                   "vgg19_bn.cifar10.e60 did for vgg19_bn: aiming above 95%."),
    _r(name="vgg19_bn.cifar10.e40", model="vgg19_bn", epochs=40, batch_size=256, lr=0.1, ema_decay=0.998,
       eval_every=2, **_LONG_CIFAR,
       description="40 epochs of one-cycle SGD-Nesterov (lr 0.1, wd 5e-4), label smoothing 0.1, flip + crop, "
                   "an EMA of the weights, bf16: aiming at 94%."),
    _r(name="vgg19_bn.cifar10.e60", model="vgg19_bn", epochs=60, batch_size=256, lr=0.1, ema_decay=0.998,
       eval_every=2, cutout=16, **_LONG_CIFAR,
       description="vgg19_bn.cifar10.e40 with cutout (16 px) on top of flip + crop and 60 epochs: the 40-epoch run "
                   "fit its training set (99.4% train top-1) and stopped at 92.75%; aiming at 94%."),
    _r(name="resnet56.cifar10", model="resnet56", epochs=100, batch_size=128, lr=0.2, ema_decay=0.999,
       eval_every=5, **_LONG_CIFAR,
       description="100 epochs of one-cycle SGD-Nesterov (lr 0.2, wd 5e-4), label smoothing 0.1, flip + crop, "
                   "an EMA of the weights, bf16: aiming at 94% (He et al.: 93.03% after 164 epochs)."),
    _r(name="resnet20.cifar10.e150", model="resnet20", epochs=150, batch_size=128, lr=0.2, ema_decay=0.999,
       eval_every=10, **_LONG_CIFAR,
       description="resnet56.cifar10's recipe (one-cycle SGD-Nesterov, lr 0.2, label smoothing 0.1, flip + crop, an "
                   "EMA of the weights) over 150 epochs for resnet20: aiming above chenyaofo's 92.60%; released as "
                   "resnet20.cifar10 at 92.78% (the 50-epoch recipe reached 91.71%). "
                   "About 5 hours in fp32 on an AVX2 AMD EPYC Zen 3 (about 450 "
                   "images/s measured there), 2.4 h in bf16 on a Zen 4 (zoo train --estimate), across sessions."),
    _r(name="resnet32.cifar10.e150", model="resnet32", epochs=150, batch_size=128, lr=0.2, ema_decay=0.999,
       eval_every=10, **_LONG_CIFAR,
       description="resnet20.cifar10.e150's recipe (150 epochs of one-cycle SGD-Nesterov, lr 0.2, label smoothing "
                   "0.1, flip + crop, an EMA of the weights, bf16) for resnet32: aiming above chenyaofo's 93.53%; "
                   "trained across sessions with --max-minutes and --resume."),
    # -- what a CPU hour buys: short runs side by side (issue 39) ------------------------------------------
    _r(name="resnet20.cifar10.base-trial", model="resnet20", epochs=15, batch_size=128, lr=0.2, ema_decay=0.999,
       eval_every=5, **_LONG_CIFAR,
       description="An experiment: resnet20.cifar10.e150's recipe cut to 15 epochs, the baseline that "
                   "resnet20.cifar10.kd-trial is measured against (same data order and augmentation)."),
    _r(name="resnet20.cifar10.kd-trial", model="resnet20", epochs=15, batch_size=128, lr=0.2, ema_decay=0.999,
       eval_every=5, teacher="resnet18.cifar10", distill_weight=0.9, distill_temperature=4.0, **_LONG_CIFAR,
       description="An experiment: resnet20.cifar10.base-trial distilled from resnet18.cifar10 (95.45%): 0.9 of "
                   "the loss from its soft targets at temperature 4, computed once per stored image and its "
                   "mirror (zoo.train.distill)."),
    *(_r(name=f"{arch}.cifar10", model=arch, epochs=100, batch_size=128, lr=0.2, ema_decay=0.999, eval_every=5,
         **_LONG_CIFAR, description=f"resnet56.cifar10's recipe (100 epochs of one-cycle SGD-Nesterov, lr 0.2, label "
                     f"smoothing 0.1, flip + crop, an EMA of the weights, bf16) for {arch}: aiming above {bar}.")
      for arch, bar in (("resnet32", "92.6%"), ("resnet44", "93.1%"), ("resnet110", "93.7%"))),
    _r(name="he2016", dataset="cifar10", epochs=164, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9,
       weight_decay=1e-4, schedule="step", milestones=(82, 123), gamma=0.1, flip=True, crop_pad=4,
       source="He et al. 2016, section 4.2 (64k iterations at batch 128, lr divided by 10 at 32k and 48k)",
       description="He et al.'s CIFAR recipe."),
    _r(name="fast_onecycle", dataset="cifar10", epochs=10, batch_size=256, optimizer="sgd", lr=0.2, momentum=0.9,
       nesterov=True, weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, precision="bf16",
       channels_last=True, source="zoo", **_CIFAR_AUG,
       description="A few epochs for big CIFAR models on a CPU: one-cycle, bf16, channels_last."),
    _r(name="vgg19_bn.cifar10", model="vgg19_bn", dataset="cifar10", epochs=3, batch_size=256, optimizer="sgd",
       lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1,
       precision="bf16", channels_last=True, eval_every=3, source="zoo", **_CIFAR_AUG,
       description="fast_onecycle cut to 3 epochs (what a 2-core CPU session allows): one-cycle lr 0.2, bf16."),
    _r(name="resnet18.cifar10", model="resnet18", dataset="cifar10", epochs=2, batch_size=256, optimizer="sgd",
       lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1,
       precision="bf16", channels_last=True, eval_every=2, source="zoo", **_CIFAR_AUG,
       description="fast_onecycle cut to 2 epochs (what a 2-core CPU session allows): one-cycle lr 0.2, bf16."),
)}


def list_recipes() -> list[str]:
    return sorted(RECIPES)


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        close = difflib.get_close_matches(name, RECIPES, n=3, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}?" if close else f"; known: {', '.join(list_recipes())}"
        raise UnknownModelError(f"unknown recipe {name!r}{hint}") from None


def _coerce(field_type: Any, default: Any, raw: str, key: str) -> Any:
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            return tuple(float(v) for v in raw.replace(",", " ").split())
        return raw
    except ValueError:
        raise InvalidArgumentError(f"--set {key}={raw}: expected {type(default).__name__}") from None


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["lr=0.1", "epochs=3"]`` -> typed dict; unknown keys raise with close matches."""
    fields = {f.name: f for f in dataclasses.fields(Recipe)}
    defaults = Recipe()
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InvalidArgumentError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3)
            hint = f"; did you mean: {', '.join(close)}?" if close else ""
            raise InvalidArgumentError(f"unknown recipe key {key!r}{hint}")
        out[key] = _coerce(fields[key].type, getattr(defaults, key), raw.strip(), key)
    return out


def resolve_recipe(name: str, overrides: dict[str, Any] | None = None, *, model: str | None = None) -> Recipe:
    """The named recipe with ``overrides`` applied (and ``model`` set when given)."""
    recipe = get_recipe(name)
    changes = dict(overrides or {})
    if model is not None:
        changes["model"] = model
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(Recipe)})
    if unknown:
        raise InvalidArgumentError(f"unknown recipe keys: {', '.join(unknown)}")
    return dataclasses.replace(recipe, **changes)
