"""How fast the command line answers, side by side with ``python -c "import torch"`` in one run.

Each command runs as a fresh process, the commands interleaved round by round (so a busy moment
hits all of them alike); the median wall time of ``--rounds`` rounds is compared with that of
importing torch. Targets (issue "Using a pretrained model"): ``zoo --help`` at most 0.3x, ``zoo list``
at most 1.5x. Results: ``benchmarks/results/cli_latency.{json,md}``.

    python benchmarks/cli_latency.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from zoo.utils.fileio import atomic_write_text
from zoo.utils.machine import device_name

RESULTS = Path(__file__).resolve().parent / "results"
ZOO = shutil.which("zoo") or "zoo"
COMMANDS = {
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    "zoo --help": [ZOO, "--help"],
    "zoo train --help": [ZOO, "train", "--help"],
    "zoo list": [ZOO, "list"],
    "zoo list --pretrained --json": [ZOO, "list", "--pretrained", "--json"],
    "zoo info resnet20.cifar10": [ZOO, "info", "resnet20.cifar10"],
}
TARGETS = {"zoo --help": 0.3, "zoo list": 1.5}


def _load() -> float:
    """Share of the CPU busy over a short window, from /proc/stat (0 when unknown)."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]

    try:
        total0, idle0 = sample()
        time.sleep(0.5)
        total1, idle1 = sample()
    except OSError:
        return 0.0
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    load = _load()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, cmd in COMMANDS.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times['python -c "import torch"'])
    rows = [{"command": name, "median_s": statistics.median(t), "min_s": min(t), "ratio": statistics.median(t) / base,
             "target": TARGETS.get(name)} for name, t in times.items()]
    result = {"date": datetime.date.today().isoformat(), "machine": device_name(), "cpu_busy_before": round(load, 3),
              "rounds": args.rounds, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "cli_latency.json", json.dumps(result, indent=2) + "\n")
    lines = ["# Command-line latency", "",
             f"Produced by `python benchmarks/cli_latency.py` on {result['date']}; machine: {result['machine']}. "
             f"Each command is a fresh process, interleaved over {args.rounds} rounds; median wall time and its "
             f"ratio to `python -c \"import torch\"` in the same run. CPU busy before the run: "
             f"{100 * load:.0f}%.", "",
             "| command | median (s) | fastest (s) | / import torch | target | met |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        target = "" if r["target"] is None else f"<= {r['target']}x"
        met = "" if r["target"] is None else ("yes" if r["ratio"] <= r["target"] else "no")
        lines.append(f"| `{r['command']}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['ratio']:.2f}x | {target} | "
                     f"{met} |")
    atomic_write_text(RESULTS / "cli_latency.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
