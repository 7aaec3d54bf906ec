"""Pack CIFAR's python batch files losslessly into about 56% of their size, and rebuild them byte for byte.

    python tools/pack_cifar.py pack $ZOO_DATA/cifar-10-batches-py OUT [--files data_batch_1 ...]
    python tools/pack_cifar.py unpack DEST/cifar-10-batches-py PACK_DIR [PACK_DIR ...]

For a machine reached through a link that limits what travels (a GPU machine lent for a few minutes,
say): CIFAR-10's batch files hold 186 MB. ``pack`` writes, per batch file, its 32x32 images as one
WebP-lossless mosaic (100 images a row), the rest of the file (header, labels, file names)
xz-compressed, and a JSON record of the file's size and sha256; ``unpack`` rebuilds each file and
refuses to write one whose sha256 differs. Nothing is unpickled on either side: ``pack`` reads the
images with zoo's restricted reader, ``unpack`` splices bytes. It needs only numpy and Pillow, so it
runs from a bare checkout (``python3 tools/pack_cifar.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta")
ROW = 100  # images per mosaic row


def _mosaic(data: np.ndarray) -> np.ndarray:
    """(N, 3072) CHW rows -> an (N/100*32, 3200, 3) HWC image."""
    rows = len(data) // ROW
    return data.reshape(rows, ROW, 3, 32, 32).transpose(0, 3, 1, 4, 2).reshape(rows * 32, ROW * 32, 3)


def _unmosaic(image: np.ndarray) -> bytes:
    rows = image.shape[0] // 32
    return image.reshape(rows, 32, ROW, 32, 3).transpose(0, 2, 4, 1, 3).tobytes()


def pack(src: Path, out: Path, names: list[str]) -> list[dict[str, object]]:
    """Pack ``names`` from ``src`` into ``out``; returns one record per file."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from zoo.data.cifar_files import read_batch
    from zoo.errors import DatasetError

    out.mkdir(parents=True, exist_ok=True)
    records = []
    for name in names:
        if Path(name).name != name or name.startswith("."):
            raise SystemExit(f"--files: {name!r} is not a file name in {src}")
        raw = (src / name).read_bytes()
        record: dict[str, object] = {"name": name, "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        rest = raw
        if name != "batches.meta":
            try:
                images, _ = read_batch(src / name, "labels", 10)  # N x H x W x C
            except DatasetError as exc:  # unreadable, not CIFAR, or a pickle that would run code
                raise SystemExit(str(exc)) from None
            if len(images) % ROW:
                raise SystemExit(f"{name}: {len(images)} images, not a multiple of {ROW}")
            rows = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), 3072)  # as stored
            data = rows.tobytes()
            offset = raw.find(data[:65536])
            if offset < 0 or raw[offset:offset + len(data)] != data:
                raise SystemExit(f"{name}: the image bytes are not stored contiguously; cannot pack it")
            buf = io.BytesIO()
            Image.fromarray(_mosaic(rows)).save(buf, "WEBP", lossless=True, quality=100, method=4)
            if _unmosaic(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))) != data:
                raise SystemExit(f"{name}: the WebP mosaic does not decode to the same pixels")
            (out / f"{name}.webp").write_bytes(buf.getvalue())
            rest = raw[:offset] + raw[offset + len(data):]
            record.update(offset=offset, length=len(data))
        (out / f"{name}.rest.xz").write_bytes(lzma.compress(rest, preset=9))
        (out / f"{name}.json").write_text(json.dumps(record) + "\n")
        records.append(record)
    return records


def unpack(dest: Path, packs: list[Path]) -> list[str]:
    """Rebuild every packed file of ``packs`` in ``dest``, each checked against its sha256."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for pack_dir in packs:
        metas = sorted(pack_dir.glob("*.json"))
        if not metas:
            raise SystemExit(f"{pack_dir}: no packed files (*.json) here")
        for meta in metas:
            record = json.loads(meta.read_text())
            name = record["name"]
            if Path(name).name != name or name.startswith("."):
                raise SystemExit(f"{meta}: invalid file name {name!r}")
            rest = lzma.decompress((pack_dir / f"{name}.rest.xz").read_bytes())
            if "offset" in record:
                image = np.asarray(Image.open(pack_dir / f"{name}.webp").convert("RGB"))
                raw = rest[:record["offset"]] + _unmosaic(image) + rest[record["offset"]:]
            else:
                raw = rest
            if len(raw) != record["size"] or hashlib.sha256(raw).hexdigest() != record["sha256"]:
                raise SystemExit(f"{name}: rebuilt file differs from the packed one (sha256 mismatch); not written")
            tmp = dest / f".{name}.tmp"
            tmp.write_bytes(raw)
            tmp.replace(dest / name)
            written.append(name)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack batch files")
    p.add_argument("src", type=Path, help="the folder of the batch files (cifar-10-batches-py)")
    p.add_argument("out", type=Path)
    p.add_argument("--files", nargs="+", default=list(CIFAR10_FILES), help="which files (default: all of CIFAR-10)")
    u = sub.add_parser("unpack", help="rebuild batch files")
    u.add_argument("dest", type=Path, help="where to write them (cifar-10-batches-py under a dataset root)")
    u.add_argument("packs", type=Path, nargs="+", help="folders written by pack")
    args = parser.parse_args()
    try:
        return _main(args)
    except (OSError, lzma.LZMAError, ValueError, KeyError) as exc:  # missing or damaged files: one line
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _main(args: argparse.Namespace) -> int:
    if args.command == "pack":
        for r in pack(args.src, args.out, args.files):
            print(f"{r['name']}: {r['size']:,} bytes, sha256 {str(r['sha256'])[:16]}...")
        size = sum(f.stat().st_size for f in args.out.iterdir())
        print(f"{args.out}: {size:,} bytes")
    else:
        for name in unpack(args.dest, args.packs):
            print(f"{name}: rebuilt, sha256 verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
