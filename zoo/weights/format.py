"""The checkpoint file format: zoo's safetensors files (a header that repeats what a reader needs), writing them
atomically, and reading them or third-party state dicts (``.pth``, ``.pt``, ``.th``, ``.tar``, with
``torch.load(weights_only=True)`` only).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import safetensors.torch
import torch
import torch.nn as nn
from safetensors import SafetensorError

from .._version import __version__
from ..errors import CheckpointError, InvalidArgumentError, summarize
from ..metadata import SAFETENSORS_SUFFIX
from ..specs import DatasetSpec, get_dataset_spec
from ..utils.fileio import atomic_write_bytes, check_zip, regular_file

__all__ = ["FORMAT", "FORMAT_VERSION", "TORCH_SUFFIXES", "StateDict", "PathLike", "sha256_file", "save_checkpoint",
           "read_checkpoint", "read_metadata"]

_logger = logging.getLogger(__name__)

FORMAT = "zoo.checkpoint"  # header "format": marks a file written by save_checkpoint
FORMAT_VERSION = 1
TORCH_SUFFIXES = (".pth", ".pt", ".th", ".tar")
# Keys under which training scripts nest the state dict, tried in this order.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
# Prefixes added by nn.DataParallel / DistributedDataParallel and by torch.compile.
_PREFIXES = ("module.", "_orig_mod.")
_STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
# Float types a checkpoint may hold: float8 and friends have no arithmetic zoo's models (or isfinite) run.
_ODD_FLOATS = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                                                 "float8_e8m0fnu", "float4_e2m1fn_x2") if hasattr(torch, n))

StateDict = dict[str, torch.Tensor]
PathLike = Union[str, "os.PathLike[str]"]


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
