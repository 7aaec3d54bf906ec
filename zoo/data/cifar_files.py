"""Reading CIFAR's python batch files without ever running code from them.

The CIFAR-10/100 "python version" files are pickles. ``pickle.load`` on a file from a data folder
would run whatever ``__reduce__`` payload it holds, so zoo never calls it, nor torchvision's
``CIFAR10``/``CIFAR100`` (which unpickles every batch file, and ``batches.meta``, when constructed).
``read_batch`` uses a restricted unpickler instead: the only globals it resolves are the three numpy
names a pickled ``ndarray`` needs (``_reconstruct``, ``ndarray``, ``dtype``) and a latin1-only stand-in
for ``_codecs.encode`` (how Python 3 pickles bytes at protocol 2); anything else (``os.system``,
``builtins.eval``, ``subprocess.Popen``, ...) raises ``UnsafeDataFileError`` before it is looked up.
What comes out is then checked against the format: a dict with a uint8 ``data`` array of N x 3072
and N integer labels in range.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError

__all__ = ["UnsafeDataFileError", "read_batch", "ALLOWED_GLOBALS"]

try:  # numpy >= 2 keeps the implementation under numpy._core and aliases numpy.core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What ``_codecs.encode`` does for bytes pickled by Python 3 at protocol 2, and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeDataFileError(f"calls _codecs.encode with {encoding!r}, not the latin1 of pickled bytes")
    return text.encode("latin1")


# (module, name) as written in the pickle -> the object it may resolve to. Nothing else resolves.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class UnsafeDataFileError(DatasetError):
    """A data file asks the unpickler for something outside the CIFAR format (possibly code to run)."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeDataFileError(f"refers to {module}.{name}, which the CIFAR format never holds") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeDataFileError("uses persistent ids, which the CIFAR format never holds")


def _field(raw: dict[Any, Any], key: str) -> Any:
    for k in (key.encode(), key):
        if k in raw:
            return raw[k]
    raise KeyError(key)


def read_batch(path: Path, labels_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 N x 32 x 32 x 3, labels int64 N)`` of one CIFAR batch file, code-free.

    Raises ``UnsafeDataFileError`` for a pickle that names anything but a numpy array, and
    ``DatasetError`` (one line, naming the file) for one that is unreadable or not in the format.
    """
    try:
        with open(path, "rb") as f:
            raw = _RestrictedUnpickler(f, encoding="bytes").load()
    except UnsafeDataFileError as exc:
        raise UnsafeDataFileError(f"{path} is not a plain CIFAR batch file: it {exc}; refused without "
                                  f"running it. Replace the file with a clean copy") from None
    except OSError as exc:
        raise DatasetError(f"could not read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # a boundary: truncated or malformed pickles raise many kinds of error
        raise DatasetError(f"{path} is not a readable CIFAR batch file ({type(exc).__name__}: {exc}); "
                           f"the file may be corrupt: replace it with a clean copy") from None
    try:
        if not isinstance(raw, dict):
            raise ValueError(f"holds a {type(raw).__name__}, not a dict")
        data, labels = _field(raw, "data"), _field(raw, labels_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError("its data is not a uint8 array of N x 3072")
        if not isinstance(labels, (list, np.ndarray)) or len(labels) != data.shape[0]:
            raise ValueError(f"it holds {data.shape[0]} images but not as many labels")
        targets = np.asarray(labels)
        if targets.size and (targets.dtype.kind not in "iu" or targets.min() < 0 or targets.max() >= num_classes):
            raise ValueError(f"its labels are not integers in [0, {num_classes})")
    except (KeyError, ValueError) as exc:
        what = f"has no {exc.args[0]!r} entry" if isinstance(exc, KeyError) else str(exc)
        raise DatasetError(f"{path} is not in the CIFAR format: it {what}") from None
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # N x H x W x C, as torchvision keeps it
    return np.ascontiguousarray(images), targets.astype(np.int64)
