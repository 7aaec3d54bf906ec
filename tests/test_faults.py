"""Fault injection for training: kill -9 at random moments and a full disk during a save, then --resume.

The final weights must be bit-identical to an uninterrupted run and the log must hold each epoch
once. Real MNIST, small slices (ZOO_DATA).
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
import zoo.train.loop as train_mod
from conftest import require_dataset
from zoo.train.loop import train
from zoo.train.recipes import Recipe

pytestmark = [pytest.mark.full_data, pytest.mark.slow]

ARGS = ["train", "-r", "mlp_60_40_20_bn.mnist", "--no-progress", "--set", "epochs=6", "--set", "train_limit=16384",
        "--set", "batch_size=64", "--threads", "1"]


def _zoo(*args: str, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "zoo", *args, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    (path,) = [p for p in run.glob("*.safetensors") if not p.name.startswith(".")]
    return load_file(path)


def _epochs(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()]


def test_kill_9_at_random_moments_then_resume_is_bit_identical(tmp_path: Path) -> None:
    require_dataset("mnist")
    full = _zoo(*ARGS, out=tmp_path / "full")
    assert full.wait(timeout=600) == 0, full.stderr.read().decode() if full.stderr else ""
    rng = random.Random(1234)
    run = tmp_path / "killed"
    kills = 0
    for attempt in range(4):  # three kills at random moments, then a resume that runs to the end
        proc = _zoo(*ARGS, *(["--resume"] if attempt else []), out=run)
        if attempt == 3:
            assert proc.wait(timeout=600) == 0, proc.stderr.read().decode() if proc.stderr else ""
            break
        done = len(_epochs(run)) if (run / "log.jsonl").exists() else 0
        target = done + rng.randint(0, 1)  # during this epoch or the next (or during start-up)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if (run / "log.jsonl").exists() and len(_epochs(run)) >= target:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.8))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    assert kills >= 2, "the kills did not land: the test proved nothing"
    a, b = _weights(tmp_path / "full"), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _epochs(run) == [1, 2, 3, 4, 5, 6]
    assert not [p for p in run.iterdir() if p.name.startswith(".") and p.name != ".lock"]  # no stray temporaries


def test_full_disk_during_a_save_then_resume_is_bit_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_dataset("mnist")
    recipe = Recipe(name="tiny", model="mlp_60_40_20_bn", dataset="mnist", epochs=3, batch_size=64, optimizer="adam",
                    lr=1e-3, schedule="onecycle", train_limit=1024)
    full = train(recipe, out_dir=tmp_path / "full", progress=False)

    real_save = torch.save
    calls = {"n": 0}

    def full_disk(obj: object, f: object, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second epoch's state: half written, then the disk is full
            Path(f).write_bytes(b"PK\x03\x04 partial")  # type: ignore[arg-type]
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(train_mod.torch, "save", full_disk)
    with pytest.raises(zoo.ZooError, match="could not save the training state .*No space left on device"):
        train(recipe, out_dir=tmp_path / "cut", progress=False)
    monkeypatch.setattr(train_mod.torch, "save", real_save)
    assert torch.load(tmp_path / "cut" / "state.pt", weights_only=True)["epoch"] == 1  # the previous state, intact
    assert _epochs(tmp_path / "cut") == [1]
    resumed = train(recipe, out_dir=tmp_path / "cut", progress=False, resume=True)
    a, b = load_file(full.checkpoint), load_file(resumed.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _epochs(tmp_path / "cut") == [1, 2, 3]
    assert not [p for p in (tmp_path / "cut").iterdir() if p.name.startswith(".") and p.name != ".lock"]
