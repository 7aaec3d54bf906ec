"""Calibration (zoo.calibration): ECE, Brier and the reliability bins against hand computations, temperature
scaling on an over-confident model, and the calibration in zoo-eval and zoo calibrate."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from conftest import require_dataset
from zoo.calibration import BINS, calibration_metrics, expected_calibration_error, fit_temperature, reliability_bins
from zoo.data.splits import Split
from zoo.scoring import evaluate
from zoo.specs import get_dataset_spec


def test_ece_is_the_image_weighted_gap_of_equal_width_bins() -> None:
    # four images at 0.9 confidence, three right (bin (13/15, 14/15]); one at 0.3, wrong (bin (4/15, 5/15])
    bins = reliability_bins(torch.tensor([0.9, 0.9, 0.9, 0.9, 0.3]), torch.tensor([1, 1, 1, 0, 0]).bool())
    assert len(bins) == BINS and sum(b["images"] for b in bins) == 5
    assert bins[13]["images"] == 4 and bins[13]["accuracy"] == pytest.approx(75) and bins[13]["confidence"] == \
        pytest.approx(90)
    assert bins[4]["images"] == 1 and bins[4]["accuracy"] == 0 and bins[4]["confidence"] == pytest.approx(30)
    assert expected_calibration_error(bins) == pytest.approx(4 / 5 * 15 + 1 / 5 * 30)  # 18 points


def test_full_confidence_falls_in_the_last_bin_and_none_in_the_first() -> None:
    edges = reliability_bins(torch.tensor([1.0, 0.5, 0.0]), torch.tensor([True, True, False]))
    assert [b["images"] for b in edges] == [1] + [0] * 6 + [1] + [0] * 6 + [1]  # 0.5 in (7/15, 8/15]


def test_brier_and_nll_by_hand() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.25, 0.25]])
    m = calibration_metrics(probs.log(), torch.tensor([0, 2]))
    assert m["brier"] == pytest.approx(((0.3**2 + 0.2**2 + 0.1**2) + (0.5**2 + 0.25**2 + 0.75**2)) / 2)
    assert m["nll"] == pytest.approx(-(math.log(0.7) + math.log(0.25)) / 2)


def _synthetic(n: int, scale: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose labels are drawn from softmax(z): calibrated at temperature ``scale`` when given ``scale * z``."""
    gen = torch.Generator().manual_seed(seed)
    z = 2 * torch.randn(n, 10, generator=gen)
    labels = torch.multinomial(F.softmax(z, dim=1), 1, generator=gen).squeeze(1)
    return scale * z, labels


def test_temperature_scaling_lowers_held_out_nll_of_an_over_confident_model() -> None:
    logits, labels = _synthetic(20_000, 3.0, seed=0)  # three times too confident
    t = fit_temperature(logits[:10_000], labels[:10_000])
    assert t == pytest.approx(3.0, rel=0.05)
    before, after = (calibration_metrics(logits[10_000:], labels[10_000:], temp) for temp in (1.0, t))
    assert after["nll"] < before["nll"] - 0.1 and after["ece"] < before["ece"] / 3
    scaled = F.cross_entropy(logits[:10_000] / t, labels[:10_000])
    for other in (0.9 * t, 1.1 * t):  # the fitted value is the minimum
        assert F.cross_entropy(logits[:10_000] / other, labels[:10_000]) > scaled


def test_fit_temperature_refuses_empty_input() -> None:
    with pytest.raises(zoo.InvalidArgumentError, match="non-empty"):
        fit_temperature(torch.zeros(0, 10), torch.zeros(0, dtype=torch.int64))


