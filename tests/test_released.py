"""Every released checkpoint reproduces its recorded accuracy from the stored file on the full test set."""

from __future__ import annotations

import pytest
from conftest import require_dataset

import zoo
import zoo.backends
from zoo.evaluate import evaluate_model

RELEASED = zoo.list_weights()


def test_released_weights_are_listed() -> None:
    pretrained = zoo.list_models(pretrained=True)
    assert pretrained == sorted({w.arch for w in RELEASED}, key=pretrained.index)
    for w in RELEASED:
        assert w.name in zoo.model_info(w.arch).weights


@pytest.mark.full_data
@pytest.mark.parametrize("weights", RELEASED, ids=[w.name for w in RELEASED])
def test_recorded_accuracy_is_reproduced_exactly(weights: zoo.Weights) -> None:
    require_dataset(weights.dataset)
    r = evaluate_model(weights.arch, weights.dataset, weights=weights.name, batch_size=500, allow_sample=False,
                       backend="eager")
    assert r.num_images == weights.metrics.num_images
    assert r.top1 == weights.metrics.top1
    assert r.top5 == weights.metrics.top5
    assert r.loss == pytest.approx(weights.metrics.loss, abs=1e-5)
    assert r.weights_sha256 == weights.sha256


@pytest.mark.full_data
@pytest.mark.slow
@pytest.mark.parametrize("weights", RELEASED, ids=[w.name for w in RELEASED])
def test_onnxruntime_top1_equals_eager_on_the_full_test_set(weights: zoo.Weights) -> None:
    require_dataset(weights.dataset)
    r = evaluate_model(weights.arch, weights.dataset, weights=weights.name, batch_size=500, allow_sample=False,
                       backend="onnxruntime")
    assert r.parity is not None
    # Identical predictions, or the exact number of disagreeing images is known and small.
    assert r.parity["identical"] or r.parity["disagreeing_images"] <= 5, r.parity["summary"]
    assert r.parity["eager_top1"] == weights.metrics.top1


@pytest.mark.full_data
@pytest.mark.parametrize("weights", RELEASED, ids=[w.name for w in RELEASED])
def test_default_auto_backend_stays_close_to_the_recorded_accuracy(weights: zoo.Weights) -> None:
    require_dataset(weights.dataset)
    r = evaluate_model(weights.arch, weights.dataset, weights=weights.name, batch_size=500, allow_sample=False)
    gflops = zoo.model_info(weights.arch).gflops  # what auto is resolved for: this model, 10,000 images
    assert r.backend == "auto" and r.setting == zoo.backends.resolve_auto("cpu", 500, gflops, images=r.num_images)
    assert r.recorded_top1 == weights.metrics.top1
    assert any(f"recorded top-1 of {weights.name}" in n for n in r.notes)
    # bf16 arithmetic moves a few borderline images either way; 0.2 points is 20 of 10,000 images.
    assert abs(r.top1 - weights.metrics.top1) <= 0.2, (r.top1, weights.metrics.top1)
