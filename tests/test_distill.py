"""Knowledge distillation (zoo.train.distill): the loss, the teacher's stored views and their cache, online
targets in the teacher's own normalisation, and a distilled run that resumes exactly (real MNIST, small slices)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import zoo
from conftest import require_dataset
from zoo.data.datasets import load_split
from zoo.train.distill import TEACHER_FILE, distill_loss, load_teacher
from zoo.train.loop import train
from zoo.train.recipes import Recipe

_TEACHER = "cnn_32_64_mnist.mnist"  # 99.40%: teaches the 98.06% MLP


def _recipe(**changes: object) -> Recipe:
    base = Recipe(name="distilled", model="mlp_60_40_20_bn", dataset="mnist", epochs=2, batch_size=64,
                  optimizer="adam", lr=1e-3, schedule="onecycle", train_limit=512, teacher=_TEACHER,
                  distill_weight=0.7, distill_temperature=3.0)
    return dataclasses.replace(base, **changes)


def test_loss_is_the_weighted_sum_of_cross_entropy_and_scaled_kl() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    labels = torch.randint(0, 10, (8,))
    recipe = _recipe(label_smoothing=0.1)
    p = F.softmax(teacher / 3.0, dim=1)
    kl = (p * (p.log() - F.log_softmax(student / 3.0, dim=1))).sum(1).mean()
    expected = 0.3 * F.cross_entropy(student, labels, label_smoothing=0.1) + 0.7 * 9.0 * kl
    assert torch.allclose(distill_loss(student, labels, teacher, recipe), expected, atol=1e-6)
    only_soft = dataclasses.replace(recipe, distill_weight=1.0)
    assert distill_loss(student, labels, student, only_soft).abs() < 1e-6  # the student agrees with its teacher


@pytest.mark.parametrize(("changes", "message"), [
    ({"distill_weight": 0.0}, "distill_weight"), ({"distill_weight": 1.5}, "distill_weight"),
    ({"distill_temperature": 0.0}, "distill_temperature"), ({"teacher_views": "all"}, "teacher_views"),
])
def test_recipe_refuses_bad_distillation_settings(changes: dict[str, object], message: str) -> None:
    with pytest.raises(zoo.InvalidArgumentError, match=message):
        _recipe(**changes)


@pytest.mark.full_data
def test_a_teacher_for_other_data_or_an_unknown_one_is_refused() -> None:
    require_dataset("mnist", "train")
    data = load_split("mnist", "train").head(64)
    with pytest.raises(zoo.InvalidArgumentError, match="teacher resnet20.cifar10 predicts 10 classes of 3x32x32"):
        load_teacher(_recipe(teacher="resnet20.cifar10"), data, torch.device("cpu"), None)
    with pytest.raises(zoo.InvalidArgumentError, match="did you mean"):
        load_teacher(_recipe(teacher="cnn_32_64_mnist.mnst"), data, torch.device("cpu"), None)


@pytest.mark.full_data
def test_stored_views_are_the_teachers_logits_kept_and_checked_in_the_run_directory(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_dataset("mnist", "train")
    data = load_split("mnist", "train").head(300)
    recipe = _recipe()
    first = load_teacher(recipe, data, torch.device("cpu"), tmp_path)
    assert first.logits.shape == (300, 10) and first.model is None and first.seconds > 0
    model = zoo.create(_TEACHER.split(".")[0], weights=_TEACHER).eval()
    x = (data.images.float() / 255 - torch.tensor(model.pretrained_cfg["mean"]).view(1, -1, 1, 1)) / torch.tensor(
        model.pretrained_cfg["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        assert torch.allclose(first.logits, model(x), atol=1e-4)  # no flips in the recipe: the stored images only
    assert (first.logits.argmax(1) == data.labels).float().mean() > 0.95
    again = load_teacher(recipe, data, torch.device("cpu"), tmp_path)  # read back, not computed
    assert again.seconds == 0 and torch.equal(again.logits, first.logits)
    (tmp_path / TEACHER_FILE).write_bytes(b"not a safetensors file")
    with caplog.at_level(logging.WARNING, logger="zoo.train.distill"):
        damaged = load_teacher(recipe, data, torch.device("cpu"), tmp_path)
    assert "cannot be read" in caplog.text and damaged.seconds > 0 and torch.equal(damaged.logits, first.logits)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="zoo.train.distill"):
        other = load_teacher(recipe, data.head(200), torch.device("cpu"), tmp_path)
    assert "other images" in caplog.text and other.logits.shape == (200, 10)


@pytest.mark.full_data
def test_flipping_recipes_average_each_image_with_its_mirror() -> None:
    require_dataset("mnist", "train")
    data = load_split("mnist", "train").head(100)
    plain = load_teacher(_recipe(), data, torch.device("cpu"), None)
    flipped = load_teacher(_recipe(flip=True), data, torch.device("cpu"), None)
    mirrored = dataclasses.replace(data, images=data.images.flip(3))
    mirror = load_teacher(_recipe(), mirrored, torch.device("cpu"), None)
    assert torch.allclose(flipped.logits, (plain.logits + mirror.logits) / 2, atol=1e-4)


@pytest.mark.full_data
def test_online_targets_see_the_batch_in_the_teachers_normalisation() -> None:
    require_dataset("mnist", "train")
    data = load_split("mnist", "train").head(32)
    teacher = load_teacher(_recipe(teacher_views="online"), data, torch.device("cpu"), None)
    assert teacher.logits is None and teacher.model is not None
    pixels = data.images.float() / 255
    expected = teacher.model((pixels - teacher.mean[0]) / teacher.std[0]).detach()
    student_view = (pixels - 0.5) / 0.25  # the student's own normalisation
    got = teacher.targets(student_view, torch.arange(32), (0.5,), (0.25,), "fp32")
    assert torch.allclose(got, expected, atol=1e-4)


@pytest.mark.full_data
def test_a_distilled_run_counts_its_teacher_and_resumes_exactly(tmp_path: Path) -> None:
    require_dataset("mnist")
    recipe = _recipe()
    full = train(recipe, out_dir=tmp_path / "full", progress=False)
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert log[0]["teacher_s"] > 0 and log[0]["epoch_s"] > log[0]["teacher_s"] and "teacher_s" not in log[1]
    assert load_file(tmp_path / "full" / TEACHER_FILE)["logits"].shape == (512, 10)
    half = train(recipe, out_dir=tmp_path / "cut", progress=False, max_minutes=1e-4)  # stops after epoch 1
    assert not half.finished
    resumed = train(recipe, out_dir=tmp_path / "cut", resume=True, progress=False)
    a, b = load_file(full.checkpoint), load_file(resumed.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = train(dataclasses.replace(recipe, teacher=""), out_dir=tmp_path / "plain", progress=False)
    c = load_file(plain.checkpoint)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the teacher changed the training
