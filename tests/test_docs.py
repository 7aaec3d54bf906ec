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


def _gen_readme():
    import importlib.util

    if str(ROOT / "tools") not in sys.path:  # gen_readme imports its neighbours in tools/ (layers)
        sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("zoo_tools_gen_readme", ROOT / "tools" / "gen_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _column(table: str, header: str) -> list[str]:
    lines = [line for line in table.splitlines() if line.startswith("|")]
    index = [c.strip() for c in lines[0].strip("|").split("|")].index(header)
    return [[c.strip() for c in line.strip("|").split("|")][index] for line in lines[2:]]


def test_every_generated_time_names_its_machine_class_and_precision() -> None:
    """The generated times of README and the site (the released checkpoints, the training runs and estimates, the
    studies' wall times) each name the machine in the form zoo.utils.machine writes: the CPU class and the
    precision, or "not recorded" where the record does not say them."""
    import re

    from zoo.utils.hardware import HARDWARE_PATTERN

    tables = _gen_readme()
    machines = _column(tables.weights_table(), "hardware") + _column(tables.training_times(), "machine")
    for table in (tables.landscape_table(), tables.transfer_table()):
        machines += re.findall(r"[Ww]all time [\d.]+ min on (.+?)\.(?:\s|$)", table)
    assert len(machines) >= 2 * len(zoo.list_weights()) + 2
    for machine in machines:
        for part in machine.split(" + "):
            m = HARDWARE_PATTERN.fullmatch(part)
            assert m is not None, machine
            assert "NVIDIA" in m["name"] or (m["cls"] and m["threads"]), machine


def test_readme_is_a_front_door() -> None:
    """README stays about a screen long (the manual is the site) and keeps its two command blocks and its links
    into the site's pages, each of which exists."""
    import re

    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for block in ("main-command", "test-command"):
        assert f"<!-- BEGIN {block} -->" in text and f"<!-- END {block} -->" in text
    links = re.findall(r"\]\((docs/[^)#]+)", text)
    assert len(links) >= 5, links
    for link in links:
        assert (ROOT / link).exists(), link
