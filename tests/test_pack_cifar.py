"""tools/pack_cifar.py: CIFAR batch files packed small and rebuilt byte for byte, or not at all."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "pack_cifar.py"


def _batch(path: Path, n: int, protocol: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    # Smooth images (as photographs are) with noise, so that the codec has something to predict.
    base = np.linspace(0, 200, 32 * 32, dtype=np.float32).reshape(1, 1, 32, 32)
    images = (base + rng.integers(0, 56, size=(n, 3, 32, 32))).astype(np.uint8).reshape(n, 3072)
    content = {b"batch_label": b"training batch 1 of 5", b"labels": [int(v) for v in rng.integers(0, 10, n)],
               b"data": images, b"filenames": [f"{i}_frog.png".encode() for i in range(n)]}
    path.write_bytes(pickle.dumps(content, protocol=protocol))  # written by the test itself: trusted
    return path.read_bytes()


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_packed_batches_are_rebuilt_byte_for_byte(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    originals = {name: _batch(src / name, 200, protocol=4, seed=i) for i, name in enumerate(("data_batch_1",
                                                                                           "test_batch"))}
    packed = _run("pack", src, tmp_path / "packed", "--files", *originals)
    assert packed.returncode == 0, packed.stderr
    assert sorted(f.name for f in (tmp_path / "packed").glob("*.webp")) == ["data_batch_1.webp", "test_batch.webp"]
    assert sum(f.stat().st_size for f in (tmp_path / "packed").iterdir()) < sum(map(len, originals.values()))

    rebuilt = _run("unpack", tmp_path / "out" / "cifar-10-batches-py", tmp_path / "packed")
    assert rebuilt.returncode == 0, rebuilt.stderr
    for name, raw in originals.items():
        assert (tmp_path / "out" / "cifar-10-batches-py" / name).read_bytes() == raw
        assert f"{name}: rebuilt, sha256 verified" in rebuilt.stdout


def test_a_damaged_pack_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _batch(src / "data_batch_1", 100, protocol=4)
    assert _run("pack", src, tmp_path / "packed", "--files", "data_batch_1").returncode == 0
    rest = tmp_path / "packed" / "data_batch_1.rest.xz"
    from lzma import compress, decompress

    raw = bytearray(decompress(rest.read_bytes()))
    raw[-20] ^= 0xFF  # one byte of a file name
    rest.write_bytes(compress(bytes(raw)))

    r = _run("unpack", tmp_path / "out", tmp_path / "packed")
    assert r.returncode != 0
    assert "data_batch_1: rebuilt file differs from the packed one (sha256 mismatch); not written" in r.stderr
    assert not any((tmp_path / "out").iterdir())


def test_a_file_whose_pixels_are_not_stored_raw_is_refused(tmp_path: Path) -> None:
    # Python 3 writes bytes at protocol 2 as latin1 text: the pixels are not one run of bytes in the file.
    src = tmp_path / "src"
    src.mkdir()
    _batch(src / "data_batch_1", 100, protocol=2)
    r = _run("pack", src, tmp_path / "packed", "--files", "data_batch_1")
    assert r.returncode != 0
    assert "data_batch_1: the image bytes are not stored contiguously; cannot pack it" in r.stderr
    r = _run("pack", src, tmp_path / "packed", "--files", "../src/data_batch_1")  # names only, no paths
    assert r.returncode != 0 and "'../src/data_batch_1' is not a file name in" in r.stderr


def test_a_pickle_that_runs_code_is_refused_by_pack(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (Path.touch, (marker,))

    (src / "data_batch_1").write_bytes(pickle.dumps({b"data": Payload()}, protocol=2))
    r = _run("pack", src, tmp_path / "packed", "--files", "data_batch_1")
    assert r.returncode != 0 and "refused without running it" in r.stderr
    assert not marker.exists()
