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
import zoo.train.epoch
import zoo.train.freeze
import zoo.train.loop as train_mod
import zoo.train.optim
import zoo.train.state
from conftest import require_dataset
from zoo.train.loop import train
from zoo.train.optim import Lookahead, create_optimizer, create_scheduler, lr_at
from zoo.train.recipes import Recipe, get_recipe, parse_overrides, resolve_recipe


def _tiny(**changes: object) -> Recipe:
    base = Recipe(name="tiny", model="mlp_60_40_20_bn", dataset="mnist", epochs=2, batch_size=64,
                  optimizer="adam", lr=1e-3, schedule="onecycle", train_limit=1024, precision="bf16")
    return dataclasses.replace(base, **changes)


def test_schedules() -> None:
    r = Recipe(lr=1.0, epochs=10, schedule="step", milestones=(5, 8), gamma=0.1)
    assert [round(lr_at(r, e * 10, 10), 6) for e in (0, 4, 5, 8, 9)] == [1.0, 1.0, 0.1, 0.01, 0.01]
    assert lr_at(r, 49, 10) == 1.0 and lr_at(r, 50, 10) == pytest.approx(0.1)  # a milestone's first update decays
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
    from zoo.train.recipes import RECIPES

    for r in RECIPES.values():
        assert Recipe.from_dict(r.to_dict()) == r
        if r.model:
            zoo.model_info(r.model)  # names a registered model


