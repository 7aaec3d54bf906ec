"""Shared test helpers.

Real-data tests read the datasets from ``ZOO_DATA``: they are skipped when it is unset and fail when
it is set but the dataset is missing there (CI sets it, so a missing dataset fails CI).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest


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
    from zoo.data import load_split

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
