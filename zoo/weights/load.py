"""Checkpoint files: the format, finding (and downloading) released files, and loading them.

The records (``Weights``, ``Metrics``) are in ``zoo.metadata``, their lookup in ``zoo.registry``;
both are re-exported here.

A zoo checkpoint is a safetensors file whose header repeats what a reader needs to use it alone:
the architecture, the dataset and its constants (classes, input size, mean/std), the storage dtype,
and, for released weights, the recipe and the metrics measured from that very file. Released weights
are named ``arch.tag`` (``resnet20.cifar10``) and registered with their model
(``register_model(..., weights=(...))``, the first is the default); each records the file's sha256,
which is checked every time the file is loaded.

Where a registered checkpoint is looked for, in order:

1. ``$ZOO_WEIGHTS_DIR/<file_name>`` (when set), then a git checkout's ``weights/<file_name>``;
2. the cache, keyed by content: ``$ZOO_CACHE/<sha256>.safetensors``
   (default ``$XDG_CACHE_HOME/zoo/weights``, i.e. ``~/.cache/zoo/weights``);
3. a download (``download_url``): ``$ZOO_WEIGHTS_URL/<file_name>`` when that mirror is set, else the
   entry's ``url``, else the project's host ``DEFAULT_WEIGHTS_URL`` (none exists yet). The file is
   verified before it enters the cache, so the cache never holds a partial or wrong file.

Third-party state dicts (``.pth``, ``.pt``, ``.th``, ``.tar``) are read with
``torch.load(weights_only=True)`` only: a file that would run code when unpickled is refused.
Every load is strict: a missing or unexpected key, or a shape mismatch, is an error naming them all.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import http.client
import io
import json
import logging
import os
import pickle
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import safetensors.torch
import torch
import torch.nn as nn
from safetensors import SafetensorError

from .._version import __version__
from ..errors import CheckpointError, InvalidArgumentError, UnknownModelError, summarize
from ..metadata import SAFETENSORS_SUFFIX, Metrics, Weights
from ..registry import all_weights, get_entry, get_weights, list_weights
from ..specs import DatasetSpec, get_dataset_spec
from ..utils.fileio import atomic_write_bytes, check_zip, regular_file

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Metrics",
    "Weights",
    "ResolvedWeights",
    "save_checkpoint",
    "read_checkpoint",
    "read_metadata",
    "sha256_file",
    "weights_dirs",
    "download_url",
    "where",
    "download",
    "verify_files",
    "DEFAULT_WEIGHTS_URL",
    "cache_dir",
    "resolve",
    "load_into",
    "list_weights",
    "get_weights",
]

_logger = logging.getLogger(__name__)

FORMAT = "zoo.checkpoint"  # header "format": marks a file written by save_checkpoint
FORMAT_VERSION = 1
TORCH_SUFFIXES = (".pth", ".pt", ".th", ".tar")
# Keys under which training scripts nest the state dict, tried in this order.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
# Prefixes added by nn.DataParallel / DistributedDataParallel and by torch.compile.
_PREFIXES = ("module.", "_orig_mod.")
_STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_CHECKOUT = Path(__file__).resolve().parents[2]
# A git checkout's weights/ folder; an installed package has none (the wheel holds no checkpoints).
_REPO_WEIGHTS_DIR: Path | None = _CHECKOUT / "weights" if (_CHECKOUT / "pyproject.toml").is_file() else None
# The project's public host for released files (``<base>/<file_name>``). zoo has none yet: files are
# in the repository's weights/ folder; $ZOO_WEIGHTS_URL names a mirror of it.
DEFAULT_WEIGHTS_URL: str | None = None
_DOWNLOAD_TRIES = 3
DOWNLOAD_TIMEOUT_S = 30.0  # connecting, and each read: a server silent this long fails the try
DOWNLOAD_DEADLINE_S = 600.0  # the whole download, every try together
# Float types a checkpoint may hold: float8 and friends have no arithmetic zoo's models (or isfinite) run.
_ODD_FLOATS = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                                                 "float8_e8m0fnu", "float4_e2m1fn_x2") if hasattr(torch, n))

StateDict = dict[str, torch.Tensor]
PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class ResolvedWeights:
    """Where a weights spec led: the file, its registered entry (None for a plain path) and how it was found.

    ``source`` is one of ``"path"``, ``"weights_dir"``, ``"cache"``, ``"download"``.
    """

    path: Path
    weights: Weights | None
    source: str


# --------------------------------------------------------------------------------------------------
# The file format


def sha256_file(path: PathLike) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _storage_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or (isinstance(dtype, torch.dtype) and dtype in _STORAGE_DTYPES.values()):
        return dtype
    if isinstance(dtype, str) and dtype in _STORAGE_DTYPES:
        return _STORAGE_DTYPES[dtype]
    raise InvalidArgumentError(f"dtype must be one of {', '.join(_STORAGE_DTYPES)} or None, got {dtype!r}")


def _prepare_tensors(state_dict: Mapping[str, Any], dtype: torch.dtype | None) -> StateDict:
    """CPU, contiguous, unshared copies; floating tensors cast to ``dtype`` when given (integers never are)."""
    tensors: StateDict = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise InvalidArgumentError(f"state dict entry {key!r} is a {type(value).__name__}, not a tensor")
        t = value.detach().to("cpu", copy=True)
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[key] = t.contiguous()
    return tensors


def _dtype_name(tensors: StateDict) -> str:
    names = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.is_floating_point()})
    return ",".join(names) or "none"


def _header_metadata(arch: str, dataset: str | DatasetSpec, tensors: StateDict,
                     extra: Mapping[str, Any] | None) -> dict[str, str]:
    spec = dataset if isinstance(dataset, DatasetSpec) else get_dataset_spec(dataset)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "arch": arch,
        "dataset": spec.name,
        "num_classes": str(spec.num_classes),
        "classes": json.dumps(list(spec.classes)),
        "input_size": json.dumps(list(spec.input_size)),
        "mean": json.dumps(list(spec.mean)),
        "std": json.dumps(list(spec.std)),
        "dtype": _dtype_name(tensors),
        "zoo_version": __version__,
    }
    for key, value in (extra or {}).items():
        if key in metadata:
            raise InvalidArgumentError(f"extra_metadata may not override {key!r}; it is written from the arguments")
        metadata[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return metadata


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` next to ``path``, fsync, rename into place (``zoo.utils.fileio``: the umask or the old mode)."""
    atomic_write_bytes(path, data)


