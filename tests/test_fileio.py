"""zoo.utils.fileio: names checked before they become paths; atomic writes that follow the umask or keep the mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from zoo.errors import InvalidArgumentError
from zoo.utils.fileio import atomic_path, atomic_write_text, check_name


@pytest.fixture
def umask_027() -> None:
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_follows_the_umask(tmp_path: Path, umask_027: None) -> None:
    path = atomic_write_text(tmp_path / "a.json", "{}\n")
    assert _mode(path) == 0o640 and path.read_text() == "{}\n"


def test_replaced_file_keeps_its_mode(tmp_path: Path, umask_027: None) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("old")
    path.chmod(0o644)  # a deployed file a service user reads
    atomic_write_text(path, "new")
    assert _mode(path) == 0o644 and path.read_text() == "new"


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    path.write_text("previous")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_export_and_plot_files_follow_the_umask(tmp_path: Path, umask_027: None) -> None:
    from zoo.deploy import export_model
    from zoo.utils.plots import plot_curves

    onnx = Path(export_model("mlp_60_40_20_bn", "onnx", out=tmp_path / "m.onnx").path)
    png = plot_curves([{"epoch": 1, "train_loss": 1.0, "train_top1": 40.0, "test_loss": 1.2, "test_top1": 50.0}],
                      tmp_path / "c.png")
    assert _mode(onnx) == 0o640 and _mode(png) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "m.onnx"]


@pytest.mark.parametrize("name", ["cifar10", "v2.1", "a_b-c+d", "x" * 128])
def test_plain_names_pass(name: str) -> None:
    assert check_name(name, "tag") == name


@pytest.mark.parametrize("name", ["", "..", "a/b", "../x", ".hidden", "a\\b", "a b", "x" * 129, "a\x00b", "-x"])
def test_names_that_could_leave_their_folder_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid tag"):
        check_name(name, "tag")
