"""Calibrate every released checkpoint and record it: ``benchmarks/results/calibration.json``.

    python tools/calibration_record.py                     # all released checkpoints
    python tools/calibration_record.py resnet20.cifar10    # only these (the others keep their rows)

For each checkpoint, ``zoo.evaluate.calibrate_model`` (``zoo calibrate``): a temperature fitted on the last
5,000 training images, and the test split's ECE, NLL and Brier score at 1 and at it, in fp32 eager. The
README's calibration table (``tools/gen_readme.py``) is generated from the record, and each card's
``temperature`` must equal its row (``tests/test_calibration.py``): paste the printed value into the entry.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import zoo
from zoo.calibration import ECE_DEFINITION
from zoo.evaluate import calibrate_model
from zoo.utils.fileio import atomic_write_text
from zoo.utils.machine import hardware_description

RECORD = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "calibration.json"
HOLDOUT = 5000


def _row(weights: zoo.Weights) -> dict:
    r = calibrate_model(weights.arch, weights=weights.name, holdout=HOLDOUT)
    keep = ("ece", "nll", "brier")
    return {"weights": weights.name, "sha256": weights.sha256, "dataset": weights.dataset, "top1": r.top1,
            "temperature": round(r.temperature, 4), "holdout_images": r.holdout_images,
            "holdout_seen_in_training": r.holdout_seen_in_training, "test_images": r.test_images,
            "before": {k: r.before[k] for k in keep}, "after": {k: r.after[k] for k in keep},
            "hardware": hardware_description(torch.device("cpu"), precision="fp32"), "torch": torch.__version__}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="weights names (default: every released checkpoint)")
    args = parser.parse_args()
    todo = [zoo.get_weights(n) for n in args.names] if args.names else zoo.list_weights()
    old = json.loads(RECORD.read_text()) if RECORD.exists() else {"rows": []}
    rows = {row["weights"]: row for row in old["rows"]}
    released = {w.name for w in zoo.list_weights()}
    for w in todo:
        rows[w.name] = _row(w)
        print(f"{w.name}: temperature={rows[w.name]['temperature']:.4f}, test ECE {rows[w.name]['before']['ece']:.2f}"
              f" -> {rows[w.name]['after']['ece']:.2f}", file=sys.stderr)
    record = {"ece_definition": ECE_DEFINITION, "holdout": f"the last {HOLDOUT:,} training images",
              "precision": "fp32 eager", "rows": [rows[name] for name in sorted(rows) if name in released]}
    atomic_write_text(RECORD, json.dumps(record, indent=1) + "\n")
    print(f"wrote {RECORD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