def save_checkpoint(state_dict_or_model: nn.Module | Mapping[str, torch.Tensor], path: PathLike, *, arch: str,
                    dataset: str | DatasetSpec, extra_metadata: Mapping[str, Any] | None = None,
                    dtype: str | torch.dtype | None = None) -> str:
    """Write a self-describing safetensors checkpoint atomically and return its sha256.

    Args:
        state_dict_or_model: a module (its ``state_dict()`` is saved) or a state dict of tensors.
        path: destination, ending in ``.safetensors``.
        arch: the registered architecture name, checked again when the file is loaded.
        dataset: the dataset the model was trained on (a name, or a ``DatasetSpec`` such as an image
            folder's); its constants go into the header.
        extra_metadata: more header entries (e.g. ``recipe``, ``metrics``); values that are not
            strings are stored as JSON. The essentials cannot be overridden.
        dtype: ``"float16"`` to store floating tensors in half precision (integer buffers such as
            BatchNorm's ``num_batches_tracked`` keep their type), ``"float32"``, or None to keep them as they are.
    """
    path = Path(path)
    if path.suffix != SAFETENSORS_SUFFIX:
        raise InvalidArgumentError(f"zoo checkpoints are safetensors files: {path} must end in {SAFETENSORS_SUFFIX}")
    state_dict = state_dict_or_model.state_dict() if isinstance(state_dict_or_model, nn.Module) else state_dict_or_model
    tensors = _prepare_tensors(state_dict, _storage_dtype(dtype))
    data = safetensors.torch.save(tensors, metadata=_header_metadata(arch, dataset, tensors, extra_metadata))
    _write_atomic(path, data)
    sha256 = hashlib.sha256(data).hexdigest()
    _logger.info("saved %s checkpoint %s (%d tensors, %d bytes, sha256 %s)", arch, path, len(tensors), len(data),
                 sha256)
    return sha256


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        return "safetensors"
    if suffix in TORCH_SUFFIXES:
        return "torch"
    raise CheckpointError(
        f"cannot tell the format of {path}: expected a {SAFETENSORS_SUFFIX} file or a torch state dict "
        f"({', '.join(TORCH_SUFFIXES)})"
    )


