"""Resolving a weights spec (a released name, a tag, a file) to a checked file, and loading it into a model:
strict keys and shapes, a new head when the class count differs, dtypes matched.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import CheckpointError, InvalidArgumentError, UnknownModelError
from ..metadata import SAFETENSORS_SUFFIX, Weights
from ..registry import all_weights
from ..utils.fileio import atomic_write_bytes, regular_file
from .format import (
    _ODD_FLOATS,
    FORMAT,
    FORMAT_VERSION,
    TORCH_SUFFIXES,
    PathLike,
    StateDict,
    _parse,
    _read_bytes,
    sha256_file,
)
from .hub import _locate, _mismatch, _weights_of

__all__ = ["ResolvedWeights", "resolve", "load_into", "download"]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedWeights:
    """Where a weights spec led: the file, its registered entry (None for a plain path) and how it was found.

    ``source`` is one of ``"path"``, ``"weights_dir"``, ``"package"``, ``"cache"``, ``"download"``.
    """

    path: Path
    weights: Weights | None
    source: str


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
              progress: bool = True, new_head: str | None = None, sha256: str | None = None) -> Weights | None:
    """Load the checkpoint ``spec`` names (see ``resolve``) into ``model`` and return its registered entry.

    A registered file's sha256 is checked on the bytes that are loaded; a zoo checkpoint written for
    another architecture is refused. With ``strict`` (the default) any missing key, unexpected key or
    shape mismatch raises ``CheckpointError`` naming every one; with ``strict=False`` they are logged as
    a warning and the matching tensors are loaded.

    ``new_head`` (the dotted name of the model's final Linear) is for fine-tuning: when the checkpoint's
    tensors for that module have other shapes (another number of classes), the model keeps its own
    freshly initialised classifier and every other tensor is loaded, strictly; this is logged.

    ``sha256``: the digest a file path must have (a Hub folder's config records it), checked on the loaded bytes.
    """
    resolved = _find(spec, arch, progress)
    path, weights = resolved.path, resolved.weights
    data = _read_bytes(path)
    actual = hashlib.sha256(data).hexdigest()
    if weights is not None and actual != weights.sha256:  # checked on the very bytes that are loaded
        raise _mismatch(weights, path, actual)
    if sha256 is not None and actual != sha256:
        raise CheckpointError(f"sha256 mismatch for {path}: expected {sha256} (recorded beside it), got {actual}; "
                              f"the file is corrupt or not the one its config describes")
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
                 resolved.source, actual)
    return weights


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
