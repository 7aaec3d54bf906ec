"""Files zoo writes: names checked before they become paths, and atomic writes that respect permissions.

``atomic_path(path)`` yields a temporary path next to ``path``; when the block ends without an error
the file is fsynced and renamed over ``path`` in one step, so readers see the old file or the new
one, never half of one. A new file gets the permissions the umask gives (as ``open`` would); a
replaced file keeps its mode. ``check_name`` refuses a name that could leave its folder.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import InvalidArgumentError

__all__ = ["check_name", "atomic_path", "replace_into", "atomic_write_bytes", "atomic_write_text", "strict_json"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")


def check_name(value: str, what: str) -> str:
    """``value`` if it is safe as one path component (letters, digits, ``_ . + -``; no ``..``), else raise."""
    if not _NAME.fullmatch(value) or ".." in value:
        raise InvalidArgumentError(f"invalid {what} {value!r}: use letters, digits and _ . + - (at most 128, "
                                   f"starting with a letter or digit, no '..')")
    return value


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; on success it replaces ``path`` atomically.

    The caller writes the whole file to the yielded path (any writer: ``torch.save``, ``savefig``, an
    exporter). On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")  # writers may need the suffix
    try:
        yield tmp
        replace_into(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def replace_into(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Rename the finished file ``tmp`` over ``path``: fsynced, with ``path``'s old mode or the umask's."""
    tmp, path = Path(tmp), Path(path)
    try:
        mode = path.stat().st_mode & 0o7777  # a replaced file keeps its mode
    except FileNotFoundError:
        mode = 0o666 & ~_umask()  # a new one gets what open() would give it
    os.chmod(tmp, mode)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # make the rename durable (POSIX)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def strict_json(value: Any) -> Any:
    """``value`` with NaN and Inf floats replaced by None: strict JSON parsers reject the bare NaN of json.dumps."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value
