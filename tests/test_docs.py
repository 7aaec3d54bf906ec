"""Docs that are generated must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import zoo

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


def _section(text: str, name: str) -> str:
    return text.split(f"<!-- BEGIN {name} -->\n", 1)[1].split(f"<!-- END {name} -->", 1)[0]


def _column(table: str, header: str) -> list[str]:
    lines = [line for line in table.splitlines() if line.startswith("|")]
    index = [c.strip() for c in lines[0].strip("|").split("|")].index(header)
    return [[c.strip() for c in line.strip("|").split("|")][index] for line in lines[2:]]


def test_every_generated_time_names_its_machine_class_and_precision() -> None:
    """README's generated times (the released checkpoints, the training runs and estimates, the studies' wall
    times) each name the machine in the form zoo.utils.machine writes: the CPU class and the precision, or
    "not recorded" where the record does not say them."""
    import re

    from zoo.utils.hardware import HARDWARE_PATTERN

    text = (ROOT / "README.md").read_text()
    machines = _column(_section(text, "weights"), "hardware") + _column(_section(text, "training-times"), "machine")
    for name in ("landscape", "transfer"):
        machines += re.findall(r"[Ww]all time [\d.]+ min on (.+?)\.(?:\s|$)", _section(text, name))
    assert len(machines) >= 2 * len(zoo.list_weights()) + 2
    for machine in machines:
        for part in machine.split(" + "):
            m = HARDWARE_PATTERN.fullmatch(part)
            assert m is not None, machine
            assert "NVIDIA" in m["name"] or (m["cls"] and m["threads"]), machine
