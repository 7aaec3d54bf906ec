"""Trainer: schedules, recipes, exact resume, and data parallel agreement (real MNIST, small slices)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
import zoo.train as train_mod
from zoo.recipes import Recipe, get_recipe, parse_overrides, resolve_recipe
from zoo.train import lr_at, train

from conftest import require_dataset


def _tiny(**changes: object) -> Recipe:
    base = Recipe(name="tiny", model="mlp_60_40_20_bn", dataset="mnist", epochs=2, batch_size=64,
                  optimizer="adam", lr=1e-3, schedule="onecycle", train_limit=1024, precision="bf16")
    return dataclasses.replace(base, **changes)


def test_schedules() -> None:
    r = Recipe(lr=1.0, epochs=10, schedule="step", milestones=(5, 8), gamma=0.1)
    assert [round(lr_at(r, e * 10, 10), 6) for e in (0, 4, 5, 8, 9)] == [1.0, 1.0, 0.1, 0.01, 0.01]
    r = Recipe(lr=1.0, epochs=10, schedule="onecycle", onecycle_pct=0.3)
    lrs = [lr_at(r, s, 10) for s in range(100)]
    assert lrs.index(max(lrs)) == 30 and lrs[0] == pytest.approx(0.04) and lrs[-1] < 1e-3
    r = Recipe(lr=1.0, epochs=10, schedule="cosine", warmup_epochs=1)
    assert lr_at(r, 0, 10) == pytest.approx(0.1) and lr_at(r, 10, 10) == pytest.approx(1.0)
    r = Recipe(lr=1.0, epochs=10, schedule="exponential", gamma=0.5)
    assert lr_at(r, 25, 10) == pytest.approx(0.25)


def test_overrides_are_typed_and_unknown_keys_rejected() -> None:
    r = resolve_recipe("lenet_cifar.cifar10", parse_overrides(["epochs=3", "flip=false", "lr=0.01"]))
    assert (r.epochs, r.flip, r.lr) == (3, False, 0.01)
    with pytest.raises(zoo.InvalidArgumentError, match="epochs"):
        parse_overrides(["epoch=3"])
    with pytest.raises(zoo.InvalidArgumentError, match="optimizer"):
        resolve_recipe("lenet_cifar.cifar10", {"optimizer": "lbfgs"})
    with pytest.raises(zoo.UnknownModelError, match="report003"):
        get_recipe("report03")


def test_every_named_recipe_is_valid() -> None:
    from zoo.recipes import RECIPES

    for r in RECIPES.values():
        assert Recipe.from_dict(r.to_dict()) == r
        if r.model:
            zoo.model_info(r.model)  # names a registered model


@pytest.mark.full_data
def test_resume_after_interruption_gives_identical_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_dataset("mnist")
    recipe = _tiny()
    full = train(recipe, out_dir=tmp_path / "full", progress=False)

    real_epoch = train_mod._train_epoch
    calls = {"n": 0}

    def interrupted(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed during the second epoch
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_mod, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, out_dir=tmp_path / "cut", progress=False)
    assert torch.load(tmp_path / "cut" / "state.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(train_mod, "_train_epoch", real_epoch)
    with pytest.raises(zoo.InvalidArgumentError, match="--resume"):
        train(recipe, out_dir=tmp_path / "cut", progress=False)
    resumed = train(recipe, out_dir=tmp_path / "cut", resume=True, progress=False)

    a, b = load_file(full.checkpoint), load_file(resumed.checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["top1"] == full.metrics["top1"]
    log = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]
    assert (tmp_path / "cut" / "curves.png").stat().st_size > 0


@pytest.mark.full_data
def test_stored_file_metrics_match_zoo_eval(tmp_path: Path) -> None:
    require_dataset("mnist")
    result = train(_tiny(epochs=1), out_dir=tmp_path, progress=False)
    from zoo.evaluate import evaluate_model

    r = evaluate_model("mlp_60_40_20_bn", "mnist", weights=result.checkpoint, backend="eager")
    assert not r.is_sample and r.num_images == 10_000
    assert r.correct == result.metrics["correct"]


@pytest.mark.full_data
@pytest.mark.slow
def test_two_process_data_parallel_matches_one_process(tmp_path: Path) -> None:
    require_dataset("mnist")
    # No BatchNorm or dropout, so two half-batches average to exactly the full batch's gradient.
    args = ["-m", "zoo", "train", "--model", "mlp_2523", "--recipe", "mlp_2523.mnist", "--no-progress",
            "--set", "epochs=1", "--set", "train_limit=2048", "--set", "batch_size=128", "--set", "precision=fp32",
            "--set", "optimizer=sgd", "--set", "lr=0.05"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], env=env, capture_output=True,
                         text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          *args, "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr
    (a_path,) = (tmp_path / "one").glob("*.safetensors")
    (b_path,) = (tmp_path / "two").glob("*.safetensors")
    a, b = load_file(a_path), load_file(b_path)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)  # only the reduction order differs
    res = json.loads((tmp_path / "two" / "result.json").read_text())
    assert res["world_size"] == 2


@pytest.mark.full_data
@pytest.mark.slow
def test_fresh_run_reproduces_the_released_mnist_mlp(tmp_path: Path) -> None:
    require_dataset("mnist")
    released = zoo.get_weights("mlp_60_40_20_bn.mnist")
    result = train(get_recipe(released.recipe), out_dir=tmp_path, progress=False)
    assert abs(result.metrics["top1"] - released.metrics.top1) <= 0.3
