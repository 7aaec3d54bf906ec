"""Evaluation and `zoo-eval`: the embedded sample offline, the real test sets with ZOO_DATA, third-party weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo
import zoo.runners
from conftest import require_dataset
from zoo.cli import cli
from zoo.data.datasets import load_sample
from zoo.evaluate import evaluate_model
from zoo.scoring import evaluate

AKAMASTER_MEAN = "0.485,0.456,0.406"  # the ImageNet statistics akamaster/pytorch_resnet_cifar10 normalises with
AKAMASTER_STD = "0.229,0.224,0.225"


def _akamaster_th(path: Path, seed: int = 0) -> Path:
    """A resnet20 state dict saved the way akamaster/pytorch_resnet_cifar10 saves its checkpoints."""
    torch.manual_seed(seed)
    sd = zoo.create("resnet20").state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "best_prec1": 91.7, "epoch": 200}, path)
    return path


def test_metrics_are_consistent_on_the_sample() -> None:
    sample = load_sample("cifar10")
    torch.manual_seed(0)
    m = evaluate(zoo.create("lenet_cifar"), sample, batch_size=300)
    confusion = torch.tensor(m["confusion"])
    assert m["num_images"] == 1000 == confusion.sum()
    assert m["correct"] == confusion.trace()
    assert all(c["images"] == 100 for c in m["per_class"])
    assert m["top1"] <= m["top5"] <= 100


def test_batch_size_does_not_change_results() -> None:
    sample = load_sample("mnist")
    a = evaluate(_mlp(), sample, batch_size=1000)
    b = evaluate(_mlp(), sample, batch_size=37)
    assert a["correct"] == b["correct"] and a["confusion"] == b["confusion"]
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def _mlp() -> torch.nn.Module:
    torch.manual_seed(1)
    return zoo.create("mlp_60_40_20_bn")


def test_zoo_eval_falls_back_to_the_sample_and_says_so(tmp_path: Path) -> None:
    env = dict(os.environ, ZOO_DATA=str(tmp_path / "empty"))
    proc = subprocess.run([sys.executable, "-m", "zoo", "eval", "--model", "resnet20", "cifar10", "--no-progress"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "embedded sample: 1,000 images" in proc.stdout
    assert "not the full test set" in proc.stdout


def test_no_sample_flag_fails_with_the_fix(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["eval", "-m", "resnet20", "cifar10", "--no-sample", "--data-dir",
                                      str(tmp_path), "--no-progress"])
    assert result.exit_code != 0
    assert "--download" in str(result.exception) and "test_batch" in str(result.exception)


def test_bad_inputs_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(zoo.InvalidArgumentError, match="cannot take cifar10 input of shape 3x32x32"):
        evaluate_model("mlp_60_40_20_bn", "cifar10", data_dir=tmp_path)
    with pytest.raises(zoo.InvalidArgumentError, match="3 values"):
        evaluate_model("resnet20", "cifar10", mean=(0.5,), data_dir=tmp_path)
    with pytest.raises(zoo.DatasetError, match="unknown dataset"):
        evaluate_model("resnet20", "cifar11")
    if not torch.cuda.is_available():
        with pytest.raises(zoo.InvalidArgumentError, match="no CUDA device"):
            evaluate_model("resnet20", "cifar10", device="cuda")


def test_confusion_png_and_json(tmp_path: Path) -> None:
    png = tmp_path / "cm.png"
    result = CliRunner().invoke(cli, ["eval", "-m", "resnet20", "cifar10", "--limit", "200", "--json",
                                      "--confusion", str(png), "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["num_images"] == 200 and out["is_sample"]
    assert sum(map(sum, out["confusion"])) == 200
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=[pytest.mark.full_data, pytest.mark.slow])],
                         ids=["sample", "full"])
def test_third_party_th_cli_equals_api(tmp_path: Path, full: bool) -> None:
    if full:
        require_dataset("cifar10")
        data_dir = os.environ["ZOO_DATA"]
    else:
        data_dir = str(tmp_path / "none")
    th = _akamaster_th(tmp_path / "resnet20-12fca82f.th")
    args = ["eval", "-m", "resnet20", "cifar10", "--weights", str(th), "--mean", AKAMASTER_MEAN, "--std",
            AKAMASTER_STD, "--json", "--data-dir", data_dir]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    cli_out = json.loads(result.output)
    api = evaluate_model("resnet20", "cifar10", weights=str(th), mean=(0.485, 0.456, 0.406),
                         std=(0.229, 0.224, 0.225), data_dir=data_dir)
    assert cli_out["num_images"] == api.num_images == (10_000 if full else 1_000)
    assert cli_out["correct"] == api.correct and cli_out["confusion"] == api.confusion
    assert cli_out["mean"] == [0.485, 0.456, 0.406]


@pytest.mark.full_data
def test_full_test_sets_are_evaluated() -> None:
    require_dataset("mnist")
    require_dataset("cifar10")
    r = evaluate_model("mlp_60_40_20_bn", "mnist", limit=None, batch_size=1000)
    assert r.num_images == 10_000 and not r.is_sample
    assert [c["images"] for c in r.per_class] == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    r = evaluate_model("lenet_cifar", "cifar10", batch_size=1000)
    assert r.num_images == 10_000 and not r.is_sample and r.data_verification.startswith("content fingerprint")


def test_backend_choice_default_auto_and_errors(tmp_path: Path) -> None:
    none = str(tmp_path / "none")
    auto = evaluate_model("resnet20", "cifar10", data_dir=none, limit=64)
    expected = zoo.runners.resolve_auto("cpu", 256, zoo.model_info("resnet20").gflops, images=64)
    assert auto.backend == "auto" and auto.setting == expected
    assert ("bf16" in auto.setting) == any("--backend eager gives the exact fp32 result" in n for n in auto.notes)
    eager = evaluate_model("resnet20", "cifar10", data_dir=none, limit=64, backend="eager")
    folded = evaluate_model("resnet20", "cifar10", data_dir=none, limit=64, backend="fold-bn")
    assert eager.setting == "eager" and folded.setting == "fold-bn"
    assert folded.loss == pytest.approx(eager.loss, rel=1e-4)  # folding BatchNorm is exact up to fp32 rounding
    with pytest.raises(zoo.InvalidArgumentError, match="unknown backend 'fast'"):
        evaluate_model("resnet20", "cifar10", data_dir=none, backend="fast")
    with pytest.raises(zoo.InvalidArgumentError, match="--artefact needs --backend"):
        evaluate_model("resnet20", "cifar10", data_dir=none, backend="eager", artefact="x.onnx")
    result = CliRunner().invoke(cli, ["eval", "-m", "resnet20", "cifar10", "--limit", "64", "--data-dir", none,
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"auto ({auto.setting})" in result.output
