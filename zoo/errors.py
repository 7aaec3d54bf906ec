"""Exceptions raised by zoo. The CLI turns every ``ZooError`` into a one-line message."""

from __future__ import annotations

__all__ = [
    "ZooError",
    "UnknownModelError",
    "InvalidArgumentError",
    "DatasetError",
    "CheckpointError",
    "summarize",
]


class ZooError(Exception):
    """Base class of the errors zoo raises on bad input."""


class UnknownModelError(ZooError, LookupError):
    """A model (or weight) name is not registered."""


class InvalidArgumentError(ZooError, ValueError):
    """A keyword argument, shape or option is not valid."""


class DatasetError(ZooError):
    """A dataset is missing, corrupt or fails verification."""


class CheckpointError(ZooError):
    """A checkpoint is missing, corrupt, tampered with or does not match the model."""


def summarize(exc: BaseException, *, last: bool = False, limit: int = 200) -> str:
    """One line of ``exc``'s message for a one-line error: its first line (``last``: its last, as in
    torchvision's multi-line messages), at most ``limit`` characters; the type name when it is empty.
    An ``OSError``'s ``strerror`` ("No space left on device") is preferred when it has one."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:limit]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return (lines[-1] if last else lines[0])[:limit]
