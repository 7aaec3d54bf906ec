"""Write the embedded test samples ``zoo/data/_sample/{cifar10,mnist}.npz`` from the real, verified test sets.

Selection: the first ``SAMPLE_PER_CLASS`` (100) images of each class in test-set order, i.e. for each
class c the 100 smallest test indices with label c; stored sorted by test index. Arrays: ``images``
uint8 N x C x H x W, ``labels`` uint8, ``indices`` int32 (positions in the test split).

    python tools/make_sample.py --data-dir ../shared/datasets
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from zoo.data.datasets import SAMPLE_PER_CLASS, load_split

DATASETS = ("cifar10", "mnist")
OUT_DIR = Path(__file__).resolve().parents[1] / "zoo" / "data" / "_sample"


def select(labels: np.ndarray, per_class: int = SAMPLE_PER_CLASS) -> np.ndarray:
    """Sorted indices of the first ``per_class`` occurrences of every class."""
    chosen = [np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]
    if any(len(ix) < per_class for ix in chosen):
        raise ValueError(f"a class has fewer than {per_class} test images")
    return np.sort(np.concatenate(chosen))


def make_sample(name: str, data_dir: str | None, out_dir: Path) -> Path:
    split = load_split(name, "test", data_dir=data_dir)  # verified, or it raises
    labels = split.labels.numpy()
    indices = select(labels)
    out = out_dir / f"{name}.npz"
    np.savez_compressed(
        out,
        images=split.images.numpy()[indices],
        labels=labels[indices].astype(np.uint8),
        indices=indices.astype(np.int32),
    )
    print(f"{out}: {len(indices)} images from {split.root} ({split.verification}), {out.stat().st_size:,} bytes")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="dataset root (default: ZOO_DATA, then the cache folder)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in DATASETS:
        make_sample(name, args.data_dir, args.out_dir)


if __name__ == "__main__":
    main()