@pytest.mark.full_data
def test_resume_after_interruption_gives_identical_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_dataset("mnist")
    recipe = _tiny()
    full = train(recipe, out_dir=tmp_path / "full", progress=False)

    real_epoch = train_mod.train_epoch
    calls = {"n": 0}

    def interrupted(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed during the second epoch
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, out_dir=tmp_path / "cut", progress=False)
    assert torch.load(tmp_path / "cut" / "state.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(train_mod, "train_epoch", real_epoch)
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
@pytest.mark.parametrize("native", [True, False])
def test_bf16_recipe_trains_in_fp32_without_native_bf16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture, native: bool) -> None:
    require_dataset("mnist")
    monkeypatch.setattr(train_mod, "cpu_has_bf16", lambda: native)
    seen: list[str] = []
    real_epoch = train_mod.train_epoch

    def spy(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append(args[4].precision)  # the recipe the epoch ran with
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_epoch", spy)
    with caplog.at_level("WARNING", logger="zoo.train"):
        result = train(_tiny(epochs=1, train_limit=256), out_dir=tmp_path, progress=False)
    expected = "bf16" if native else "fp32"
    assert seen == [expected] and result.recipe["precision"] == expected
    assert json.loads((tmp_path / "recipe.json").read_text())["precision"] == expected
    assert ("no native bf16" in caplog.text) == (not native)


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


def test_triangle_schedule() -> None:
    r = Recipe(lr=2.0, epochs=10, schedule="triangle", onecycle_pct=0.2, initial_lr_ratio=0.2, final_lr_ratio=0.1)
    lrs = [lr_at(r, s, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.4) and lrs[20] == pytest.approx(2.0) and max(lrs) == pytest.approx(2.0)
    assert lrs[60] == pytest.approx(2.0 + (0.2 - 2.0) * 40 / 80)  # linear on the way down, to lr x final_lr_ratio
    assert all(a <= b for a, b in zip(lrs[:20], lrs[1:21])) and all(a >= b for a, b in zip(lrs[20:], lrs[21:]))


@pytest.mark.parametrize("changes, message", [
    ({"train_limit": -100}, "train_limit"), ({"norm_lr_scale": 0.0}, "norm_lr_scale"),
    ({"weight_decay": -1.0}, "weight_decay"), ({"onecycle_pct": 1.5}, "onecycle_pct"),
    ({"lookahead_steps": -1}, "lookahead_steps"), ({"lookahead_decay": 1.0}, "lookahead_decay"),
    ({"lookahead_steps": 5, "ema_decay": 0.9}, "exclude each other"), ({"alternate_flip": True}, "needs flip"),
    ({"low_res": 24}, "go together"), ({"low_res": 24, "low_res_epochs": 2}, "last epoch at full size"),
    ({"low_res": -1, "low_res_epochs": 1}, "must be >= 0"),
])
def test_recipe_refuses_bad_values(changes: dict[str, object], message: str) -> None:
    with pytest.raises(zoo.InvalidArgumentError, match=message):
        _tiny(**changes)


@pytest.mark.full_data
def test_progressive_resizing_trains_the_first_epochs_on_smaller_images(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    require_dataset("mnist")
    sides: list[int] = []
    real_create = train_mod.create

    def spied_create(*args: object, **kwargs: object) -> torch.nn.Module:
        model = real_create(*args, **kwargs)
        model.register_forward_pre_hook(lambda m, inputs: sides.append(inputs[0].shape[-1]) if m.training else None)
        return model

    monkeypatch.setattr(train_mod, "create", spied_create)
    recipe = _tiny(model="fastnet_mnist", epochs=3, low_res=26, low_res_epochs=2, precision="fp32", eval_every=3)
    result = train(recipe, out_dir=tmp_path / "run", progress=False)
    steps = 1024 // 64
    assert sides == [26] * (2 * steps) + [28] * steps  # the last epoch at full size
    assert [row["train_size"] for row in result.history] == [26, 26, 28] and result.metrics["num_images"] == 10_000
    # a model that cannot take the small images fails before training, in one line
    for side, message in [(24, "fastnet_mnist cannot take 24x24 images"), (28, "must be below the side of mnist")]:
        with pytest.raises(zoo.InvalidArgumentError, match=message) as info:
            train(dataclasses.replace(recipe, low_res=side), out_dir=tmp_path / f"bad{side}", progress=False)
        assert "\n" not in str(info.value) and not (tmp_path / f"bad{side}" / "state.pt").exists()


def test_optimizer_gets_only_trainable_tensors_and_scales_norm_lr() -> None:
    recipe = Recipe(model="fastnet", lr=0.5, norm_lr_scale=64.0, weight_decay=1e-3)
    model = zoo.create("fastnet")
    opt = create_optimizer(recipe, model)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    assert frozen and not in_opt & frozen  # the whitened stem and the unit BatchNorm scales stay out
    assert in_opt == {id(p) for p in model.parameters() if p.requires_grad}
    norm_group = next(g for g in opt.param_groups if g["lr_scale"] == 64.0)
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {id(p) for p in norm_group["params"]} == bn_biases and norm_group["weight_decay"] == 0.0
    assert type(opt) is torch.optim.SGD and opt.defaults["momentum"] == recipe.momentum
    scheduler = create_scheduler(recipe, opt, steps_per_epoch=10)
    for step in (0, 7, 30):  # the scheduler sets every group: the norm shifts at 64x the schedule's lr
        scheduler.step_update(step)
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_at(recipe, step, 10))
        assert norm_group["lr"] == pytest.approx(64.0 * lr_at(recipe, step, 10))


@pytest.mark.parametrize("name, nesterov, kind", [
    ("sgd", False, torch.optim.SGD), ("sgd", True, torch.optim.SGD), ("adam", False, torch.optim.Adam),
    ("adamw", False, torch.optim.AdamW),
])
def test_optimizer_follows_the_recipe(name: str, nesterov: bool, kind: type) -> None:
    recipe = Recipe(model="resnet20", optimizer=name, nesterov=nesterov, lr=0.05, weight_decay=5e-4, betas=(0.8, 0.99))
    opt = create_optimizer(recipe, zoo.create("resnet20"))
    assert type(opt) is kind and [g["weight_decay"] for g in opt.param_groups] == [5e-4, 0.0, 0.0]
    assert opt.defaults.get("nesterov", False) is nesterov and opt.defaults["lr"] == 0.05
    if name != "sgd":
        assert tuple(opt.defaults["betas"]) == (0.8, 0.99)


def test_muon_trains_the_filters_and_the_recipe_optimizer_the_rest() -> None:
    recipe = Recipe(model="fastnet", lr=0.5, norm_lr_scale=64.0, weight_decay=1e-3, muon_lr=0.25)
    model = zoo.create("fastnet")
    opt = create_optimizer(recipe, model)
    assert isinstance(opt, zoo.train.optim.OptimizerChain)
    sgd, muon = opt.optimizers
    filters = {id(p) for p in model.parameters() if p.requires_grad and p.dim() == 4}
    assert filters and {id(p) for g in muon.param_groups for p in g["params"]} == filters
    assert not filters & {id(p) for g in sgd.param_groups for p in g["params"]}
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {
        id(p) for p in model.parameters() if p.requires_grad}
    scheduler = create_scheduler(recipe, opt, steps_per_epoch=10)
    for step in (0, 30):  # the filters follow the same schedule at muon_lr / lr of it
        scheduler.step_update(step)
        assert muon.param_groups[0]["lr"] == pytest.approx(0.5 * lr_at(recipe, step, 10))
    with pytest.raises(zoo.InvalidArgumentError, match="no trainable convolution filters"):
        create_optimizer(dataclasses.replace(recipe, model="mlp_60_40_20_bn"), zoo.create("mlp_60_40_20_bn"))


def test_muon_step_rescales_each_filter_and_orthogonalises_its_update() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 32, 3, bias=False)
    with torch.no_grad():
        conv.weight.mul_(10.0)  # far from the norm Muon keeps
    opt = zoo.train.optim.FilterMuon([conv.weight], lr=1e-3, momentum=0.6)
    conv.weight.grad = torch.randn_like(conv.weight)
    before = conv.weight.detach().clone()
    opt.step()
    rescaled = before * (32 ** 0.5 / before.norm())
    update = ((rescaled - conv.weight.detach()) / 1e-3).reshape(32, -1)
    singular = torch.linalg.svdvals(update)  # the first step's direction is the gradient's, orthogonalised
    assert 0.5 < float(singular.min()) and float(singular.max()) < 1.3
    assert float(conv.weight.detach().norm()) == pytest.approx(32 ** 0.5, rel=0.01)


@pytest.mark.full_data
@pytest.mark.usefixtures("restore_threads")
def test_muon_chain_resumes_exactly(tmp_path: Path) -> None:
    require_dataset("mnist")
    recipe = resolve_recipe("fastnet_mnist.mnist", {"train_limit": 5120, "muon_lr": 0.24, "eval_every": 2})
    full = train(recipe, out_dir=tmp_path / "full", progress=False, threads=1)
    train(recipe, out_dir=tmp_path / "cut", progress=False, max_minutes=1e-6, threads=1)
    resumed = train(recipe, out_dir=tmp_path / "cut", progress=False, resume=True, threads=1)
    a, b = load_file(full.checkpoint), load_file(resumed.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.metrics["top1"] > 90.0  # learns: chance is 10


def test_fastnet_stem_whitens_patches() -> None:
    model = zoo.create("fastnet")
    x = torch.randn(512, 3, 8, 8) * torch.tensor([1.0, 3.0, 0.2]).view(1, 3, 1, 1) + 0.5
    x[:, 1] += 0.8 * x[:, 0]  # correlated channels
    model.init_from_data(x)
    half = model.stem.weight.shape[0] // 2
    torch.testing.assert_close(model.stem.weight[half:], -model.stem.weight[:half])
    out = torch.nn.functional.conv2d(x - x.mean((0, 2, 3), keepdim=True), model.stem.weight[:half])
    flat = out.permute(1, 0, 2, 3).reshape(half, -1).double()
    cov = flat @ flat.T / flat.shape[1]
    torch.testing.assert_close(cov, torch.eye(half, dtype=torch.float64), atol=0.02, rtol=0)


@pytest.mark.full_data
@pytest.mark.usefixtures("restore_threads")
def test_max_minutes_stops_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    require_dataset("mnist")
    recipe = _tiny(epochs=3)
    # the same thread count throughout: bf16 reductions may round differently on another
    full = train(recipe, out_dir=tmp_path / "full", progress=False, threads=1)
    out = tmp_path / "elsewhere" / "budget"  # any folder, outside the checkout
    first = train(recipe, out_dir=out, progress=False, max_minutes=1e-6, threads=1)
    assert torch.get_num_threads() == 1
    assert not first.finished and first.checkpoint == "" and len(first.history) == 1  # one epoch, then stop
    assert first.remaining_s >= 2 * first.history[0]["epoch_s"]  # two epochs left, each at least as long
    assert not list(out.glob("*.safetensors"))
    with open(out / "log.jsonl", "a") as f:  # a stray line (a save that failed after the log was written)
        f.write(json.dumps({"epoch": 2, "train_loss": 0.0}) + "\n")
    second = train(recipe, out_dir=out, progress=False, resume=True, max_minutes=60, threads=1)
    assert second.finished and second.remaining_s == 0.0
    a, b = load_file(full.checkpoint), load_file(second.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2, 3]  # each epoch once, as in the saved state
    assert log[-1]["test_top1"] == second.metrics["top1"]  # the last epoch: the stored file's score


def test_log_lines_name_their_machine_and_a_run_resumed_elsewhere_names_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_threads: None) -> None:
    recipe = resolve_recipe("fast_onecycle", {"dataset": "circles", "epochs": 3, "batch_size": 20},
                            model="mlp_tanh_circles")
    monkeypatch.setattr(train_mod, "hardware_description", lambda *a, **k: "machine A")
    first = train(recipe, out_dir=tmp_path, progress=False, max_minutes=1e-6, threads=1)
    assert not first.finished and first.hardware == "machine A"
    monkeypatch.setattr(train_mod, "hardware_description", lambda *a, **k: "machine B")
    result = train(recipe, out_dir=tmp_path, progress=False, resume=True, threads=1)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["hardware"] for row in log] == ["machine A", "machine B", "machine B"]
    assert result.hardware == "machine A + machine B"
    assert json.loads((tmp_path / "result.json").read_text())["hardware"] == "machine A + machine B"
    # lines logged before they named their machine: this call's machine, as the record always said
    assert zoo.train.runs.run_hardware([{"epoch": 1, "hardware": "A"}, {"epoch": 2}], "C") == "A + C"


