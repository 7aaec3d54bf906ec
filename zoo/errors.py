"""Exceptions raised by zoo. The CLI turns every ``ZooError`` into a one-line message."""

from __future__ import annotations

import re

__all__ = [
    "CheckpointError",
    "DatasetError",
    "InvalidArgumentError",
    "UnknownModelError",
    "ZooError",
    "one_line",
    "summarize",
]


class ZooError(Exception):
    """Base class of the errors zoo raises on bad input; the CLI prints each as one line and exits 1
    (``--debug`` shows the traceback)."""


class UnknownModelError(ZooError, LookupError):
    """A model or weights name is not registered; the message lists the closest registered names."""


class InvalidArgumentError(ZooError, ValueError):
    """A keyword argument, shape or option is not valid."""


class DatasetError(ZooError):
    """A dataset is missing, corrupt or fails verification (md5 or content fingerprint); the message names
    the file or folder and why."""


class CheckpointError(ZooError):
    """A checkpoint is missing, corrupt, tampered with or does not match the model."""


# Lines that say where a runtime failed, not why: OpenVINO's "Exception from src/inference/src/...:" and its
# "Check '...' failed at src/..." lines come before the reason.
_WHERE_LINES = re.compile(r"^(Exception from \S+:?\d*:?|Check '.*' failed at \S+)$")


def summarize(exc: BaseException, *, last: bool = False, limit: int = 200) -> str:
    """One line of ``exc``'s message for a one-line error: its first line (``last``: its last, as in
    torchvision's multi-line messages), at most ``limit`` characters; the type name when it is empty.
    An ``OSError``'s ``strerror`` ("No space left on device") is preferred when it has one. Lines that
    only locate the failure in a runtime's sources (OpenVINO's) are skipped, so the reason is kept."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:limit]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reasons = [line for line in lines if not _WHERE_LINES.match(line)]
    if not reasons:
        return lines[0][:limit] if lines else type(exc).__name__
    if last:
        return reasons[-1][:limit]
    if len(reasons) < len(lines):  # a runtime's trace (OpenVINO): its reason lines, together
        return ": ".join(r.rstrip(":") for r in reasons)[:limit]
    head = reasons[0]
    if head.endswith(":") and len(reasons) > 1:  # "failed with GeneralFailure:" + the reason
        head = f"{head} {reasons[1]}"
    return head[:limit]


def one_line(text: str, limit: int = 1000) -> str:
    """``text`` as one line of at most about ``limit`` characters: line breaks become spaces and a longer
    text (a huge argument echoed, a list of 200,000 names) is cut, saying how much was left out."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return f"{flat[:limit]}... ({len(flat) - limit:,} more characters)"