def test_evaluate_reports_the_calibration_of_its_logits_and_keeps_top1_under_a_temperature() -> None:
    logits, labels = _synthetic(600, 2.0, seed=1)
    spec = get_dataset_spec("cifar10")
    images = torch.zeros(600, 3, 32, 32, dtype=torch.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = torch.arange(600) % 256, torch.arange(600) // 256  # each its index
    split = Split(spec, "test", images, labels, False, "none")

    def model(x: torch.Tensor) -> torch.Tensor:  # each image's row of the fixed logits
        index = (x[:, 0, 0, 0] * 255).round().long() + 256 * (x[:, 0, 0, 1] * 255).round().long()
        return logits[index]

    plain = evaluate(model, split, batch_size=100, mean=(0.0,) * 3, std=(1.0,) * 3)
    expected = calibration_metrics(logits, labels)
    assert plain["ece"] == pytest.approx(expected["ece"]) and plain["brier"] == pytest.approx(expected["brier"])
    assert plain["loss"] == pytest.approx(expected["nll"], rel=1e-6)
    scaled = evaluate(model, split, batch_size=100, mean=(0.0,) * 3, std=(1.0,) * 3, temperature=2.0)
    assert scaled["top1"] == plain["top1"] and scaled["loss"] < plain["loss"] and scaled["temperature"] == 2.0
    with pytest.raises(zoo.InvalidArgumentError, match="temperature"):
        evaluate(model, split, temperature=0.0)


def _zoo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.full_data
def test_zoo_eval_reports_ece_nll_brier_with_bins_and_a_reliability_diagram(tmp_path: Path) -> None:
    require_dataset("cifar10")
    run = _zoo("eval", "-m", "resnet20", "cifar10", "--limit", "500", "--backend", "eager", "--reliability",
               "r.png", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    r = json.loads(run.stdout)
    assert len(r["calibration_bins"]) == 15 and sum(b["images"] for b in r["calibration_bins"]) == 500
    assert r["ece"] == pytest.approx(expected_calibration_error(r["calibration_bins"])) and r["ece"] > 0
    assert 0 < r["brier"] < 2 and r["loss"] > 0 and r["temperature"] == 1.0
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = _zoo("eval", "-m", "resnet20", "cifar10", "--limit", "10", "--temperature", "warm", cwd=tmp_path)
    assert bad.returncode != 0 and "--temperature must be a number > 0 or 'fitted'" in bad.stderr


@pytest.mark.full_data
def test_zoo_calibrate_fits_on_training_images_and_says_they_were_seen(tmp_path: Path) -> None:
    require_dataset("mnist", "train")
    from zoo.evaluate import calibrate_model

    r = calibrate_model("mlp_60_40_20_bn", holdout=2000)
    assert r.weights == "mlp_60_40_20_bn.mnist" and r.holdout_images == 2000 and r.test_images == 10_000
    assert r.holdout_seen_in_training is True and "not truly held out" in r.notes[0]
    assert r.holdout_nll[1] <= r.holdout_nll[0]  # the fitted temperature minimises the held-out NLL
    assert r.before["nll"] == pytest.approx(zoo.get_weights("mlp_60_40_20_bn.mnist").metrics.loss, abs=1e-4)
    assert r.after["ece"] != r.before["ece"] and len(r.after["calibration_bins"]) == 15
    run = _zoo("calibrate", "mlp_60_40_20_bn", "--holdout", "2000", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"card field: temperature={r.temperature:.4f}" in run.stdout and "ECE" in run.stdout


def test_every_released_checkpoint_has_a_calibration_record_and_its_card_the_fitted_temperature() -> None:
    record = json.loads((Path(__file__).resolve().parent.parent / "benchmarks" / "results" /
                         "calibration.json").read_text())
    rows = {row["weights"]: row for row in record["rows"]}
    for w in zoo.list_weights():
        assert w.name in rows, f"{w.name} has no calibration row: python tools/calibration_record.py {w.name}"
        row = rows[w.name]
        assert row["sha256"] == w.sha256, f"{w.name}: the row is for another file; rerun tools/calibration_record.py"
        assert row["top1"] == w.metrics.top1 and row["test_images"] == w.metrics.num_images
        assert w.temperature == row["temperature"], f"{w.name}: paste temperature={row['temperature']} into its card"