@pytest.mark.full_data
def test_run_directory_is_locked_and_damaged_state_is_one_line(tmp_path: Path) -> None:
    require_dataset("mnist")
    handle = zoo.train.runs.lock_run(tmp_path)  # another process holds the run
    try:
        with pytest.raises(zoo.InvalidArgumentError, match=r"in use by another zoo train process \(zoo status "):
            train(_tiny(), out_dir=tmp_path, progress=False)
    finally:
        handle.close()
    train(_tiny(epochs=2), out_dir=tmp_path / "cut", progress=False, max_minutes=1e-6)
    state = tmp_path / "cut" / "state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # truncated (a full disk, a kill)
    with pytest.raises(zoo.ZooError, match="cannot be resumed: it is damaged") as info:
        train(_tiny(epochs=2), out_dir=tmp_path / "cut", progress=False, resume=True)
    assert "\n" not in str(info.value) and "weights_only=False" not in str(info.value)


@pytest.mark.full_data
@pytest.mark.slow
def test_fastnet_recipe_shortened_learns(tmp_path: Path) -> None:
    """The released fast recipe, cut to 2 epochs of 2,560 images in batches of 128 (40 steps, as many as
    10,240 images in its batches of 512; with fewer the EMA of the weights lags far behind): whitening, the
    triangle schedule and the 64x BatchNorm learning rate together must learn quickly (a broken piece stays
    near chance). The test split is scored once, from the stored file."""
    require_dataset("cifar10")
    recipe = resolve_recipe("fastnet.cifar10", {"epochs": 2, "train_limit": 2560, "batch_size": 128, "eval_every": 2})
    result = train(recipe, out_dir=tmp_path, progress=False)
    assert result.metrics["num_images"] == 10_000
    assert result.metrics["top1"] > 20.0  # 28.14 measured (AMD EPYC Zen 1, fp32, 1 thread); chance is 10
    history = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert history[1]["train_loss"] < history[0]["train_loss"]


