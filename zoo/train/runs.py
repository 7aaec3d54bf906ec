"""Run directories: the files a training run keeps, its lock, and what can be read from them.

A run directory holds ``recipe.json`` (the resolved recipe), ``run.json`` (the call's ``tag`` and
``save_dtype``, which a resume inherits), ``log.jsonl`` (one line per epoch, rewritten from the saved
state), ``state.pt``, ``curves.png`` and, once finished, the checkpoint and ``result.json``. The
trainer holds an exclusive lock on ``.lock`` while it uses the folder.

``run_status`` answers "where is this run?" from the JSON files and the lock alone: it never loads
``state.pt``, so it is safe on any folder and costs milliseconds, even while the run trains. Every
field it reads is checked for its type and range; a wrong one is a one-line error naming file and field.

A run directory is recognised by its run files (``check_run_dir``): zoo trains only into a folder that is
absent, empty, or holds ``run.json``, ``recipe.json`` or ``state.pt``, so ``--out ~`` can never delete or
overwrite a user's files. The lock is opened without following a symlink, and only temporaries named as
zoo names them are removed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import re
import shlex
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import InvalidArgumentError, ZooError
from ..utils.fileio import MAX_JSON_BYTES, atomic_write_text, check_name, json_field, read_json, regular_file
from ..utils.hardware import recorded_hardware
from .recipes import Recipe, get_recipe

__all__ = [
    "RUN_MARKERS",
    "RunStatus",
    "SAVE_DTYPES",
    "check_run_dir",
    "claim_run_dir",
    "find_runs",
    "format_duration",
    "lock_run",
    "read_run_options",
    "remove_stale_temporaries",
    "run_hardware",
    "run_options",
    "run_status",
    "write_log",
    "write_run_options",
]

RUN_MARKERS = ("run.json", "recipe.json", "state.pt")  # a folder holding one of these is a zoo run
SAVE_DTYPES = (None, "float32", "float16")  # storage of the final weights (run.json); None keeps the trained dtype
# The temporaries zoo leaves when killed: zoo.utils.fileio.atomic_path's ".<stem>.<12 hex>.tmp<suffix>" and the
# final checkpoint's ".<model>.<tag>.safetensors" (zoo.train.loop._finish).
_TEMPORARY = re.compile(r"\.[A-Za-z0-9_.+-]+\.[0-9a-f]{12}\.tmp(\.[A-Za-z0-9]+)?|\.[A-Za-z0-9_.+-]+\.safetensors")

_logger = logging.getLogger(__name__)


@dataclass
class RunStatus:
    path: str
    state: str  # "running" (a trainer holds it), "stopped" (resumable), "finished"
    recipe: str
    model: str
    dataset: str
    epochs_done: int
    epochs: int
    train_s: float  # the logged epochs' training time
    eval_s: float  # their evaluations' time, where the log records it
    remaining_s: float | None  # the epochs left at the logged pace; None before the first epoch
    last_test_top1: float | None
    last_test_epoch: int | None
    best_test_top1: float | None
    best_test_epoch: int | None
    final_top1: float | None  # the stored checkpoint's, on the full test split (finished runs)
    checkpoint: str
    hardware: str
    resume_command: str  # "" unless stopped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_duration(seconds: float) -> str:
    """A duration as people read it: '45 s', '1 min 42 s', '12 min', '3.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 9.5 * 60:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run_hardware(history: list[dict[str, Any]], current: str | None = None) -> str:
    """The machines a run's epochs trained on, in order ("A + B" when resumed elsewhere), from its log lines.

    Lines of runs logged before lines named their machine count as ``current``'s, the machine of the call
    that trains (a reader passes None: they are left out; "" when no line names one).
    """
    names = [r.get("hardware") or current for r in history] or [current]
    return " + ".join(dict.fromkeys(n for n in names if n))


