"""Released checkpoints as Hugging Face Hub model folders (``zoo hub export``), read back by ``zoo.create``
(``local-dir:``, ``hf-hub:`` through the Hub cache, offline) and by timm's own loader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import CheckpointError, InvalidArgumentError, UnknownModelError, ZooError
from zoo.interop.hf_hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, export_folder
from zoo.weights import sha256_file

NAME = "resnet20.cifar10"
WEIGHTS = zoo.get_weights(NAME)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hub") / "resnet20"
    proc = subprocess.run([sys.executable, "-m", "zoo", "hub", "export", NAME, str(out), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"] == [str(out / f) for f in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)]
    return out


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


def test_export_writes_the_released_file_and_a_timm_config(folder: Path) -> None:
    assert sorted(os.listdir(folder)) == sorted([WEIGHTS_NAME, CONFIG_NAME, CARD_NAME])
    assert sha256_file(folder / WEIGHTS_NAME) == WEIGHTS.sha256
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["architecture"] == "zoo_resnet20" and config["num_classes"] == 10 and config["num_features"] == 64
    assert config["label_names"] == list(WEIGHTS.classes or zoo.data.datasets.get_dataset_spec("cifar10").classes)
    cfg = WEIGHTS.data_config()
    assert config["pretrained_cfg"]["input_size"] == list(cfg["input_size"])
    assert (config["pretrained_cfg"]["mean"], config["pretrained_cfg"]["std"]) == (list(cfg["mean"]), list(cfg["std"]))
    assert config["zoo"] == {"weights": NAME, "arch": "resnet20", "sha256": WEIGHTS.sha256,
                             "file_name": WEIGHTS.file_name}


def test_model_card_numbers_come_from_the_registry(folder: Path) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(folder / CARD_NAME)
    assert (card.data.library_name, card.data.license, card.data.datasets) == ("timm", "mit", ["cifar10"])
    scores = {r.metric_type: (r.metric_value, r.dataset_type, r.dataset_split) for r in card.data.eval_results}
    assert scores == {"accuracy": (WEIGHTS.metrics.top1, "cifar10", "test"),
                      "top_5_accuracy": (WEIGHTS.metrics.top5, "cifar10", "test")}
    w = WEIGHTS
    for text in (f"{w.metrics.top1:.2f}%", w.sha256, w.recipe, w.hardware, f"{w.num_params:,}"):
        assert text in card.text, text


def test_local_dir_and_timm_load_the_same_model(folder: Path) -> None:
    import timm

    import zoo.interop.to_timm  # noqa: F401  (zoo's models in timm's registry)

    x = torch.randn(3, 3, 32, 32)
    reference = _outputs(zoo.create("resnet20", weights="default"), x)
    local = zoo.create(f"local-dir:{folder}")
    assert torch.equal(_outputs(local, x), reference)
    assert (local.pretrained_cfg["weights"], local.pretrained_cfg["source"]) == (NAME, f"local-dir:{folder}")
    assert torch.equal(_outputs(timm.create_model(f"local-dir:{folder}", pretrained=True), x), reference)
    assert local.get_classifier().out_features == 10
    assert zoo.create(f"local-dir:{folder}", num_classes=4).get_classifier().out_features == 4  # fine-tuning


@pytest.mark.slow
def test_a_folder_in_the_hub_cache_loads_offline_through_hf_hub(folder: Path, tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--zoo-resnet20"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for f in (CONFIG_NAME, WEIGHTS_NAME):
        (repo / "snapshots" / commit / f).write_bytes((folder / f).read_bytes())
    code = ("import sys, torch, zoo\n"
            "x = torch.randn(2, 3, 32, 32)\n"
            "a, b = zoo.create('hf-hub:acme/zoo-resnet20').eval(), zoo.create('resnet20', weights='default').eval()\n"
            "assert torch.equal(a(x), b(x)) and a.pretrained_cfg['weights'] == 'resnet20.cifar10'\n"
            "try:\n    zoo.create('hf-hub:acme/not-cached')\nexcept zoo.CheckpointError as e:\n    print(e)\n")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("cannot get hf-hub:acme/not-cached") and proc.stdout.count("\n") == 1, proc.stdout


def _copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in (CONFIG_NAME, WEIGHTS_NAME):
        (copy / f).write_bytes((folder / f).read_bytes())
    return copy


def test_a_changed_or_foreign_folder_is_refused_in_one_line(folder: Path, tmp_path: Path) -> None:
    copy = _copy(folder, tmp_path)
    data = bytearray((copy / WEIGHTS_NAME).read_bytes())
    data[-50] ^= 0xFF
    (copy / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"sha256 mismatch for {copy / WEIGHTS_NAME}: expected {WEIGHTS.sha256}"):
        zoo.create(f"local-dir:{copy}")
    config = json.loads((folder / CONFIG_NAME).read_text())
    for change, error in (({"architecture": "resnet50"}, ZooError),
                          ({"architecture": "zoo_resnet2O"}, UnknownModelError),
                          ({"zoo": {"sha256": "../../etc"}}, ZooError), ({"zoo": None}, ZooError)):
        (copy / CONFIG_NAME).write_text(json.dumps({**config, **change}))
        with pytest.raises(error) as info:
            zoo.create(f"local-dir:{copy}")
        assert "\n" not in str(info.value) and str(copy) in str(info.value) or error is UnknownModelError
    with pytest.raises(CheckpointError, match="no Hub folder"):
        zoo.create(f"local-dir:{tmp_path / 'absent'}")
    with pytest.raises(InvalidArgumentError, match="brings its own weights"):
        zoo.create(f"local-dir:{folder}", weights="default")
    with pytest.raises(InvalidArgumentError, match="holds other files"):
        export_folder(NAME, copy.parent)  # tmp_path holds the copy: not a Hub folder