@pytest.mark.full_data
def test_new_step_matches_the_old_loss_curve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fused optimizer kernel (the new step) follows the per-tensor loop's (the old step's) loss curve."""
    require_dataset("mnist")
    recipe = _tiny(epochs=3, optimizer="sgd", lr=0.05, nesterov=True, weight_decay=5e-4, precision="fp32")
    new = train(recipe, out_dir=tmp_path / "new", progress=False)
    monkeypatch.setattr(zoo.train.optim, "_fused_ok", lambda model: False)
    old = train(recipe, out_dir=tmp_path / "old", progress=False)
    for a, b in zip(new.history, old.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
    assert abs(new.metrics["top1"] - old.metrics["top1"]) <= 0.3


def test_alternating_flip_shows_each_image_both_ways_every_two_epochs() -> None:
    images = torch.arange(64 * 3 * 2 * 4, dtype=torch.float32).reshape(64, 3, 2, 4)
    epochs = [zoo.train.epoch.alternate_flip(images, seed=0, epoch=e) for e in range(4)]
    flipped = [(e == images.flip(3)).flatten(1).all(1) for e in epochs]
    assert all(((e == images) | (e == images.flip(3))).all() for e in epochs)  # each image as is or mirrored
    assert 16 < int(flipped[0].sum()) < 48  # a random half
    assert torch.equal(flipped[0], ~flipped[1]) and torch.equal(flipped[0], flipped[2])  # alternating halves
    assert not torch.equal(flipped[0], zoo.train.epoch.alternate_flip(images, seed=1, epoch=0).eq(images.flip(3))
                           .flatten(1).all(1))  # the halves follow the seed


def test_lookahead_moves_weights_to_the_slow_copy_with_a_rising_decay() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    look = Lookahead(model, k=2, decay=0.8, total_steps=4)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)
    look.step(model, 1)  # not a multiple of k: nothing happens
    assert torch.equal(model[0].weight, start["0.weight"] + 1)
    look.step(model, 2)  # d = 0.8 * (2/4)**3 = 0.1: slow moves 90% of the way, the model restarts from it
    assert torch.allclose(model[0].weight, start["0.weight"] + 0.9)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    look.step(model, 4)  # d = 0.8 at the end
    assert torch.allclose(model[0].weight, start["0.weight"] + 0.9 + 0.2)
    assert torch.equal(model[1].num_batches_tracked, start["1.num_batches_tracked"])  # integer buffers untouched


@pytest.mark.full_data
@pytest.mark.usefixtures("restore_threads")
def test_lookahead_without_decay_changes_nothing_and_resumes_exactly(tmp_path: Path) -> None:
    require_dataset("mnist")
    plain = train(_tiny(epochs=2, flip=True, alternate_flip=True), out_dir=tmp_path / "plain", progress=False,
                  threads=1)
    same = train(_tiny(epochs=2, flip=True, alternate_flip=True, lookahead_steps=3), out_dir=tmp_path / "same",
                 progress=False, threads=1)
    look = _tiny(epochs=3, lookahead_steps=3, lookahead_decay=0.9)
    full = train(look, out_dir=tmp_path / "full", progress=False, threads=1)
    train(look, out_dir=tmp_path / "cut", progress=False, max_minutes=1e-6, threads=1)
    resumed = train(look, out_dir=tmp_path / "cut", progress=False, resume=True, threads=1)
    a, b = load_file(plain.checkpoint), load_file(same.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)  # decay 0: the slow copy is the model
    a, b = load_file(full.checkpoint), load_file(resumed.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_state_saved_before_new_recipe_settings_still_resumes() -> None:
    recipe = _tiny()
    saved = recipe.to_dict()
    del saved["lookahead_steps"], saved["alternate_flip"]  # a state.pt written by an older zoo
    assert zoo.train.state.same_recipe(saved, recipe)
    assert not zoo.train.state.same_recipe({**saved, "lr": 0.5}, recipe)
    assert not zoo.train.state.same_recipe({**saved, "no_such_setting": 1}, recipe)
    assert zoo.train.state.same_recipe({**saved, "description": "reworded", "source": "elsewhere"}, recipe)


@pytest.mark.full_data
def test_freeze_trains_only_the_named_layers(tmp_path: Path) -> None:
    require_dataset("mnist")
    recipe = _tiny(model="cnn_32_64_mnist", optimizer="adam", lr=1e-2, freeze="features.0,classifier.0", epochs=1,
                   train_limit=512)
    start = zoo.create("cnn_32_64_mnist", weights="default")
    r = train(dataclasses.replace(recipe, init_from="cnn_32_64_mnist.mnist"), out_dir=tmp_path / "run",
              progress=False, threads=1)
    after, before = load_file(r.checkpoint), start.state_dict()
    frozen = [k for k in before if k.startswith(("features.0.", "classifier.0."))]
    assert frozen and all(torch.equal(after[k], before[k]) for k in frozen)  # bit-identical
    assert not torch.equal(after["features.3.weight"], before["features.3.weight"])  # trained layers moved
    layers = json.loads((tmp_path / "run" / "layers.json").read_text())
    assert layers["frozen"] == ["features.0", "classifier.0"] and "features.3" in layers["trained"]
    assert json.loads((tmp_path / "run" / "recipe.json").read_text())["freeze"] == "features.0,classifier.0"
    with pytest.raises(zoo.InvalidArgumentError, match="match no layer"):
        train(dataclasses.replace(recipe, freeze="nope*"), out_dir=tmp_path / "bad", progress=False)
    with pytest.raises(zoo.InvalidArgumentError, match="nothing to train"):
        train(dataclasses.replace(recipe, freeze="all-but-last:0"), out_dir=tmp_path / "bad2", progress=False)


def test_freeze_keeps_frozen_batchnorm_statistics() -> None:
    model = zoo.create("resnet20")
    layers = zoo.train.freeze.freeze(model, "all-but-last:3")
    assert layers["trained"] == ["layer3.2.conv2", "layer3.2.bn2", "linear"]
    norms = zoo.train.freeze.frozen_norm_layers(model, layers["frozen"])
    assert model.bn1 in norms and model.layer3[2].bn2 not in norms
    assert not any(p.requires_grad for n in layers["frozen"] for p in model.get_submodule(n).parameters())


@pytest.mark.full_data
def test_a_torchvision_resnet18_file_starts_training_with_a_new_head(tmp_path: Path) -> None:
    require_dataset("cifar10")
    import torchvision

    reference = torchvision.models.resnet18(weights=None)  # exactly torchvision's format: 1000-class fc
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(reference.state_dict(), path)
    recipe = resolve_recipe("report003_transfer", {"init_from": str(path), "epochs": 1, "train_limit": 128})
    r = train(recipe, out_dir=tmp_path / "run", progress=False, threads=1)
    tuned = load_file(r.checkpoint)
    assert tuned["fc.weight"].shape == (10, 512)
    assert torch.equal(tuned["layer1.0.conv1.weight"], reference.state_dict()["layer1.0.conv1.weight"])  # frozen
    assert torch.equal(tuned["layer1.0.bn1.running_mean"], reference.state_dict()["layer1.0.bn1.running_mean"])
    assert not torch.equal(tuned["layer4.1.conv2.weight"], reference.state_dict()["layer4.1.conv2.weight"])


@pytest.mark.slow
def test_estimate_predicts_the_epoch_that_then_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``zoo train --estimate`` times real steps; a 1-epoch run then takes within 40% of its epoch estimate (a
    loaded machine, as under ``-n 2``, moves both)."""
    from zoo.train.estimate import estimate

    require_dataset("mnist")
    monkeypatch.chdir(tmp_path)
    recipe = resolve_recipe("mlp_2523.mnist", {"epochs": 1, "train_limit": 16384, "precision": "fp32"})
    e = estimate(recipe, seconds=1.0)
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert e.steps_per_epoch == 16384 // recipe.batch_size and e.steps >= 2 and e.evaluations == 1
    assert e.total_s == pytest.approx(e.epoch_s + e.eval_s) and "fp32" == e.precision and "thread" in e.hardware
    measured = train(recipe, out_dir=tmp_path / "run", progress=False).history[0]["epoch_s"]
    assert abs(e.epoch_s - measured) <= 0.4 * measured, (e.epoch_s, measured)


