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
def test_recorded_metrics_are_reproduced_exactly_and_onnxruntime_agrees(weights: zoo.Weights) -> None:
    """One eager fp32 pass (how every record was measured) and one onnxruntime pass of a fresh export."""
    require_dataset(weights.dataset)
    r = evaluate_model(weights.arch, weights.dataset, weights=weights.name, batch_size=500, allow_sample=False,
                       backend="onnxruntime")
    assert r.num_images == weights.metrics.num_images
    assert r.weights_sha256 == weights.sha256
    eager = r.parity
    assert eager is not None
    assert eager["eager_top1"] == weights.metrics.top1
    assert eager["eager_top5"] == weights.metrics.top5
    assert eager["eager_loss"] == pytest.approx(weights.metrics.loss, abs=1e-5)
    # Identical predictions, or the exact number of disagreeing images is known and small.
    assert eager["identical"] or eager["disagreeing_images"] <= 5, eager["summary"]


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
