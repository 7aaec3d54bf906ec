"""Where released checkpoints are found: ``$ZOO_WEIGHTS_DIR``, a checkout's ``weights/``, the installed data
distributions (``zoo-weights-1``...: ``package_dirs``), the cache (keyed by content), and a download
(``download_url``), each file's sha256 checked before use (``zoo.weights`` describes the order).
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, UnknownModelError, summarize
from ..metadata import SAFETENSORS_SUFFIX, Weights
from ..registry import all_weights, get_entry
from .format import sha256_file

__all__ = ["DEFAULT_WEIGHTS_URL", "DOWNLOAD_TIMEOUT_S", "DOWNLOAD_DEADLINE_S", "ENTRY_POINT_GROUP", "weights_dirs",
           "package_dirs", "cache_dir", "download_url", "where", "verify_files"]

_logger = logging.getLogger(__name__)

_CHECKOUT = Path(__file__).resolve().parents[2]
# A git checkout's weights/ folder; an installed zoo has none (its wheel holds no checkpoints: they install as the
# data distributions of packaging/, found through ENTRY_POINT_GROUP).
_REPO_WEIGHTS_DIR: Path | None = _CHECKOUT / "weights" if (_CHECKOUT / "pyproject.toml").is_file() else None
# The project's public host for released files (``<base>/<file_name>``). zoo has none yet: files are
# in the repository's weights/ folder; $ZOO_WEIGHTS_URL names a mirror of it.
DEFAULT_WEIGHTS_URL: str | None = None
_DOWNLOAD_TRIES = 3
DOWNLOAD_TIMEOUT_S = 30.0  # connecting, and each read: a server silent this long fails the try
DOWNLOAD_DEADLINE_S = 600.0  # the whole download, every try together
# Each data distribution names its folder of checkpoints (a top-level name inside it) in this entry-point group.
ENTRY_POINT_GROUP = "zoo.weights"


def _weights_of(arch: str) -> tuple[Weights, ...]:
    try:
        return get_entry(arch).weights
    except UnknownModelError:  # an unregistered model can still load a file
        return ()


# --------------------------------------------------------------------------------------------------
# Finding the file


def weights_dirs() -> list[Path]:
    """Folders searched for released files by name: ``$ZOO_WEIGHTS_DIR`` (when set), then a checkout's weights/.

    An installed zoo has no weights folder of its own: installed checkpoints are the data distributions'
    (``package_dirs``), looked in after these.
    """
    dirs = [Path(os.environ["ZOO_WEIGHTS_DIR"]).expanduser()] if os.environ.get("ZOO_WEIGHTS_DIR") else []
    return dirs + ([_REPO_WEIGHTS_DIR] if _REPO_WEIGHTS_DIR is not None else [])


def package_dirs() -> list[tuple[str, Path]]:
    """(distribution, folder) of each installed data distribution (``pip install zoo[weights]``, or the folders
    under packaging/), from their entry points in ``ENTRY_POINT_GROUP``: found through their metadata, nothing
    imported. A folder name that is not one plain name inside its distribution is skipped, with a warning."""
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else None
        if dist is None or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ep.value):
            _logger.warning("ignoring the %s entry point %r of %s: not a folder name of an installed distribution",
                            ENTRY_POINT_GROUP, ep.value, dist or "an unknown distribution")
            continue
        folder = Path(str(ep.dist.locate_file(ep.value)))
        if folder.is_dir():
            found.append((dist, folder))
    return sorted(found)


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
    packages = ", ".join(name for name, _ in package_dirs()) or "none installed"
    return CheckpointError(
        f"weights {weights.name} not found: looked for {weights.file_name} in {dirs}, in the installed weights "
        f"packages ({packages}), and for {_cache_path(weights).name} in the cache {cache_dir()}; {reason}. Install "
        f"the weights (pip install 'zoo[weights]', or the folders under a checkout's packaging/), set "
        f"$ZOO_WEIGHTS_URL to a mirror of zoo's weights/ folder, put {weights.file_name} in $ZOO_WEIGHTS_DIR, or "
        f"pass the file's path as the weights"
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
    for _, folder in package_dirs():
        if (folder / weights.file_name).is_file():
            return folder / weights.file_name, "package"
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

    ``("weights_dir", path)``, ``("package", path)`` (an installed data distribution), ``("cache", path)``,
    ``("remote", None)`` when only a download URL has it, or ``("missing", None)``.
    """
    found = _on_disk(weights)
    if found is not None:
        return found[1], found[0]
    return ("remote" if download_url(weights) else "missing"), None


def verify_files() -> list[dict[str, Any]]:
    """Re-hash every released file on this machine: the weights folders, the installed data distributions and
    the cache.

    One row per file: ``name`` (the weights it holds, or None for a cache file no entry names),
    ``path``, ``ok`` (its sha256 is the registered one; a cache file's name is its sha256).
    """
    rows = []
    by_sha = {w.sha256: w for w in all_weights()}
    for w in all_weights():
        for folder in [*weights_dirs(), *(d for _, d in package_dirs())]:
            path = folder / w.file_name
            if path.is_file():
                rows.append({"name": w.name, "path": str(path), "ok": sha256_file(path) == w.sha256})
    cache = cache_dir()
    for path in sorted(cache.glob(f"*{SAFETENSORS_SUFFIX}")) if cache.is_dir() else []:
        sha = path.name[: -len(SAFETENSORS_SUFFIX)]
        known = by_sha.get(sha)
        rows.append({"name": known.name if known else None, "path": str(path), "ok": sha256_file(path) == sha})
    return rows
