"""Every released checkpoint scores its recorded metrics from the stored file on the full test split.

The full eager pass is made once per checkpoint by ``tools/released_record.py``, which writes
``tests/released_record.json`` only when the pass reproduces the checkpoint's top-1, top-5 and loss exactly. Each run
here then proves, for a fraction of the cost of a full pass:

- the record describes this file, here: the same sha256, torch version, model structure, test-split bytes, and
  logits of the first test images; otherwise (a new torch, a changed model) the full split is re-scored in full;
- the record is honest: its per-image values add up to the checkpoint's metrics, and ``SAMPLE_BATCHES`` whole
  batches drawn afresh each run score exactly as recorded (a record that was forged, or made from another file,
  fails on the images it misstates);
- onnxruntime and ``auto`` agree with eager on those images.

A checkpoint with no record, or a record of another file, fails: release it with its record.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
import zoo.runners
from conftest import require_dataset
from zoo.builder import count_flops
from zoo.data.datasets import Split
from zoo.evaluate import evaluate_model

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("released_record", ROOT / "tools" / "released_record.py")
rr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rr)

RELEASED = zoo.list_weights()
SAMPLE_BATCHES = 4  # of rr.BATCH (500) images: 2,000 of the 10,000 test images, drawn afresh each run
AGREEMENT_BATCHES = 2  # of those, the images onnxruntime and auto are compared with eager on (1,000)
PARAMS = [pytest.param(w, id=w.name, marks=[pytest.mark.xdist_group(w.name), pytest.mark.slow]) for w in RELEASED]
REFRESH = "python tools/released_record.py {name}"


@dataclass
class Checked:
    """A checkpoint, its test split, and its eager logits on this run's sample of whole batches."""

    model: torch.nn.Module
    split: Split
    starts: list[int]
    eager: dict[int, torch.Tensor]  # batch start -> logits


@functools.cache
def _split(dataset: str) -> Split:
    return rr.load_test_split(zoo.get_weights(next(w.name for w in RELEASED if w.dataset == dataset)))


