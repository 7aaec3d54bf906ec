"""zoo.studies.analyze and `zoo analyze landscape`: a tiny study end to end, the probe's side effects, the config."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.data.datasets import Split, load_sample
from zoo.studies.analyze import PRESETS, LandscapeConfig, landscape_config, redraw_landscape, run_landscape

FIGURES = ("loss_landscape.png", "gradient_predictiveness.png", "beta_smoothness.png", "loss_curves.png")
pytestmark = pytest.mark.xdist_group("analyze")  # one worker runs the module's study once (module fixtures)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """These networks are tiny: one thread is as fast, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_split() -> Split:
    """512 CIFAR-10 images from the embedded sample, standing in for the training split."""
    sample = load_sample("cifar10")
    return dataclasses.replace(sample, images=sample.images[:512], labels=sample.labels[:512])


# Small conv nets without and with BatchNorm, so the study runs in seconds.
TINY = dict(models=("lenet_cifar", "lenet_cifar_bn"), lrs=(1e-3, 1e-4), steps=20, batch_size=8, probe_every=2)


@pytest.fixture(scope="module")
def tiny_study(tiny_split: Split, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("landscape")
    result = run_landscape(landscape_config("short", **TINY), out_dir=out, data=tiny_split, progress=False)
    return out, result


def test_tiny_study_writes_json_and_figures(tiny_study: tuple[Path, object]) -> None:
    out, result = tiny_study
    data = json.loads((out / "landscape.json").read_text())
    assert data["complete"] is True
    assert data["config"]["models"] == ["lenet_cifar", "lenet_cifar_bn"] and data["config"]["steps"] == 20
    assert [(r["model"], r["lr"]) for r in data["runs"]] == [(m, lr) for m in TINY["models"] for lr in TINY["lrs"]]
    for run in data["runs"]:
        assert len(run["loss"]) == 20 and run["diverged_at"] is None
        assert run["probe_steps"] == list(range(0, 20, 2))
        for key in ("grad_change", "grad_change_last", "beta", "beta_last", "step_norm"):
            assert len(run[key]) == 10 and all(v is not None and v >= 0 for v in run[key])
        # beta is the gradient change per unit of parameter change
        assert run["beta"][3] == pytest.approx(run["grad_change"][3] / run["step_norm"][3])
        assert run["grad_change_last"][3] <= run["grad_change"][3] + 1e-9  # a part of the vector
    flags = {"narrower_loss_band", "smaller_gradient_change", "lower_beta"}
    for model in TINY["models"]:
        s = data["summary"][model]
        for part in ("all_steps", "second_half"):
            assert s[part]["loss_band_mean"] >= 0 and s[part]["beta_max"] > 0
            assert s[part]["beta_max"] >= s[part]["beta_mean_of_max"]
        assert set(s["final_loss"]) == {"0.001", "0.0001"} and s["diverged"] == {}
    effect = data["bn_effect"]
    assert set(effect) == flags | {"second_half", "verdict"} and set(effect["second_half"]) == flags
    assert effect["verdict"].startswith("BatchNorm shows") and "second half" in effect["verdict"]
    for name in FIGURES:
        assert (out / name).stat().st_size > 10_000
    assert sorted(Path(p).name for p in result.paths) == sorted(("landscape.json", *FIGURES))


def test_redraw_from_json_gives_the_same_summary(tiny_study: tuple[Path, object], tmp_path: Path) -> None:
    out, result = tiny_study
    again = redraw_landscape(out / "landscape.json", tmp_path)
    assert again.summary == result.summary and again.bn_effect == result.bn_effect
    assert all((tmp_path / name).exists() for name in FIGURES)


def test_probing_does_not_change_the_training_trajectory(tiny_split: Split, tmp_path: Path) -> None:
    # lenet_cifar_bn has Dropout2d: the probe must replay the step's dropout masks and leave the RNG as it was.
    base = dict(models=("lenet_cifar", "lenet_cifar_bn"), lrs=(1e-3,), steps=4, batch_size=8)
    every = run_landscape(landscape_config("short", probe_every=1, **base), out_dir=tmp_path / "a", data=tiny_split,
                          progress=False, figures=False)
    rarely = run_landscape(landscape_config("short", probe_every=100, **base), out_dir=tmp_path / "b",
                           data=tiny_split, progress=False, figures=False)
    for a, b in zip(every.runs, rarely.runs):
        assert a.loss == b.loss
        assert a.grad_change[0] == pytest.approx(b.grad_change[0])
        assert len(a.probe_steps) == 4 and b.probe_steps == [0]


def test_probe_sees_the_same_batch_and_dropout_masks(tiny_split: Split, tmp_path: Path) -> None:
    # With a vanishing step the gradient cannot change: unless the probe drew new dropout masks.
    config = landscape_config("short", models=("lenet_cifar", "lenet_cifar_bn"), lrs=(1e-12,), steps=2, batch_size=8,
                              probe_every=1)
    result = run_landscape(config, out_dir=tmp_path, data=tiny_split, progress=False, figures=False)
    for run in result.runs:
        assert max(run.grad_change) < 1e-4


def test_cli_redraws_and_prints_the_verdict(tiny_study: tuple[Path, object], tmp_path: Path) -> None:
    out, _ = tiny_study
    result = CliRunner().invoke(cli, ["analyze", "landscape", "--from-json", str(out / "landscape.json"),
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "lenet_cifar_bn" in result.output and "BatchNorm shows" in result.output


def test_presets_and_config_validation() -> None:
    short, full = PRESETS["short"], PRESETS["full"]
    assert short.models == full.models == ("vgga", "vgga_bn")
    assert short.lrs == full.lrs == (1e-3, 2e-3, 1e-4, 5e-4)  # report 002, section 2.2
    assert short.steps * short.batch_size < full.steps * full.batch_size
    assert full.steps == 25 * 390 and full.train_images == 0
    assert landscape_config("short", steps=None, lrs=(0.1,)).lrs == (0.1,)
    with pytest.raises(zoo.InvalidArgumentError, match="unknown landscape settings: epochs"):
        landscape_config("short", epochs=3)
    with pytest.raises(zoo.InvalidArgumentError, match="preset"):
        landscape_config("medium")
    with pytest.raises(zoo.InvalidArgumentError, match="two names"):
        LandscapeConfig(models=("vgga",))
    with pytest.raises(zoo.UnknownModelError):
        LandscapeConfig(models=("vgga", "vgga_bnn"))
