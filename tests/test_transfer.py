"""Report 003's transfer study, on a tiny configuration (real CIFAR-10)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_dataset
from zoo.studies.transfer import redraw_transfer, run_transfer, transfer_config


@pytest.mark.full_data
def test_transfer_study_runs_and_records_its_comparison(tmp_path: Path) -> None:
    require_dataset("cifar10")
    config = transfer_config("short", source_epochs=1, source_images=500, target_images=100, target_steps=6,
                             probe_every=3, test_images=200, batch_size=32)
    r = run_transfer(config, out_dir=tmp_path, threads=1)
    saved = json.loads((tmp_path / "transfer.json").read_text())
    assert (tmp_path / "transfer.png").stat().st_size > 10_000
    assert saved["layers"]["frozen_tensors_unchanged"] and saved["layers"]["frozen"][:2] == ["conv1", "bn1"]
    for run in ("transfer", "scratch"):
        assert saved["runs"][run]["step"] == [0, 3, 6] and len(saved["runs"][run]["test_top1"]) == 3
    assert saved["target"] == {"train_images": 100, "test_images": 200,
                               "classes": ["dog", "frog", "horse", "ship", "truck"]}
    assert set(saved["agrees_with_report_003"]) == set(r["agrees_with_report_003"]) and len(r["paths"]) == 2
    redrawn = redraw_transfer(tmp_path / "transfer.json", tmp_path / "again")
    assert Path(redrawn["paths"][1]).is_file()
    with pytest.raises(Exception, match="overlap"):
        transfer_config("short", target_classes=(4, 5, 6, 7, 8))
    proc = subprocess.run([sys.executable, "-m", "zoo", "analyze", "transfer", "--from-json",
                           str(tmp_path / "transfer.json"), "--json"], capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout)["final"].keys() == {"transfer", "scratch"}
