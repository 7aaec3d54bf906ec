"""Hugging Face Hub folders: a released checkpoint as a model repository that timm and ``huggingface_hub`` read.

``export_folder("resnet20.cifar10", DIR)`` writes the three files of such a repository, ready for
``huggingface-cli upload ORG/NAME DIR``:

- ``model.safetensors``: the released file itself (verified first), so its sha256 is the registry's;
- ``config.json``: timm's shape (``architecture`` is the timm name zoo registers, ``zoo_<arch>``;
  ``num_classes``, ``num_features``, ``label_names``, ``pretrained_cfg`` with input size, mean and std), plus a
  ``zoo`` object naming the checkpoint and its sha256;
- ``README.md``: a model card whose YAML front matter (``huggingface_hub.ModelCardData``: library, tags,
  datasets, licence, ``model-index`` with the recorded top-1 and top-5) and text come from the registry.

``zoo.create("local-dir:DIR")`` and ``zoo.create("hf-hub:ORG/NAME")`` (through ``hf_hub_download``, so
``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and the Hub cache behave as usual) read such a folder: the architecture
must be a zoo model, and the weights file must have the sha256 its config.json records, checked on the bytes
that are loaded. With ``zoo.interop.to_timm`` imported, ``timm.create_model("local-dir:DIR", pretrained=True)``
comes here too.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, InvalidArgumentError, summarize
from ..metadata import Weights, data_config
from ..registry import all_weights, get_entry, get_weights
from ..utils.fileio import atomic_write_bytes, atomic_write_text, json_field, read_json, regular_file
from .from_timm import TIMM_PREFIX

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "CARD_NAME", "export_folder", "hub_config", "model_card", "read_folder",
           "fetch_folder"]

_logger = logging.getLogger(__name__)

CONFIG_NAME, WEIGHTS_NAME, CARD_NAME = "config.json", "model.safetensors", "README.md"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DATASETS = {"cifar10": ("CIFAR-10", "cifar10"), "mnist": ("MNIST", "mnist")}  # card name, Hub dataset id


def hub_config(w: Weights, num_features: int) -> dict[str, Any]:
    """config.json for ``w``, in the shape timm's ``load_model_config_from_path`` reads."""
    c = data_config(w)
    pretrained = {"tag": w.tag, "input_size": list(c["input_size"]), "mean": list(c["mean"]), "std": list(c["std"]),
                  "interpolation": c["interpolation"], "crop_pct": c["crop_pct"], "crop_mode": c["crop_mode"],
                  "num_classes": c["num_classes"], "license": w.licence}
    return {"architecture": f"{TIMM_PREFIX}{w.arch}", "num_classes": c["num_classes"], "num_features": num_features,
            "label_names": list(c["classes"]), "pretrained_cfg": pretrained,
            "zoo": {"weights": w.name, "arch": w.arch, "sha256": w.sha256, "file_name": w.file_name}}


def model_card(w: Weights) -> str:
    """README.md for ``w``: YAML front matter with the recorded scores (``model-index``), then the card's text."""
    from huggingface_hub import EvalResult, ModelCardData

    name, hub_dataset = _DATASETS.get(w.dataset, (w.dataset, w.dataset))
    results = [EvalResult(task_type="image-classification", dataset_type=hub_dataset, dataset_name=name,
                          dataset_split=w.metrics.split, metric_type=kind, metric_name=label, metric_value=value)
               for kind, label, value in (("accuracy", "Top-1 accuracy", w.metrics.top1),
                                          ("top_5_accuracy", "Top-5 accuracy", w.metrics.top5)) if value is not None]
    data = ModelCardData(library_name="timm", license=w.licence.lower(), datasets=[hub_dataset],
                         pipeline_tag="image-classification", tags=["image-classification", "timm", "zoo", w.dataset],
                         model_name=f"{TIMM_PREFIX}{w.name}", eval_results=results)
    return f"---\n{data.to_yaml()}\n---\n\n{_card_text(w, name)}"


