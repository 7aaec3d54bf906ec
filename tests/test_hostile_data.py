"""Hostile CIFAR data files: a pickle payload in a batch file never runs, through any command that reads data.

The fixtures are CIFAR-10 folders made here: valid batch files of random images (so the format is
right) with one file replaced by a pickle whose ``__reduce__`` would create a marker file (the
stand-in for arbitrary code). Every path that reads CIFAR (the API, ``zoo-eval``, ``zoo eval``,
``zoo train``, ``zoo export --int8`` calibration and ``zoo analyze landscape``) must refuse it with
a one-line error naming the file, and the marker must never appear.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SystemPayload, TouchPayload

from zoo.cifar_files import UnsafeDataFileError, read_batch
from zoo.data import load_split
from zoo.errors import DatasetError

FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _batch(n: int, seed: int) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"made by the test", b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(n)]}


def _cifar_root(tmp_path: Path, n: int = 20) -> Path:
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate(FILES):
        (folder / name).write_bytes(pickle.dumps(_batch(n, i), protocol=2))
    meta = {b"label_names": [b"c%d" % i for i in range(10)], b"num_cases_per_batch": n, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return tmp_path / "data"


def _poison(root: Path, name: str, payload: object, *, inside: bool = True) -> None:
    """Replace ``name`` with a pickle that runs ``payload``: inside a valid-looking batch dict, or alone."""
    obj: object = payload
    if inside:
        obj = _batch(20, 99)
        obj[b"filenames"] = [payload]  # type: ignore[index]
    (root / "cifar-10-batches-py" / name).write_bytes(pickle.dumps(obj, protocol=2))


@pytest.fixture(params=[TouchPayload, SystemPayload], ids=["touch", "os.system"])
def payload_cls(request: pytest.FixtureRequest) -> type:
    return request.param


def test_payload_is_real(tmp_path: Path, payload_cls: type) -> None:
    canary = tmp_path / "canary"
    pickle.loads(pickle.dumps(payload_cls(canary)))  # plain unpickling runs it
    assert canary.exists()


def test_clean_fixture_loads_and_matches(tmp_path: Path) -> None:
    root = _cifar_root(tmp_path)
    split = load_split("cifar10", "test", data_dir=root, verify=False)
    want = _batch(20, 5)
    assert split.images.shape == (20, 3, 32, 32)
    assert np.array_equal(split.images.numpy().reshape(20, 3072), want[b"data"])
    assert split.labels.tolist() == want[b"labels"]


@pytest.mark.parametrize("inside", [True, False], ids=["in-batch-dict", "bare"])
@pytest.mark.parametrize("name", ["test_batch", "data_batch_3"])
def test_api_refuses_payload_without_running_it(tmp_path: Path, payload_cls: type, inside: bool, name: str) -> None:
    root = _cifar_root(tmp_path)
    marker = tmp_path / "marker"
    _poison(root, name, payload_cls(marker), inside=inside)
    split = "test" if name == "test_batch" else "train"
    for verify in (True, False):  # --no-verify must not open the door either
        with pytest.raises(UnsafeDataFileError, match=f"{name} is not a plain CIFAR batch file"):
            load_split("cifar10", split, data_dir=root, verify=verify)
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable CIFAR batch file"),
    (b"\x80\x02}q\x00(U\x04data", "not a readable CIFAR batch file"),  # truncated
    (pickle.dumps([1, 2, 3], protocol=2), "holds a list, not a dict"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}), "not a uint8 array"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "not as many labels"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}), r"labels are not integers in \[0, 10\)"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), "has no 'labels' entry"),
])
def test_malformed_batch_files_are_one_line_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as info:
        read_batch(path, "labels", 10)
    assert "\n" not in str(info.value)


def _cli(args: list[str], root: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZOO_DATA": str(root)}
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


COMMANDS = {
    "zoo eval": (["eval", "-m", "lenet_cifar", "cifar10"], "test_batch"),
    "zoo eval --no-verify": (["eval", "-m", "lenet_cifar", "cifar10", "--no-verify"], "test_batch"),
    "zoo train": (["train", "-r", "lenet_cifar.cifar10", "--set", "epochs=1", "--out", "run"], "data_batch_1"),
    "zoo export --int8": (["export", "-m", "lenet_cifar", "--int8", "--out", "m.onnx"], "test_batch"),
    "zoo analyze landscape": (["analyze", "landscape", "--steps", "2", "--train-images", "64", "--out", "ls"],
                              "data_batch_1"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_payload(tmp_path: Path, command: str) -> None:
    args, poisoned = COMMANDS[command]
    root = _cifar_root(tmp_path)
    marker = tmp_path / "marker"
    _poison(root, poisoned, SystemPayload(marker))
    proc = _cli(args, root, tmp_path)
    assert not marker.exists(), f"{command}: the payload ran"
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("error: ") and f"{poisoned} is not a plain CIFAR batch file" in lines[-1]


def test_zoo_eval_entry_point_refuses_payload(tmp_path: Path) -> None:
    root = _cifar_root(tmp_path)
    marker = tmp_path / "marker"
    _poison(root, "test_batch", SystemPayload(marker))
    code = "import sys; from zoo.cli import eval_main; sys.argv = ['zoo-eval', '-m', 'lenet_cifar', 'cifar10']; eval_main()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "ZOO_DATA": str(root)})
    assert not marker.exists()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "test_batch is not a plain CIFAR batch file" in proc.stderr


@pytest.mark.parametrize("tag", ["x/../../../escaped", "../up", "a/b", "..", ".hidden", "", "a" * 200, "tab\tx"])
def test_train_refuses_a_tag_that_is_not_a_plain_name(tmp_path: Path, tag: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "zoo", "train", "-r", "lenet_cifar.cifar10", "--tag", tag,
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: invalid tag")
    assert not (tmp_path / "run").exists()  # refused before any work
    assert not list(tmp_path.rglob("*.safetensors"))
