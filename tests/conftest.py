"""Shared test helpers, and the suite's time budget (tests/README.md).

Real-data tests read the datasets from ``ZOO_DATA``: they are skipped when it is unset and fail when
it is set but the dataset is missing there (CI sets it, so a missing dataset fails CI).

Under pytest-xdist (``-n 2``, the README's command) each worker computes on one thread, so two workers
share two cores without contention. A quick-tier test (neither ``slow`` nor ``full_data``) that runs
longer than ``QUICK_LIMIT_S`` is listed at the end of the run: mark it, or make it cheaper.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import pytest

QUICK_LIMIT_S = 5.0

if os.environ.get("PYTEST_XDIST_WORKER"):  # before torch is imported: its thread pool reads this once
    os.environ.setdefault("OMP_NUM_THREADS", "1")
# auto's local tuning (zoo.runners.tuned) stays out of the suite: no test tunes unless it asks (tests/test_tune.py),
# and none reads what a developer tuned on this machine (subprocesses inherit both).
os.environ["ZOO_AUTOTUNE"] = "0"
os.environ["ZOO_TUNING_DIR"] = tempfile.mkdtemp(prefix="zoo-tests-tuning-")
atexit.register(shutil.rmtree, os.environ["ZOO_TUNING_DIR"], True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    over = sorted(((r.duration, r.nodeid) for r in terminalreporter.stats.get("passed", [])
                   if r.when == "call" and r.duration > QUICK_LIMIT_S and not {"slow", "full_data"} & set(r.keywords)),
                  reverse=True)
    if over:
        terminalreporter.section(f"quick-tier tests over {QUICK_LIMIT_S:g} s (mark them slow: tests/README.md)")
        for duration, nodeid in over:
            terminalreporter.write_line(f"{duration:7.1f}s {nodeid}")


@pytest.fixture
def restore_threads() -> Iterator[None]:
    """Put torch's thread count back after the test: ``train(threads=N)`` and the CLI's ``--threads`` set it for
    the whole process."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def require_dataset(name: str, split: str = "test") -> None:
    """Skip without ZOO_DATA; with it, load ``name`` (a missing or corrupt dataset fails the test)."""
    if not os.environ.get("ZOO_DATA"):
        pytest.skip("ZOO_DATA is not set; run with ZOO_DATA=<dataset root> (e.g. ../shared/datasets)")
    from zoo.data.datasets import load_split

    load_split(name, split)


class TouchPayload:
    """Unpickling this creates ``marker``: a stand-in for arbitrary code in a hostile pickle."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


class SystemPayload(TouchPayload):
    """The same through ``os.system``: a shell command."""

    def __reduce__(self):  # noqa: ANN204
        return os.system, (f"touch '{self.marker}'",)
