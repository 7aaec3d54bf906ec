"""ONNX Runtime vs eager on the full test set, for every released checkpoint.

    ZOO_DATA=../shared/datasets python tools/export_parity.py

Writes ``benchmarks/results/export_parity.{json,md}``: each checkpoint is exported to ONNX (dynamo
exporter, dynamic batch), evaluated with onnxruntime and eagerly on the whole test split, and the
images whose top-1 class differs are counted and listed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import zoo
from zoo.evaluate import evaluate_model
from zoo.utils.machine import hardware_description

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def main() -> int:
    rows = []
    for w in zoo.list_weights():
        r = evaluate_model(w.arch, w.dataset, weights=w.name, batch_size=500, allow_sample=False,
                           backend="onnxruntime")
        rows.append({"weights": w.name, "images": r.num_images, **{k: v for k, v in r.parity.items()}})
        print(f"{w.name}: {r.parity['summary']}", file=sys.stderr)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "export_parity.json").write_text(json.dumps({"hardware": hardware_description(), "rows": rows},
                                                           indent=2) + "\n")
    lines = ["# ONNX Runtime vs eager, released checkpoints, full test sets", "",
             "Produced by `python tools/export_parity.py` (dynamo ONNX export, onnxruntime CPU, fp32). "
             f"Machine: {hardware_description()}.", "",
             "| weights | images | eager top-1 (%) | onnxruntime top-1 (%) | images whose top-1 differs |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| `{row['weights']}` | {row['images']:,} | {row['eager_top1']:.2f} | "
                     f"{row['backend_top1']:.2f} | {row['disagreeing_images']} |")
    (RESULTS / "export_parity.md").write_text("\n".join(lines) + "\n")
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
