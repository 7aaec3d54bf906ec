"""The verified record of every released checkpoint's full test-split pass, and the checks made against it.

    python tools/released_record.py                 # re-score every checkpoint whose record is stale, write it
    python tools/released_record.py resnet20.cifar10 --force   # re-score these even when their record is current
    python tools/released_record.py --check         # list stale or missing records; exit 1 if any (no scoring)

A record (``tests/released_record.json``, one entry per checkpoint) is written only after a full eager fp32 pass
over the test split that reproduces the checkpoint's recorded top-1, top-5 and loss exactly. It holds:

- the checkpoint's sha256;
- the fingerprint of what decides its score: the torch version, the built model's structure (its module tree and
  tensor shapes), the test split's bytes and labels, and the eager logits of the first ``PROBE`` test images;
- per test image, in the order of the split: the top-1 class, whether the label is among the top 5, and the loss
  (float16).

``tests/test_released.py`` re-computes the fingerprint on every run. When it matches, a fresh random draw of whole
batches of the test split must give the recorded per-image values, and the recorded per-image values must add up to
the checkpoint's metrics: a record that is forged or that does not describe the file fails. When it does not match
(another torch, a changed model, other data), the test re-scores the full split, as before the record existed.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import json
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import zoo
from zoo.data.datasets import Split, batches, load_split
from zoo.metadata import Weights

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "tests" / "released_record.json"
BATCH = 500  # the batch of every recorded pass; spot checks draw whole batches, so they see the same arithmetic
PROBE = 64  # images whose logits are part of the fingerprint
PROBE_ATOL = 1e-4
LOSS_RTOL = 2e-3  # float16 storage of the per-image loss


@dataclasses.dataclass
class Scored:
    """Eager fp32 outputs of one checkpoint for some images of its test split."""

    pred: np.ndarray  # uint8 top-1 class
    top5: np.ndarray  # bool, label among the top 5 (top 1 when there are fewer than 5 classes)
    loss: np.ndarray  # float32 per-image cross-entropy


def build(weights: Weights) -> torch.nn.Module:
    model = zoo.create(weights.arch, weights=weights.name)
    return model.eval()


def load_test_split(weights: Weights) -> Split:
    return load_split(weights.dataset, "test")


def _rows(split: Split, start: int, stop: int) -> Split:
    return dataclasses.replace(split, images=split.images[start:stop], labels=split.labels[start:stop])


@torch.no_grad()
def logits(fn: Any, split: Split, weights: Weights, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """``fn``'s float32 logits for images ``start:stop`` of ``split``, in batches of ``BATCH`` from ``start``."""
    part = _rows(split, start, len(split) if stop is None else stop)
    return torch.cat([fn(x).float() for x, _ in batches(part, BATCH, mean=weights.mean, std=weights.std)])


def score(out: torch.Tensor, labels: torch.Tensor) -> Scored:
    k = min(5, out.shape[1])
    return Scored(pred=out.argmax(1).numpy().astype(np.uint8),
                  top5=(out.topk(k, 1).indices == labels[:, None]).any(1).numpy(),
                  loss=F.cross_entropy(out, labels, reduction="none").numpy())


def fingerprint(weights: Weights, model: torch.nn.Module, split: Split) -> dict[str, Any]:
    """What decides the checkpoint's score, apart from the file itself (its sha256 is checked on load)."""
    shapes = "\n".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in model.state_dict().items())
    data = hashlib.sha256(split.images.numpy().tobytes() + split.labels.numpy().tobytes()).hexdigest()
    return {"torch": torch.__version__.split("+")[0],
            "structure": hashlib.sha256(f"{model!r}\n{shapes}".encode()).hexdigest(),
            "data": data,
            "probe": encode(logits(model, split, weights, 0, PROBE).numpy())}


def encode(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "zlib_b64": base64.b64encode(zlib.compress(a.tobytes(), 9))
            .decode()}


def decode(d: dict[str, Any]) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(d["zlib_b64"]))
    return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"])


def stale_reasons(entry: dict[str, Any] | None, weights: Weights, current: dict[str, Any]) -> list[str]:
    """Why ``entry`` does not describe ``weights`` as they score here (empty: it does)."""
    if entry is None:
        return ["no record"]
    if entry["sha256"] != weights.sha256:
        return [f"recorded for file {entry['sha256'][:8]}, the checkpoint is {weights.sha256[:8]}"]
    recorded = entry["fingerprint"]
    reasons = [f"{key} changed" for key in ("torch", "structure", "data") if recorded[key] != current[key]]
    if not reasons:
        before, now = decode(recorded["probe"]), decode(current["probe"])
        if before.shape != now.shape or not np.allclose(before, now, rtol=0, atol=PROBE_ATOL):
            gap = float(np.abs(before - now).max()) if before.shape == now.shape else float("inf")
            reasons.append(f"logits of the first {PROBE} test images moved by up to {gap:.2g}")
    return reasons


