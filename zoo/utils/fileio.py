"""Files zoo reads and writes: names checked before they become paths, inputs that must be regular files,
archives measured before they are opened, JSON read back with its fields checked, and atomic writes.

``atomic_path(path)`` yields a temporary path next to ``path``; when the block ends without an error
the file is fsynced and renamed over ``path`` in one step, so readers see the old file or the new
one, never half of one. A new file gets the permissions the umask gives (as ``open`` would); a
replaced file keeps its mode. A target that exists must be a regular file (``check_target``): a
device, a FIFO or a folder is never replaced. ``check_name`` refuses a name that could leave its folder.

``regular_file`` is where every file zoo is given enters: it must be a regular file (not ``/dev/zero``,
a FIFO or a folder) of at most ``MAX_FILE_BYTES``. ``check_zip`` reads a zip archive's directory (the
declared sizes of its members) before any reader inflates it. ``json_field`` checks one field of a JSON
file zoo reads back, and names the file and the field when it is wrong.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, ZooError, summarize

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_JSON_BYTES",
    "MAX_UNPACKED_BYTES",
    "MAX_ZIP_MEMBERS",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_name",
    "check_target",
    "check_zip",
    "json_field",
    "read_json",
    "regular_file",
    "replace_into",
    "strict_json",
]

MAX_FILE_BYTES = 2 << 30  # a checkpoint, artefact or image zoo reads: at most 2 GiB
MAX_UNPACKED_BYTES = 2 << 30  # the declared sizes of a zip archive's members, together
MAX_ZIP_MEMBERS = 100_000
MAX_JSON_BYTES = 64 << 20  # a run file, cache or study JSON read back

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


def _kind(mode: int) -> str:
    return ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")


def check_target(path: str | os.PathLike[str]) -> Path:
    """``path`` if it is absent or a regular file (through a symlink too), the only things zoo writes over."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise InvalidArgumentError(f"cannot write {path}: it is {_kind(mode)}, and zoo only replaces regular files; "
                                   f"name a new file")
    return path


def regular_file(path: str | os.PathLike[str], what: str, *, max_bytes: int = MAX_FILE_BYTES) -> Path:
    """``path`` if it is a regular file of at most ``max_bytes`` (a symlink to one is fine), else a one-line error.

    Checked before anything opens it: ``/dev/zero`` reads forever, a FIFO blocks, a folder is not a file.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InvalidArgumentError(f"no {what} at {path}") from None
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArgumentError(f"{what} {path} is {_kind(st.st_mode)}; a regular file is expected")
    if st.st_size > max_bytes:
        raise InvalidArgumentError(f"{what} {path} is {st.st_size:,} bytes, more than the {max_bytes:,} zoo reads")
    return path


def check_zip(path: str | os.PathLike[str], what: str, *, max_bytes: int = MAX_UNPACKED_BYTES) -> None:
    """Refuse a zip archive (pt2, TorchScript, torch ``.pth``) whose members declare more than ``max_bytes``
    together, or more than ``MAX_ZIP_MEMBERS`` members, before any reader inflates it (a zip bomb)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InvalidArgumentError(f"{what} {path} is not a readable zip archive ({summarize(exc)})") from None
    if len(members) > MAX_ZIP_MEMBERS:
        raise InvalidArgumentError(f"{what} {path} holds {len(members):,} archive members, more than the "
                                   f"{MAX_ZIP_MEMBERS:,} zoo opens")
    declared = sum(m.file_size for m in members)
    if declared > max_bytes:
        raise InvalidArgumentError(f"{what} {path} would unpack to {declared:,} bytes (declared by its archive "
                                   f"members), more than the {max_bytes:,} zoo allows; refused before unpacking")


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """The JSON in ``path`` (a regular file of at most ``MAX_JSON_BYTES``); a damaged one is a ``ZooError``."""
    path = regular_file(path, what, max_bytes=MAX_JSON_BYTES)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ZooError(f"{path} cannot be read as {what}: {summarize(exc)}") from None


_MISSING = object()


def json_field(data: Any, key: str, types: type | tuple[type, ...], path: str | os.PathLike[str], *,
               default: Any = _MISSING, check: Any = None, what: str = "a zoo file") -> Any:
    """``data[key]`` if it has one of ``types`` (a bool is not a number) and passes ``check`` (a predicate),
    else a one-line ``ZooError`` naming ``path`` and the field. ``default``: the value when ``key`` is absent
    (or None)."""
    if not isinstance(data, dict):
        raise ZooError(f"{path} cannot be read as {what}: it holds a {type(data).__name__}, not an object")
    value = data.get(key)
    if value is None and default is not _MISSING:
        return default
    numbers = isinstance(types, tuple) and float in types or types in (int, float)
    wrong = not isinstance(value, types) or (isinstance(value, bool) and numbers and bool not in
                                              (types if isinstance(types, tuple) else (types,)))
    if wrong or (check is not None and not check(value)):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else f"{shown[:60]}..."
        raise ZooError(f"{path} cannot be read as {what}: field {key!r} is {shown}"
                       + (" (missing)" if key not in data else ""))
    return value


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; on success it replaces ``path`` atomically.

    The caller writes the whole file to the yielded path (any writer: ``torch.save``, ``savefig``, an
    exporter). On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = check_target(path)
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
    tmp, path = Path(tmp), check_target(path)
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