def _safetensors_header(data: bytes) -> dict[str, Any]:
    """The JSON header of a safetensors file: an 8-byte little-endian length, then that many bytes of JSON."""
    if len(data) < 8:
        raise ValueError(f"file is {len(data)} bytes long, shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", data[:8])
    if 8 + length > len(data):
        raise ValueError(f"header claims {length} bytes, file has {len(data) - 8}")
    header = json.loads(data[8:8 + length])
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header


def _corrupt(path: Path, error: BaseException) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} is corrupt or truncated ({summarize(error)}); replace the file")


def _parse_safetensors(data: bytes, path: Path) -> tuple[StateDict, dict[str, str]]:
    try:
        metadata = _safetensors_header(data).get("__metadata__") or {}
        tensors = safetensors.torch.load(data)
    except (SafetensorError, ValueError, TypeError, RecursionError) as e:  # JSON, Unicode: ValueErrors
        raise _corrupt(path, e) from e
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def _unpickling_detail(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "unsupported" in line.lower():
            return line.removeprefix("WeightsUnpickler error: ")[:200]
    return summarize(error, last=True)


def _parse_torch(data: bytes, path: Path) -> StateDict:
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path} contains objects other than tensors and was refused for safety "
            f"(torch.load(weights_only=True): {_unpickling_detail(e)}); zoo never unpickles code. "
            f"If you trust the file, load it yourself and save its state dict with zoo.weights.save_checkpoint"
        ) from None
    except Exception as e:  # noqa: BLE001  (torch raises RuntimeError, EOFError, IndexError, OSError, ...)
        raise _corrupt(path, e) from e
    return _unwrap(obj, path)