def check_sums(entry: dict[str, Any], weights: Weights, labels: torch.Tensor) -> list[str]:
    """Where the recorded per-image values do not add up to the checkpoint's recorded metrics."""
    m, n = weights.metrics, len(labels)
    pred, top5, loss = decode(entry["pred"]), decode(entry["top5"]), decode(entry["loss"]).astype(np.float64)
    problems = [f"{key}: {len(a)} images, the split has {n}" for key, a in (("pred", pred), ("top5", top5),
                                                                          ("loss", loss)) if len(a) != n]
    if problems:
        return problems
    top1 = 100.0 * int((pred == labels.numpy()).sum()) / n
    if top1 != m.top1:
        problems.append(f"per-image top-1 adds up to {top1}, the checkpoint records {m.top1}")
    if m.top5 is not None and 100.0 * int(top5.sum()) / n != m.top5:
        problems.append(f"per-image top-5 adds up to {100.0 * int(top5.sum()) / n}, the checkpoint records {m.top5}")
    if abs(loss.mean() - m.loss) > LOSS_RTOL * max(1.0, m.loss):
        problems.append(f"per-image losses average {loss.mean():.5f}, the checkpoint records {m.loss:.5f}")
    return problems + [f"the record's own metrics: {p}" for p in exact(entry["metrics"], weights)]


def compare(entry: dict[str, Any], got: Scored, start: int) -> list[str]:
    """Images from ``start`` whose freshly computed values differ from the record."""
    stop = start + len(got.pred)
    pred, top5 = decode(entry["pred"])[start:stop], decode(entry["top5"])[start:stop]
    loss = decode(entry["loss"])[start:stop].astype(np.float32)
    bad = np.flatnonzero((pred != got.pred) | (top5 != got.top5)
                         | ~np.isclose(loss, got.loss, rtol=LOSS_RTOL, atol=1e-4))
    return [f"image {start + int(i)}: recorded class {pred[i]} loss {loss[i]:.4g}, scored class {got.pred[i]} "
            f"loss {got.loss[i]:.4g}" for i in bad[:5]] + ([f"... {len(bad)} images in all"] if len(bad) > 5 else [])


def full_pass(weights: Weights, model: torch.nn.Module, split: Split) -> tuple[Scored, dict[str, float]]:
    """The whole split, eager fp32, and its metrics as the checkpoint records them."""
    out = logits(model, split, weights)
    s = score(out, split.labels)
    n = len(split)
    metrics = {"top1": 100.0 * int((s.pred == split.labels.numpy()).sum()) / n,
               "top5": 100.0 * int(s.top5.sum()) / n if out.shape[1] >= 5 else None,
               "loss": F.cross_entropy(out, split.labels).item()}
    return s, metrics


def exact(metrics: dict[str, float], weights: Weights) -> list[str]:
    m = weights.metrics
    problems = [f"{key} {metrics[key]} != recorded {getattr(m, key)}" for key in ("top1", "top5")
                if metrics[key] != getattr(m, key)]
    if abs(metrics["loss"] - m.loss) > 1e-5:
        problems.append(f"loss {metrics['loss']:.6f} != recorded {m.loss:.6f}")
    return problems


def load_record(path: Path = RECORD) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _entry(weights: Weights, current: dict[str, Any], s: Scored, metrics: dict[str, float]) -> dict[str, Any]:
    return {"sha256": weights.sha256, "fingerprint": current, "metrics": metrics, "batch_size": BATCH,
            "pred": encode(s.pred), "top5": encode(s.top5), "loss": encode(s.loss.astype(np.float16))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="checkpoints (default: every released one)")
    parser.add_argument("--check", action="store_true", help="only list stale records (exit 1 if any)")
    parser.add_argument("--force", action="store_true", help="re-score even where the record is current")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    record = load_record()
    chosen = [zoo.get_weights(n) for n in args.names] if args.names else zoo.list_weights()
    stale = 0
    for weights in chosen:
        model, split = build(weights), load_test_split(weights)
        current = fingerprint(weights, model, split)
        reasons = stale_reasons(record.get(weights.name), weights, current)
        if not reasons and not args.force:
            print(f"{weights.name}: current")
            continue
        stale += 1
        print(f"{weights.name}: {'; '.join(reasons) or 'forced'}")
        if args.check:
            continue
        s, metrics = full_pass(weights, model, split)
        problems = exact(metrics, weights)
        if problems:
            print(f"{weights.name}: the stored file does not reproduce its metrics: {'; '.join(problems)}",
                  file=sys.stderr)
            return 1
        record[weights.name] = _entry(weights, current, s, metrics)
        RECORD.write_text(json.dumps(dict(sorted(record.items())), indent=1) + "\n")
        print(f"{weights.name}: re-scored exactly (top-1 {metrics['top1']:.2f}%), record written")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