@functools.cache
def _checked(weights: zoo.Weights) -> Checked:
    split = _split(weights.dataset)
    seed = int(np.random.SeedSequence().entropy % 2**32)
    n_batches = -(-len(split) // rr.BATCH)
    rng = np.random.default_rng(seed)
    starts = sorted(int(b) * rr.BATCH for b in rng.choice(n_batches, min(SAMPLE_BATCHES, n_batches), replace=False))
    model = rr.build(weights)
    eager = {s: rr.logits(model, split, weights, s, s + rr.BATCH) for s in starts}
    return Checked(model, split, starts, eager)


def test_released_weights_are_listed() -> None:
    pretrained = zoo.list_models(pretrained=True)
    assert pretrained == sorted({w.arch for w in RELEASED}, key=pretrained.index)
    for w in RELEASED:
        assert w.name in zoo.model_info(w.arch).weights


def test_every_record_belongs_to_a_released_checkpoint() -> None:
    assert sorted(rr.load_record()) == sorted(w.name for w in RELEASED)


@pytest.mark.full_data
@pytest.mark.parametrize("weights", PARAMS)
def test_stored_file_reproduces_its_full_test_split_record(weights: zoo.Weights) -> None:
    require_dataset(weights.dataset)
    entry = rr.load_record().get(weights.name)
    assert entry is not None and entry["sha256"] == weights.sha256, (
        f"{weights.name} has no record of its file: run {REFRESH.format(name=weights.name)}")
    c = _checked(weights)
    reasons = rr.stale_reasons(entry, weights, rr.fingerprint(weights, c.model, c.split))
    if reasons:  # the record no longer applies here: the full split decides, as it did before any record
        _, metrics = rr.full_pass(weights, c.model, c.split)
        assert not rr.exact(metrics, weights)
        warnings.warn(f"{weights.name}: {'; '.join(reasons)}: re-scored the full test split (exact); refresh the "
                      f"record with {REFRESH.format(name=weights.name)}", stacklevel=1)
        return
    assert not rr.check_sums(entry, weights, c.split.labels)
    wrong = [m for s in c.starts for m in rr.compare(entry, rr.score(c.eager[s], c.split.labels[s:s + rr.BATCH]), s)]
    assert not wrong, f"batches from {c.starts} do not score as recorded: {wrong}"


@pytest.mark.full_data
@pytest.mark.parametrize("weights", PARAMS)
def test_onnxruntime_export_agrees_with_eager_on_the_sample(weights: zoo.Weights) -> None:
    require_dataset(weights.dataset)
    c = _checked(weights)
    runner = zoo.runners.prepare(c.model, "onnxruntime", input_size=tuple(c.split.images.shape[1:]),
                                  batch_size=rr.BATCH, name=weights.name)
    starts = c.starts[:AGREEMENT_BATCHES]
    differ = sum(int((rr.logits(runner, c.split, weights, s, s + rr.BATCH).argmax(1) != c.eager[s].argmax(1)).sum())
                 for s in starts)
    # Identical predictions, or a known small number of borderline images (the full-split bound was 5 of 10,000).
    assert differ <= 2, f"{differ} of {len(starts) * rr.BATCH} images differ from eager"


@pytest.mark.full_data
@pytest.mark.parametrize("weights", PARAMS)
def test_auto_backend_stays_close_to_eager_on_the_sample(weights: zoo.Weights) -> None:
    require_dataset(weights.dataset)
    c = _checked(weights)
    gflops = count_flops(c.model, tuple(c.split.images.shape[1:])) / 1e9
    setting = zoo.runners.resolve_auto("cpu", rr.BATCH, gflops, images=len(c.split))  # what zoo-eval runs
    runner = zoo.runners.prepare(c.model, setting, input_size=tuple(c.split.images.shape[1:]), batch_size=rr.BATCH,
                                  name=weights.name)
    starts = c.starts[:AGREEMENT_BATCHES]
    labels = torch.cat([c.split.labels[s:s + rr.BATCH] for s in starts])
    auto = torch.cat([rr.logits(runner, c.split, weights, s, s + rr.BATCH) for s in starts]).argmax(1)
    eager = torch.cat([c.eager[s] for s in starts]).argmax(1)
    gap = 100.0 * abs(int((auto == labels).sum()) - int((eager == labels).sum())) / len(labels)
    # bf16 arithmetic moves a few borderline images either way: at most 0.3 points, and 1% of images changed.
    assert gap <= 0.3 and int((auto != eager).sum()) <= len(labels) // 100, (setting, gap)


@pytest.mark.full_data
@pytest.mark.slow
def test_zoo_eval_default_reports_the_recorded_top1() -> None:
    """The user's path end to end, once: the default backend over the whole split, against the record."""
    weights = zoo.get_weights("resnet20.cifar10")
    require_dataset(weights.dataset)
    r = evaluate_model(weights.arch, weights.dataset, weights=weights.name, batch_size=500, allow_sample=False)
    gflops = zoo.model_info(weights.arch).gflops
    assert r.backend == "auto" and r.setting == zoo.runners.resolve_auto("cpu", 500, gflops, images=r.num_images)
    assert r.recorded_top1 == weights.metrics.top1
    assert any(f"recorded top-1 of {weights.name}" in n for n in r.notes)
    assert abs(r.top1 - weights.metrics.top1) <= 0.2, (r.top1, weights.metrics.top1)


@pytest.mark.full_data
def test_a_forged_or_stale_record_is_caught() -> None:
    """The checks above fail on what they exist to catch: misstated images and a model that changed."""
    weights = zoo.get_weights("resnet20.cifar10")
    require_dataset(weights.dataset)
    entry, split = rr.load_record()[weights.name], _split(weights.dataset)
    model = rr.build(weights)
    first = rr.score(rr.logits(model, split, weights, 0, rr.BATCH), split.labels[:rr.BATCH])
    pred = rr.decode(entry["pred"]).copy()
    pred[:rr.BATCH] = split.labels[:rr.BATCH].numpy()  # the first batch's misclassified images recorded as right
    forged = dict(entry, pred=rr.encode(pred))
    assert rr.compare(entry, first, 0) == []
    assert rr.compare(forged, first, 0)
    assert any("adds up" in p for p in rr.check_sums(forged, weights, split.labels))
    with torch.no_grad():
        model.get_classifier().weight.mul_(1.001)  # a change no structure hash sees
    assert any("logits" in r for r in rr.stale_reasons(entry, weights, rr.fingerprint(weights, model, split)))
    model.bn1.eps = 1e-3
    assert "structure changed" in rr.stale_reasons(entry, weights, rr.fingerprint(weights, model, split))
