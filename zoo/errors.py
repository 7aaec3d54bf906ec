"""Exceptions raised by zoo. The CLI turns every ``ZooError`` into a one-line message."""

from __future__ import annotations

__all__ = [
    "ZooError",
    "UnknownModelError",
    "InvalidArgumentError",
    "DatasetError",
    "CheckpointError",
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
