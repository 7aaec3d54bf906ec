"""zoo's layers, lowest first: the one table behind ``tests/test_imports.py`` and the README's Layout section.

A module may import modules of its own layer and of the layers below it, never above; the test reads every
import of every module (function-level imports included) and checks it against this table, and
``tools/gen_readme.py`` writes the README's Layout section from it. A name maps to the most specific entry:
an exact module name first, then ``package.*``.
"""

from __future__ import annotations

from typing import NamedTuple


class Layer(NamedTuple):
    name: str
    what: str
    modules: tuple[str, ...]


LAYERS = (
    Layer("base", "the public surface (`zoo.create`, `zoo.list_models`...: a lazy map, so `import zoo` loads no "
          "torch) and the errors", ("zoo", "zoo._version", "zoo.errors")),
    Layer("utils", "safe reading and atomic writing of files, the machine and its devices, figures",
          ("zoo.utils", "zoo.utils.*")),
    Layer("cards", "what a model, a dataset and a checkpoint are: specs, the weight cards and the registry (no "
          "torch on import); a card's preprocessing (`Weights.transforms()`)",
          ("zoo.specs", "zoo.metadata", "zoo.registry", "zoo.data.transforms")),
    Layer("data", "verified dataset splits, the embedded sample, image folders, augmentation",
          ("zoo.data", "zoo.data.*")),
    Layer("models", "one file per family with its config table; timm's models for small images",
          ("zoo.models", "zoo.models.*", "zoo.interop.from_timm")),
    Layer("weights", "the checkpoint format, where checkpoints are found, loading them into a model",
          ("zoo.weights", "zoo.weights.*")),
    Layer("building", "`create`, `model_info`, `pretrained_cfg`; zoo's models in timm's registry",
          ("zoo.builder", "zoo.interop", "zoo.interop.to_timm", "zoo.interop.hf_hub")),
    Layer("scoring", "top-1, top-5, loss, per-class accuracy, confusion and calibration of a model on a split",
          ("zoo.calibration", "zoo.scoring")),
    Layer("runners", "the only place a backend spec, `auto`, int8 or an exported file becomes a callable; the "
          "serializers", ("zoo.runners", "zoo.runners.*")),
    Layer("training", "recipes, optimizers, the training loop, run directories",
          ("zoo.train", "zoo.train.*")),
    Layer("jobs", "names in, a result dataclass out: `zoo-eval` (and its corruptions), predict, export and int8, "
          "benchmarks and tuning `auto`",
          ("zoo.evaluate", "zoo.robustness", "zoo.predict", "zoo.deploy", "zoo.benchmark",
           "zoo.benchmark.*")),
    Layer("studies", "the seed reports' studies and the visualisations", ("zoo.studies", "zoo.studies.*")),
    Layer("cli", "the commands: options in, one job called, text or `--json` out", ("zoo.cli", "zoo.cli.*",
                                                                                     "zoo.__main__")),
)


def layer_of(module: str) -> int:
    """The index in ``LAYERS`` of ``module`` (KeyError when the table does not place it)."""
    for i, layer in enumerate(LAYERS):
        if module in layer.modules:
            return i
    best = None
    for i, layer in enumerate(LAYERS):
        for pattern in layer.modules:
            prefix = pattern.removesuffix("*")
            if pattern.endswith(".*") and module.startswith(prefix) and (best is None or len(prefix) > best[1]):
                best = (i, len(prefix))
    if best is None:
        raise KeyError(module)
    return best[0]
