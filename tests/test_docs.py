"""Docs that are generated must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_are_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_readme.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_time_to_accuracy_table_is_current_with_the_run_logs() -> None:
    """benchmarks/results/train_speed.md's time-to-accuracy rows are those docs/runs/*/log.jsonl give today
    (a run's progress landed without `train_speed.py --parts tta` fails here), and the page renders its JSON."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("zoo_bench_train_speed", ROOT / "benchmarks" / "train_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = ROOT / "benchmarks" / "results"
    recorded = json.loads((results / "train_speed.json").read_text())
    assert recorded["tta"] == module.part_tta()
    assert (results / "train_speed.md").read_text() == module.render(recorded)
