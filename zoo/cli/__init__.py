"""The ``zoo`` and ``zoo-eval`` commands (click). The commands hold no logic: they parse options, call
one job, and print its result as text or ``--json``."""

from .app import cli, eval_main, main

__all__ = ["main", "eval_main", "cli"]