def _card_text(w: Weights, dataset: str) -> str:
    top5 = "" if w.metrics.top5 is None else f", top-5 {w.metrics.top5:.2f}%"
    return "\n".join([
        f"# {w.name}", "",
        f"zoo's `{w.arch}` trained on {dataset}: top-1 **{w.metrics.top1:.2f}%**{top5} on the "
        f"{w.metrics.num_images:,} images of the {w.metrics.split} split, measured from this very file "
        f"(sha256 `{w.sha256}`). {w.num_params:,} parameters, {w.gflops:.4f} GFLOPs per image.", "",
        f"Trained with zoo's recipe `{w.recipe}` in {w.train_time_s / 60:.1f} min on {w.hardware}.", "",
        "## Use", "", "```python", "import zoo", 'model = zoo.create("hf-hub:ORG/NAME")  # or "local-dir:PATH"',
        "import timm, zoo.interop.to_timm  # timm's loader, with zoo's models registered",
        'model = timm.create_model("hf-hub:ORG/NAME", pretrained=True)', "```", "",
        "## Reproduce and verify", "", "```bash", f"zoo train --recipe {w.recipe}   # trains it again",
        f"zoo-eval --model {w.arch} {w.dataset} --weights {w.name}   # scores the released file", "```", ""])


def export_folder(name: str, out: str | os.PathLike[str], *, progress: bool = True) -> Path:
    """Write the Hub folder of the released checkpoint ``name`` (``arch.tag``) into ``out``; returns ``out``.

    Raises:
        UnknownModelError: ``name`` is not a released checkpoint.
        InvalidArgumentError: ``out`` is a file, or a folder holding other files than a Hub folder's.
        CheckpointError: the released file cannot be found or fails its sha256 check.
    """
    from ..weights import resolve

    w = get_weights(name)
    folder = _empty_or_ours(Path(out).expanduser())
    source = resolve(w, w.arch, progress=progress).path  # verified
    head = get_entry(w.arch).fn().get_classifier()  # the registry's builder: no import of zoo.builder here
    atomic_write_bytes(folder / WEIGHTS_NAME, source.read_bytes())
    atomic_write_text(folder / CONFIG_NAME, json.dumps(hub_config(w, head.in_features), indent=2) + "\n")
    atomic_write_text(folder / CARD_NAME, model_card(w))
    _logger.info("wrote the Hub folder of %s to %s", w.name, folder)
    return folder


def _empty_or_ours(folder: Path) -> Path:
    if folder.exists() and not folder.is_dir():
        raise InvalidArgumentError(f"cannot write a Hub folder to {folder}: it is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    other = sorted(set(os.listdir(folder)) - {CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, ".gitattributes", ".git"})
    if other:
        raise InvalidArgumentError(f"cannot write a Hub folder to {folder}: it holds other files "
                                   f"({', '.join(other[:5])}); choose an empty or new folder")
    return folder


def read_folder(folder: str | os.PathLike[str]) -> tuple[str, Path, str, Weights | None]:
    """(zoo architecture, weights file, its recorded sha256, the registered checkpoint with that sha256 or None)
    of a Hub folder; anything missing or malformed is a one-line error naming the folder and the field."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"no Hub folder at {folder}: local-dir: names a folder holding {CONFIG_NAME} and "
                              f"{WEIGHTS_NAME} (zoo hub export writes one)")
    path = folder / CONFIG_NAME
    config = read_json(path, "a Hub model config")
    arch = json_field(config, "architecture", str, path, what="a Hub model config",
                      check=lambda a: a.startswith(TIMM_PREFIX))[len(TIMM_PREFIX):]
    get_entry(arch)  # an unknown architecture: UnknownModelError, with close names
    own = json_field(config, "zoo", dict, path, what="a Hub model config written by zoo")
    sha = json_field(own, "sha256", str, path, what="a Hub model config", check=_SHA256.fullmatch)
    weights = regular_file(folder / WEIGHTS_NAME, "Hub weights file")
    return arch, weights, sha, next((w for w in all_weights() if w.sha256 == sha and w.arch == arch), None)


def fetch_folder(repo_id: str) -> Path:
    """The local folder of the Hub model ``repo_id`` (``ORG/NAME``, optionally ``@revision``): its config.json and
    model.safetensors through ``hf_hub_download`` (the Hub cache; ``HF_HUB_OFFLINE=1`` uses only the cache)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HFValidationError

    repo, _, revision = repo_id.partition("@")
    try:
        paths = [hf_hub_download(repo, f, revision=revision or None) for f in (CONFIG_NAME, WEIGHTS_NAME)]
    except HFValidationError as exc:
        raise InvalidArgumentError(f"invalid Hub model id {repo_id!r}: {summarize(exc)}") from None
    except (OSError, ValueError) as exc:  # not found, offline and not cached, a refused or failed connection
        raise CheckpointError(f"cannot get hf-hub:{repo_id}: {summarize(exc)}") from None
    return Path(paths[0]).parent