@pytest.mark.slow
def test_estimate_from_the_command_line_writes_nothing(tmp_path: Path) -> None:
    require_dataset("mnist")
    args = [sys.executable, "-m", "zoo", "train", "-r", "mlp_2523.mnist", "--set", "epochs=20", "--set",
            "eval_every=5", "--estimate"]
    out = subprocess.run([*args, "--json"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    e = json.loads(out)
    assert e["epochs"] == 20 and e["evaluations"] == 4 and e["train_images_per_s"] > 0  # epochs 5, 10, 15 + final
    assert e["total_s"] == pytest.approx(20 * e["epoch_s"] + 4 * e["eval_s"])
    text = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert "one epoch:" in text and "20 epochs and 4 test passes" in text and "nothing was written" in text
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_estimate_times_the_low_resolution_epochs_at_their_own_pace(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.train.estimate import estimate

    require_dataset("cifar10")
    monkeypatch.chdir(tmp_path)
    recipe = resolve_recipe("fastnet.cifar10.pr26", {"train_limit": 1024, "batch_size": 32, "precision": "fp32"})
    e = estimate(recipe, seconds=0.5, max_steps=4)
    assert e.low_res_epochs == 13 and 0 < e.low_res_epoch_s < e.epoch_s  # 26x26 is 0.66x the pixels of 32x32
    assert e.total_s == pytest.approx(13 * e.low_res_epoch_s + 8 * e.epoch_s + e.evaluations * e.eval_s)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_recipes_estimate_lists_each_recipe_timed_here(tmp_path: Path) -> None:
    require_dataset("mnist")
    args = [sys.executable, "-m", "zoo", "recipes", "mlp_2523.mnist", "--estimate", "--threads", "1"]
    rows = json.loads(subprocess.run([*args, "--json"], cwd=tmp_path, capture_output=True, text=True,
                                     check=True).stdout)
    assert [r["recipe"] for r in rows] == ["mlp_2523.mnist"]
    assert rows[0]["hardware"].endswith((", 1 thread, bf16", ", 1 thread, fp32"))  # machine, threads, precision
    text = subprocess.run([*args, "--no-progress"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert text.splitlines()[0].split()[:3] == ["recipe", "model", "precision"] and "mlp_2523.mnist" in text
    assert list(tmp_path.iterdir()) == []