def check_run_dir(out: Path) -> None:
    """Refuse ``out`` as a run directory unless it is absent, empty, or a zoo run (it holds one of ``RUN_MARKERS``,
    or only the lock of a run killed before its first file)."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise InvalidArgumentError(f"cannot use {out} as the run directory: it is not a folder")
    names = set(os.listdir(out))
    if not names or names & set(RUN_MARKERS) or names <= {".lock"}:
        return
    shown = ", ".join(sorted(names)[:5]) + (f" and {len(names) - 5:,} more" if len(names) > 5 else "")
    raise InvalidArgumentError(f"cannot use {out} as the run directory: it holds files ({shown}) but is not a zoo "
                               f"run (no {', '.join(RUN_MARKERS)}); zoo trains only into an absent or empty folder, "
                               f"or a run of its own: choose another --out")


def claim_run_dir(out: Path, *, main: bool) -> IO[str] | None:
    """In the main process: check the run directory ``out`` (``check_run_dir``), create it if need be and lock it
    (``lock_run``); returns the lock (None in the other processes of a data-parallel run, which write nothing
    there: were they to check the folder too, they could meet the main process's half-written files)."""
    if not main:
        return None
    try:
        check_run_dir(out)  # absent, empty or a zoo run: never a folder of the user's files
        out.mkdir(parents=True, exist_ok=True)
        return lock_run(out)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot use {out} as the run directory: {exc.strerror or exc}") from None


def _open_lock(out: Path, flags: int) -> IO[str]:
    """``out/.lock`` opened without following a symlink (which could make zoo create a file elsewhere) and
    without blocking (a FIFO there would); anything but a regular file is refused."""
    try:
        fd = os.open(out / ".lock", flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (out / ".lock").is_symlink():
            raise InvalidArgumentError(f"{out / '.lock'} is a symlink; a run's lock must be a file of the run "
                                       f"(remove the link)") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidArgumentError(f"{out / '.lock'} is not a regular file; a run's lock must be one (remove it)")
    return os.fdopen(fd, "a+" if flags & os.O_CREAT else "r")


def lock_run(out: Path) -> IO[str]:
    """Hold an exclusive lock on ``out/.lock`` for the run; a second run on the same folder is refused.

    A status reader holds a shared lock for an instant, so a refusal is retried briefly before it is final.
    """
    handle = _open_lock(out, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    for attempt in range(5):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if attempt < 4:
                time.sleep(0.05)
    handle.close()
    raise InvalidArgumentError(f"{out} is in use by another zoo train process (zoo status {shlex.quote(str(out))} "
                               f"shows its progress); wait for it, or choose another --out")


def _is_locked(out: Path) -> bool:
    try:
        handle = _open_lock(out, os.O_RDONLY)
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def remove_stale_temporaries(out: Path) -> None:
    """Temporary files a killed run left (the caller holds the lock, so no writer is alive): removed, never read."""
    for path in out.iterdir():
        if _TEMPORARY.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            _logger.info("removing %s, left by an interrupted run", path)
            path.unlink()


def write_log(path: Path, history: list[dict[str, Any]]) -> None:
    """The log is rewritten from the saved state's history, so the two always agree (each epoch once)."""
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in history))


def write_run_options(out: Path, *, tag: str | None, save_dtype: str | None) -> None:
    atomic_write_text(out / "run.json", json.dumps({"tag": tag, "save_dtype": save_dtype}, indent=2) + "\n")


def read_run_options(out: Path) -> dict[str, str | None]:
    """The ``tag`` and ``save_dtype`` the run was started with (None each when not recorded)."""
    path = out / "run.json"
    if not path.exists():
        return {"tag": None, "save_dtype": None}
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ZooError(f"{path} cannot be read as a zoo run file: not the run's options")
    return {k: json_field(data, k, str, path, default=None, what=_WHAT) for k in ("tag", "save_dtype")}


def run_options(out: Path, *, resume: bool, tag: str | None, save_dtype: str | None,
                main: bool) -> tuple[str | None, str | None]:
    """This call's checkpoint tag and storage dtype, recorded in ``run.json`` (by the main process): a resume
    keeps the first call's unless told otherwise. A run is never started over another's state."""
    if not resume and (out / "state.pt").exists():
        raise InvalidArgumentError(f"{out} already holds a run (state.pt): pass --resume to continue it, "
                                   f"or choose another --out")
    if resume and main:
        saved = read_run_options(out)
        if tag is None and saved["tag"]:
            tag = check_name(saved["tag"], f"tag in {out / 'run.json'}")
        if save_dtype is None:
            save_dtype = saved["save_dtype"]
        if save_dtype not in SAVE_DTYPES:
            raise InvalidArgumentError(f"{out / 'run.json'} records an unknown save_dtype {save_dtype!r}")
    if main:
        write_run_options(out, tag=tag, save_dtype=save_dtype)
    return tag, save_dtype


_WHAT = "a zoo run file"


def _read_json(path: Path) -> Any:
    return read_json(path, _WHAT)


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and abs(value) < 1e12)


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    text = _read_text(path)
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (ValueError, RecursionError) as exc:
        raise ZooError(f"{path} cannot be read as {_WHAT}: {exc}") from None
    if not all(isinstance(r, dict) for r in rows):
        raise ZooError(f"{path} cannot be read as {_WHAT}: a line is not an epoch record")
    for i, row in enumerate(rows):
        where = f"{path} (line {i + 1})"
        json_field(row, "epoch_s", (int, float), where, check=lambda v: _number(v) and v >= 0, what=_WHAT)
        json_field(row, "test_s", (int, float), where, default=0.0, check=lambda v: _number(v) and v >= 0, what=_WHAT)
        json_field(row, "test_top1", (int, float), where, default=None, check=_number, what=_WHAT)
        json_field(row, "epoch", int, where, default=None, what=_WHAT)
        json_field(row, "hardware", str, where, default=None, what=_WHAT)
    return rows


