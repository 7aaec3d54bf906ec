"""zoo's ``auto``, tuned on this machine, beside what a user would run instead: zoo's ONNX file in OpenVINO and in
onnxruntime, each with its own defaults at the same thread count (``zoo bench --tune``, then ``--peers``).

For each model, ``zoo.benchmark.tune`` first times auto's candidates at the batch sizes (into a fresh tuning
table, so the record does not depend on what was tuned here before), then one ``zoo.benchmark.bench`` call
runs ``auto`` and the peers interleaved (one call of each per round), so their ratios hold under a load that
comes and goes; the load average is recorded. Where ``auto`` does not reach the peer, the record keeps every
candidate's speed from the tuning, which shows what zoo could have picked.

    python benchmarks/auto_vs_peers.py                       # resnet18, resnet20, vgg19_bn, fastnet at 1, 64, 256
    python benchmarks/auto_vs_peers.py --markdown-only       # rewrite the .md from the .json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from zoo.utils.fileio import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ["resnet18", "resnet20", "vgg19_bn", "fastnet"]
BATCHES = [1, 64, 256]
PEERS = ("openvino-defaults", "onnxruntime-defaults")


def measure(models: list[str], batches: list[int], threads: int, min_time_s: float) -> dict[str, Any]:
    """Tune each model in a fresh table, then bench auto beside the peers; the record's JSON."""
    from zoo.benchmark import bench
    from zoo.benchmark.tune import tune

    with tempfile.TemporaryDirectory(prefix="zoo-tuning-") as tuning:
        os.environ["ZOO_TUNING_DIR"] = tuning
        tuned = {m: tune(m, batch_sizes=batches, threads=threads, int8=True).to_dict() for m in models}
        report = bench(models, backends=["auto", "auto-int8", "openvino"], batch_sizes=batches, threads=[threads],
                       min_time_s=min_time_s, peers=True, peak=False)
    rows = [r.to_dict() for r in report.rows]
    return {"date": time.strftime("%Y-%m-%d"), "threads": threads, "machine": report.machine,
            "loadavg_end": report.loadavg_end, "wall_s": report.wall_s, "tuning": tuned, "rows": rows}


def _speed(rows: list[dict[str, Any]], model: str, backend: str, batch: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["model"] == model and r["backend"] == backend and r["batch_size"] == batch
                 and r["ok"]), None)


def markdown(record: dict[str, Any]) -> str:
    m = record["machine"]
    lines = ["# auto vs what users run instead", "",
             f"Measured on {record['date']} on {m['hardware']} ({record['threads']} threads; torch {m['torch']}, "
             f"onnxruntime {m['onnxruntime']}, OpenVINO {m['openvino']}) by `python benchmarks/auto_vs_peers.py`; "
             f"load average at the end {', '.join(f'{v:.2f}' for v in record['loadavg_end'] or [])}. `auto` was "
             "tuned here first (`zoo bench --tune`, a fresh table); the peers are zoo's ONNX file in OpenVINO and "
             "in onnxruntime with their own defaults and the same thread count (`zoo bench --peers`). Ratios are "
             "auto's images/s over the peer's, measured interleaved in one run. `auto-int8` is set against zoo's "
             "OpenVINO fp32 runner (`openvino`) of the same model; it may run int8 only where the default checkpoint's "
             "recorded int8 top-1 change is within 0.3 points (`zoo/runners/int8.json`).", "",
             "| model | batch | auto ran | auto images/s | OpenVINO defaults | x | onnxruntime defaults | x | "
             "auto-int8 ran | auto-int8 images/s | OpenVINO fp32 | x |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    lost = []
    for model in record["tuning"]:
        for b in sorted({r["batch_size"] for r in record["rows"]}):
            a = _speed(record["rows"], model, "auto", b)
            if a is None:
                continue
            cells = [f"`{model}`", str(b), f"`{a['setting']}`", f"{a['images_per_s']:,.0f}"]
            for peer in PEERS:
                p = _speed(record["rows"], model, peer, b)
                ratio = a["images_per_s"] / p["images_per_s"] if p else None
                cells += [f"{p['images_per_s']:,.0f}" if p else "-", f"**{ratio:.2f}**" if ratio else "-"]
                if ratio is not None and ratio < 1.0:
                    lost.append((model, b, peer, ratio))
            q, f = _speed(record["rows"], model, "auto-int8", b), _speed(record["rows"], model, "openvino", b)
            cells += [f"`{q['setting']}`" if q else "-", f"{q['images_per_s']:,.0f}" if q else "-",
                      f"{f['images_per_s']:,.0f}" if f else "-",
                      f"**{q['images_per_s'] / f['images_per_s']:.2f}**" if q and f else "-"]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "OpenVINO's defaults on this CPU: " + "; ".join(sorted({n for r in record["rows"]
                                                                          if r["backend"] == "openvino-defaults"
                                                                          for n in r["notes"]})) + ".", ""]
    if lost:
        lines += ["## Where auto trails", "", "Every candidate auto could pick, as the tuning measured it "
                  "(images/s; setup time in seconds):", ""]
        for model, b, peer, ratio in lost:
            point = next(p for p in record["tuning"][model]["points"] if p["batch_size"] == b)
            speeds = ", ".join(f"`{s}` {c['images_per_s']:,.0f} ({c['setup_s']:.1f} s)"
                               for s, c in sorted(point["candidates"].items(), key=lambda kv: -kv[1]["images_per_s"]))
            lines.append(f"- `{model}` at batch {b}: {ratio:.2f}x `{peer}`; candidates: {speeds}.")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCHES)))
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed calls per batch (slowest)")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the .json")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    path = args.out / "auto_vs_peers.json"
    if args.markdown_only:
        record = json.loads(path.read_text())
    else:
        record = measure(args.models.split(","), [int(b) for b in args.batch_sizes.split(",")], args.threads,
                         args.min_time)
        atomic_write_text(path, json.dumps(record, indent=1, default=str) + "\n")
    atomic_write_text(args.out / "auto_vs_peers.md", markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