def _is_tensor_dict(obj: Mapping[Any, Any]) -> bool:
    return all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_prefixes(key: str) -> str:
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def _unwrap(obj: Any, path: Path) -> StateDict:
    """The state dict inside a training checkpoint: nested under a wrapper key, DataParallel prefix removed."""
    while isinstance(obj, Mapping) and not _is_tensor_dict(obj):
        key = next((k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            others = [f"{k} ({type(v).__name__})" for k, v in obj.items() if not isinstance(v, torch.Tensor)]
            raise CheckpointError(
                f"{path} holds no state dict: entries that are not tensors: {', '.join(others[:10])}; "
                f"expected tensors, or a dict nesting them under one of: {', '.join(_WRAPPER_KEYS)}"
            )
        obj = obj[key]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return {_strip_prefixes(str(k)): v for k, v in obj.items()}


_MAX_HEADER_BYTES = 100_000_000  # safetensors' own bound on the JSON header


def _read_bytes(path: Path) -> bytes:
    """The checkpoint's bytes, read only after the file is known to be a regular file of at most
    ``zoo.utils.fileio.MAX_FILE_BYTES``, a safetensors header length fits the file, and a zip's members declare at
    most ``zoo.utils.fileio.MAX_UNPACKED_BYTES`` (a few MB that would become gigabytes are refused unread)."""
    try:
        size = regular_file(path, "checkpoint").stat().st_size
        if _format_of(path) == "safetensors":
            _check_header_length(path, size)
        elif zipfile.is_zipfile(path):
            check_zip(path, "checkpoint")
        return path.read_bytes()
    except InvalidArgumentError as e:
        raise CheckpointError(str(e)) from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from e


def _check_header_length(path: Path, size: int) -> None:
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        raise _corrupt(path, ValueError(f"file is {len(head)} bytes long, shorter than the 8-byte header length"))
    (length,) = struct.unpack("<Q", head)
    if length > _MAX_HEADER_BYTES or 8 + length > size:
        raise _corrupt(path, ValueError(f"header claims {length:,} bytes, file has {size - 8:,}"))


def _parse(data: bytes, path: Path) -> tuple[StateDict, dict[str, str]]:
    if _format_of(path) == "safetensors":
        return _parse_safetensors(data, path)
    return _parse_torch(data, path), {}


def read_checkpoint(path: PathLike) -> tuple[StateDict, dict[str, str]]:
    """Tensors and header metadata (strings; JSON for lists and records) of a checkpoint file.

    Third-party torch files come back unwrapped, without prefixes, and with empty metadata.
    """
    path = Path(path)
    return _parse(_read_bytes(path), path)


def read_metadata(path: PathLike) -> dict[str, str]:
    """The header metadata of a safetensors checkpoint, without reading its tensors ({} for torch files)."""
    path = Path(path)
    if _format_of(path) != "safetensors":
        return {}
    try:
        regular_file(path, "checkpoint")
    except InvalidArgumentError as e:
        raise CheckpointError(str(e)) from None
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            length = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            if length > _MAX_HEADER_BYTES:
                raise ValueError(f"header claims {length:,} bytes")
            metadata = _safetensors_header(head + f.read(length)).get("__metadata__") or {}
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from e
    except (ValueError, struct.error) as e:
        raise _corrupt(path, e) from e
    return {str(k): str(v) for k, v in metadata.items()}


# --------------------------------------------------------------------------------------------------
# Released weights of a model (the lookup itself is zoo.registry's)


def _weights_of(arch: str) -> tuple[Weights, ...]:
    try:
        return get_entry(arch).weights
    except UnknownModelError:  # an unregistered model can still load a file
        return ()


# --------------------------------------------------------------------------------------------------
# Finding the file


def weights_dirs() -> list[Path]:
    """Folders searched for released files by name: ``$ZOO_WEIGHTS_DIR`` (when set), then a checkout's weights/.

    An installed package has no weights folder of its own (the wheel holds no checkpoints).
    """
    dirs = [Path(os.environ["ZOO_WEIGHTS_DIR"]).expanduser()] if os.environ.get("ZOO_WEIGHTS_DIR") else []
    return dirs + ([_REPO_WEIGHTS_DIR] if _REPO_WEIGHTS_DIR is not None else [])


def cache_dir() -> Path:
    """Where released files are cached by sha256: ``$ZOO_CACHE``, else ``$XDG_CACHE_HOME/zoo/weights``."""
    if os.environ.get("ZOO_CACHE"):
        return Path(os.environ["ZOO_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "zoo" / "weights"


def download_url(weights: Weights) -> str | None:
    """Where ``weights`` can be downloaded from, or None.

    ``$ZOO_WEIGHTS_URL`` (a mirror: the file is ``<base>/<file_name>``) comes first, then the entry's
    own ``url``, then ``DEFAULT_WEIGHTS_URL`` (the project's host; none exists yet).
    """
    base = os.environ.get("ZOO_WEIGHTS_URL") or DEFAULT_WEIGHTS_URL
    if os.environ.get("ZOO_WEIGHTS_URL") or not weights.url:
        return f"{base.rstrip('/')}/{urllib.parse.quote(weights.file_name)}" if base else None
    return weights.url


def _cache_path(weights: Weights) -> Path:
    return cache_dir() / f"{weights.sha256}{SAFETENSORS_SUFFIX}"


def _not_found(weights: Weights, reason: str) -> CheckpointError:
    dirs = " and ".join(str(d) for d in weights_dirs()) or "no weights folder ($ZOO_WEIGHTS_DIR is not set)"
    return CheckpointError(
        f"weights {weights.name} not found: looked for {weights.file_name} in {dirs}, and for "
        f"{_cache_path(weights).name} in the cache {cache_dir()}; {reason}. Set $ZOO_WEIGHTS_URL to a mirror "
        f"of zoo's weights/ folder, put {weights.file_name} in $ZOO_WEIGHTS_DIR, or pass the file's path as "
        f"the weights"
    )


def _mismatch(weights: Weights, path: Path, actual: str) -> CheckpointError:
    return CheckpointError(
        f"sha256 mismatch for weights {weights.name} in {path}: expected {weights.sha256}, got {actual}; "
        f"the file is corrupt or not the released one: replace it (a cached copy can be deleted)"
    )


def _transient(exc: BaseException) -> bool:
    """A failure worth another try: a server error, a timeout or a dropped connection (not a 404 or a refusal)."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, (TimeoutError, ConnectionResetError, ConnectionAbortedError, http.client.IncompleteRead,
                               http.client.RemoteDisconnected))


def _fetch(url: str, dst: Path, size: int, deadline: float, progress: bool) -> None:
    """``url`` into ``dst``: at most ``size`` bytes (the registry's file size), each connect and read within
    ``DOWNLOAD_TIMEOUT_S``, the whole before ``deadline`` (``time.monotonic``), so a stalled or endless server fails."""
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(dst, "wb") as f, \
            tqdm(total=size, unit="B", unit_scale=True, disable=not progress, leave=False) as bar:
        declared = response.headers.get("Content-Length") if response.headers else None
        if declared and declared.isdigit() and int(declared) > size:
            raise ValueError(f"the server announces {int(declared):,} bytes for a file of {size:,}")
        read = getattr(response, "read1", response.read)  # read1: what has arrived, so the deadline is checked
        got = 0
        while chunk := read(1 << 16):
            got += len(chunk)
            if got > size:
                raise ValueError(f"the server sent more than the file's {size:,} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not done within {DOWNLOAD_DEADLINE_S:g} s")
            f.write(chunk)
            bar.update(len(chunk))


def _download(weights: Weights, url: str, progress: bool) -> Path:
    """Download ``url`` into the cache: a private temp file, sha256 check, then an atomic move.

    Two processes fetching the same file each write their own temp file; the second move replaces
    the first with identical bytes. Transient failures are retried from the start (3 tries), all within
    ``DOWNLOAD_DEADLINE_S``; the file may not grow past the registry's ``file_size``.
    """
    dst = _cache_path(weights)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.download")
    _logger.info("downloading %s from %s", weights.name, url)
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
    try:
        for attempt in range(1, _DOWNLOAD_TRIES + 1):
            try:
                _fetch(url, tmp, weights.file_size, deadline, progress)
                break
            except (OSError, http.client.HTTPException) as e:
                if attempt == _DOWNLOAD_TRIES or not _transient(e) or time.monotonic() + attempt > deadline:
                    raise
                _logger.warning("downloading %s failed (%s); trying again (%d of %d)", url, summarize(e),
                                attempt + 1, _DOWNLOAD_TRIES)
                time.sleep(attempt)
        actual = sha256_file(tmp)
        if actual != weights.sha256:
            raise CheckpointError(f"sha256 mismatch for weights {weights.name} downloaded from {url}: "
                                  f"expected {weights.sha256}, got {actual}; the download was discarded")
        os.replace(tmp, dst)
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError and HTTPError are OSErrors
        raise _not_found(weights, f"downloading {url} failed ({summarize(e)})") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dst


def _on_disk(weights: Weights) -> tuple[Path, str] | None:
    """The first place holding ``weights``' file by name (not verified), or None."""
    for folder in weights_dirs():
        if (folder / weights.file_name).is_file():
            return folder / weights.file_name, "weights_dir"
    if _cache_path(weights).is_file():
        return _cache_path(weights), "cache"
    return None


def _locate(weights: Weights, *, download: bool = True, progress: bool = True) -> tuple[Path, str]:
    """The first place holding ``weights``' file (not yet verified), downloading it when allowed."""
    found = _on_disk(weights)
    if found is not None:
        return found
    url = download_url(weights)
    if url is None:
        raise _not_found(weights, "it has no download URL (zoo has no public host for its files yet)")
    if not download:
        raise _not_found(weights, "downloading is off")
    return _download(weights, url, progress), "download"


def where(weights: Weights) -> tuple[str, Path | None]:
    """Where ``weights``' file is now, without downloading or hashing.

    ``("weights_dir", path)``, ``("cache", path)``, ``("remote", None)`` when only a download URL
    has it, or ``("missing", None)``.
    """
    found = _on_disk(weights)
    if found is not None:
        return found[1], found[0]
    return ("remote" if download_url(weights) else "missing"), None


def download(weights: Weights, *, to: PathLike | None = None, progress: bool = True) -> Path:
    """Make ``weights``' file available and verified; with ``to``, also copy it to ``to/<file_name>``.

    ``to`` prepares a folder for an offline machine (use it there as ``$ZOO_WEIGHTS_DIR``). Returns
    the verified file (the copy when ``to`` is given).
    """
    path = resolve(weights, weights.arch, progress=progress).path
    if to is None:
        return path
    dst = Path(to).expanduser() / weights.file_name
    if dst.resolve() != path.resolve():
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(dst, path.read_bytes())
    actual = sha256_file(dst)
    if actual != weights.sha256:
        raise _mismatch(weights, dst, actual)
    return dst


def verify_files() -> list[dict[str, Any]]:
    """Re-hash every released file on this machine: the weights folders and the cache.

    One row per file: ``name`` (the weights it holds, or None for a cache file no entry names),
    ``path``, ``ok`` (its sha256 is the registered one; a cache file's name is its sha256).
    """
    rows = []
    by_sha = {w.sha256: w for w in all_weights()}
    for w in all_weights():
        for folder in weights_dirs():
            path = folder / w.file_name
            if path.is_file():
                rows.append({"name": w.name, "path": str(path), "ok": sha256_file(path) == w.sha256})
    cache = cache_dir()
    for path in sorted(cache.glob(f"*{SAFETENSORS_SUFFIX}")) if cache.is_dir() else []:
        sha = path.name[: -len(SAFETENSORS_SUFFIX)]
        known = by_sha.get(sha)
        rows.append({"name": known.name if known else None, "path": str(path), "ok": sha256_file(path) == sha})
    return rows


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or Path(spec).suffix.lower() in (SAFETENSORS_SUFFIX, *TORCH_SUFFIXES)


def _lookup(spec: str, arch: str) -> Weights | None:
    """The registered weights ``spec`` names for ``arch``; None when ``spec`` is an existing file."""
    available = _weights_of(arch)
    if spec == "default":
        if not available:
            raise CheckpointError(f"{arch} has no released weights yet; pass a checkpoint file path as the weights")
        return available[0]
    for w in available:
        if spec in (w.name, w.tag):
            return w
    other = next((w for w in all_weights() if w.name == spec), None)
    if other is not None:
        raise CheckpointError(f"weights {spec} are for {other.arch}, model is {arch}")
    if Path(spec).expanduser().is_file():
        return None
    if Path(spec).expanduser().exists():  # a FIFO, a device or a folder: the file check says which
        try:
            regular_file(Path(spec).expanduser(), "checkpoint")
        except InvalidArgumentError as e:
            raise CheckpointError(str(e)) from None
    if _looks_like_path(spec):
        raise CheckpointError(f"no checkpoint file at {Path(spec).expanduser()}")
    names = [w.name for w in available] + [w.tag for w in available]
    close = difflib.get_close_matches(spec, names, n=5, cutoff=0.5)
    hint = (f"did you mean: {', '.join(close)}?" if close else
            f"available: {', '.join(w.name for w in available)}" if available else f"{arch} has no released weights")
    raise UnknownModelError(f"unknown weights {spec!r} for {arch} and no such file; {hint}")


def _find(spec: str | PathLike | Weights, arch: str, progress: bool) -> ResolvedWeights:
    """Where ``spec`` leads, not yet verified."""
    if not isinstance(spec, Weights) and "\x00" in os.fspath(spec):
        raise CheckpointError("a weights name or path cannot contain a NUL byte")
    weights = spec if isinstance(spec, Weights) else _lookup(os.fspath(spec), arch)
    if weights is None:
        return ResolvedWeights(Path(os.fspath(spec)).expanduser(), None, "path")
    if weights.arch != arch:
        raise CheckpointError(f"weights {weights.name} are for {weights.arch}, model is {arch}")
    path, source = _locate(weights, progress=progress)
    return ResolvedWeights(path, weights, source)


def resolve(spec: str | PathLike | Weights, arch: str, *, progress: bool = True) -> ResolvedWeights:
    """Find the checkpoint ``spec`` names for ``arch``; a registered file's sha256 is verified.

    ``spec`` is ``"default"`` (the arch's first registered weights), ``"arch.tag"`` or ``"tag"`` of a
    registered entry, a ``Weights`` value, or a file path.
    """
    resolved = _find(spec, arch, progress)
    if resolved.weights is not None:
        actual = sha256_file(resolved.path)
        if actual != resolved.weights.sha256:
            raise _mismatch(resolved.weights, resolved.path, actual)
    return resolved


# --------------------------------------------------------------------------------------------------
# Loading into a model


def _check_header(metadata: Mapping[str, str], arch: str, path: Path) -> None:
    if metadata.get("format") != FORMAT:  # a third-party safetensors file: only its keys are checked
        return
    version = metadata.get("format_version", "")
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {version!r}; this zoo reads up to {FORMAT_VERSION}: "
                              f"upgrade zoo")
    if metadata.get("arch") != arch:
        raise CheckpointError(f"checkpoint is for {metadata.get('arch')}, model is {arch} ({path})")


def _shape(t: torch.Tensor) -> str:
    return f"[{', '.join(map(str, t.shape))}]"


_OPTIONAL = ".num_batches_tracked"  # BatchNorm's step counter: absent from checkpoints saved before PyTorch 0.4.1


def _fill_optional(expected: Mapping[str, torch.Tensor], loaded: StateDict) -> StateDict:
    """Add the BatchNorm counters an older checkpoint lacks (as BatchNorm itself accepts such state dicts)."""
    absent = [k for k in expected if k.endswith(_OPTIONAL) and k not in loaded]
    if absent and all(k[: -len(_OPTIONAL)] + ".running_mean" in loaded for k in absent):
        _logger.info("checkpoint has no %s buffers (saved before PyTorch 0.4.1): the model's own are kept",
                     _OPTIONAL.lstrip("."))
        return {**loaded, **{k: expected[k].clone() for k in absent}}
    return loaded


def _keep_new_head(expected: Mapping[str, torch.Tensor], loaded: StateDict, head: str, path: Path) -> StateDict:
    """``loaded`` with the model's own classifier tensors when the checkpoint's have other shapes."""
    keys = [k for k in expected if k.startswith(f"{head}.")]
    if not keys or all(k in loaded and loaded[k].shape == expected[k].shape for k in keys):
        return loaded
    theirs = next((loaded[k] for k in keys if k in loaded and k.endswith("weight")), None)
    loaded = {k: t for k, t in loaded.items() if not k.startswith(f"{head}.")}
    loaded.update({k: expected[k] for k in keys})
    ours = expected[f"{head}.weight"].shape[0] if f"{head}.weight" in expected else "?"
    _logger.info("classifier %s re-initialised for %s classes (the checkpoint's has %s); every other tensor loaded "
                 "from %s", head, ours, "?" if theirs is None else theirs.shape[0], path.name)
    return loaded


def _check_values(expected: Mapping[str, torch.Tensor], loaded: StateDict, path: Path) -> None:
    """Refuse integer tensors (an int8-quantised file) where the model holds floats; warn about NaN or Inf."""
    ints = [f"{k} ({t.dtype})".replace("torch.", "") for k, t in loaded.items()
            if k in expected and expected[k].is_floating_point() and not t.is_floating_point()]
    if ints:
        raise CheckpointError(f"{path} holds integer tensors where {len(ints)} float ones belong ({', '.join(ints[:3])}"
                              f"{', ...' if len(ints) > 3 else ''}); a quantised checkpoint cannot be loaded as floats")
    odd = [f"{k} ({t.dtype})".replace("torch.", "") for k, t in loaded.items() if t.dtype in _ODD_FLOATS]
    if odd:
        raise CheckpointError(f"{path} holds tensors of a float type zoo does not load ({', '.join(odd[:3])}"
                              f"{', ...' if len(odd) > 3 else ''}); store float32, float16 or bfloat16")
    bad = [k for k, t in loaded.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        _logger.warning("%s holds NaN or Inf values in %d tensors (%s%s): its outputs will not be meaningful", path,
                        len(bad), ", ".join(bad[:3]), ", ..." if len(bad) > 3 else "")


def _mismatches(expected: Mapping[str, torch.Tensor], loaded: Mapping[str, torch.Tensor]) -> list[str]:
    """Every missing key, unexpected key and shape mismatch, each with its shape."""
    missing = [f"{k} {_shape(t)}" for k, t in expected.items() if k not in loaded]
    unexpected = [f"{k} {_shape(t)}" for k, t in loaded.items() if k not in expected]
    shapes = [f"{k} checkpoint {_shape(loaded[k])} vs model {_shape(t)}"
              for k, t in expected.items() if k in loaded and loaded[k].shape != t.shape]
    groups = [("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)]
    return [f"{len(items)} {label}: {', '.join(items)}" for label, items in groups if items]


def _match_dtypes(expected: Mapping[str, torch.Tensor], loaded: StateDict) -> StateDict:
    """Floating tensors take the model's dtype (fp16 storage into an fp32 model); integers are left alone."""
    out = dict(loaded)
    for k, t in loaded.items():
        target = expected.get(k)
        if target is not None and t.is_floating_point() and target.is_floating_point() and t.dtype != target.dtype:
            out[k] = t.to(target.dtype)
    return out


def load_into(model: nn.Module, arch: str, spec: str | PathLike | Weights, *, strict: bool = True,
              progress: bool = True, new_head: str | None = None) -> Weights | None:
    """Load the checkpoint ``spec`` names (see ``resolve``) into ``model`` and return its registered entry.

    A registered file's sha256 is checked on the bytes that are loaded; a zoo checkpoint written for
    another architecture is refused. With ``strict`` (the default) any missing key, unexpected key or
    shape mismatch raises ``CheckpointError`` naming every one; with ``strict=False`` they are logged as
    a warning and the matching tensors are loaded.

    ``new_head`` (the dotted name of the model's final Linear) is for fine-tuning: when the checkpoint's
    tensors for that module have other shapes (another number of classes), the model keeps its own
    freshly initialised classifier and every other tensor is loaded, strictly; this is logged.
    """
    resolved = _find(spec, arch, progress)
    path, weights = resolved.path, resolved.weights
    data = _read_bytes(path)
    sha256 = hashlib.sha256(data).hexdigest()
    if weights is not None and sha256 != weights.sha256:  # checked on the very bytes that are loaded
        raise _mismatch(weights, path, sha256)
    loaded, metadata = _parse(data, path)
    _check_header(metadata, arch, path)
    expected = model.state_dict()
    loaded = _fill_optional(expected, loaded)
    if new_head is not None:
        loaded = _keep_new_head(expected, loaded, new_head, path)
    problems = _mismatches(expected, loaded)
    if problems and strict:
        raise CheckpointError(f"{path} does not fit {arch}: {'; '.join(problems)}")
    if problems:
        _logger.warning("loading %s into %s with strict=False: %s", path, arch, "; ".join(problems))
        loaded = {k: t for k, t in loaded.items() if k in expected and t.shape == expected[k].shape}
    _check_values(expected, loaded, path)
    model.load_state_dict(_match_dtypes(expected, loaded), strict=strict)
    _logger.info("loaded %s into %s from %s (%s, sha256 %s)", weights.name if weights else path.name, arch, path,
                 resolved.source, sha256)
    return weights