def _read_text(path: Path) -> str:
    try:
        return regular_file(path, _WHAT, max_bytes=MAX_JSON_BYTES).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ZooError(f"{path} cannot be read as {_WHAT}: {exc}") from None


def _read_recipe(path: Path) -> dict[str, Any]:
    recipe = _read_json(path)
    if not isinstance(recipe, dict) or not isinstance(recipe.get("epochs"), int):
        raise ZooError(f"{path} cannot be read as {_WHAT}: not a recipe")
    json_field(recipe, "epochs", int, path, check=lambda v: 1 <= v <= 1_000_000, what=_WHAT)
    for key in ("name", "model", "dataset"):
        json_field(recipe, key, str, path, default="", what=_WHAT)
    return recipe


def _read_result(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    result = _read_json(path)
    json_field(result, "checkpoint", str, path, default="", what=_WHAT)
    json_field(result, "hardware", str, path, default="", what=_WHAT)
    metrics = json_field(result, "metrics", dict, path, default={}, what=_WHAT)
    json_field(metrics, "top1", (int, float), f"{path} (metrics)", default=None, check=_number, what=_WHAT)
    return result


def find_runs(root: str | Path) -> list[Path]:
    """The run directories directly under ``root`` (those holding a recipe.json), sorted; raises if none."""
    found = sorted(p.parent for p in Path(root).glob("*/recipe.json"))
    if not found:
        raise InvalidArgumentError(f"no training runs under {root}/ (zoo train's default --out): name the run "
                                   f"directories")
    return found


def run_status(path: str | Path) -> RunStatus:
    """Where the run in ``path`` stands: epochs, accuracy so far, time spent and left, how to continue it."""
    out = Path(path)
    if not (out / "recipe.json").is_file():
        raise InvalidArgumentError(f"{out} is not a zoo training run (no recipe.json); a run directory is the "
                                   f"--out of zoo train")
    recipe = _read_recipe(out / "recipe.json")
    history = _read_log(out / "log.jsonl")
    result = _read_result(out / "result.json")
    tested = [r for r in history if isinstance(r.get("test_top1"), (int, float))]
    best = max(tested, key=lambda r: r["test_top1"], default=None)
    train_s = sum(r["epoch_s"] for r in history)
    eval_s = sum(r.get("test_s") or 0.0 for r in history)
    done, epochs = len(history), recipe["epochs"]
    state = "running" if _is_locked(out) else "finished" if result is not None else "stopped"
    remaining = 0.0 if state == "finished" else (train_s + eval_s) / done * (epochs - done) if done else None
    metrics = (result.get("metrics") or {}) if result is not None else {}
    return RunStatus(
        path=str(out), state=state, recipe=str(recipe.get("name", "")), model=str(recipe.get("model", "")),
        dataset=str(recipe.get("dataset", "")), epochs_done=done, epochs=epochs, train_s=round(train_s, 3),
        eval_s=round(eval_s, 3), remaining_s=None if remaining is None else round(remaining, 3),
        last_test_top1=tested[-1]["test_top1"] if tested else None,
        last_test_epoch=tested[-1].get("epoch") if tested else None,
        best_test_top1=best["test_top1"] if best else None, best_test_epoch=best.get("epoch") if best else None,
        final_top1=metrics.get("top1"), checkpoint=str(result.get("checkpoint", "")) if result else "",
        hardware=_hardware(str(result.get("hardware", "")) if result else run_hardware(history), recipe),
        resume_command=_resume_command(out, recipe) if state == "stopped" else "")


def _hardware(recorded: str, recipe: dict[str, Any]) -> str:
    """``recorded`` in the form runs write today (older runs' records read into it; "" before the first epoch)."""
    return recorded_hardware(recorded, recipe.get("precision")) if recorded else ""


def _resume_command(out: Path, saved: dict[str, Any]) -> str:
    """``zoo train`` arguments that resolve to the saved recipe: its name, then each setting that differs."""
    words = ["zoo", "train", "-r", str(saved.get("name", ""))]
    try:
        named = get_recipe(words[-1]).to_dict()
        resolved = Recipe.from_dict(saved).to_dict()
    except (ZooError, TypeError, ValueError):
        return ""  # a recipe zoo no longer has: no command would resolve to it
    if resolved["model"] != named["model"]:
        words += ["-m", resolved["model"]]
    for key, value in resolved.items():
        if key in ("model", "name", "description", "source") or value == named[key]:
            continue
        text = ",".join(repr(v) for v in value) if isinstance(value, (tuple, list)) else \
            str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, float) else str(value)
        words += ["--set", f"{key}={text}"]
    options = read_run_options(out)
    if options["tag"]:
        words += ["--tag", options["tag"]]
    if options["save_dtype"]:
        words += ["--save-dtype", options["save_dtype"]]
    words += ["--out", str(out), "--resume"]
    return shlex.join(words)
