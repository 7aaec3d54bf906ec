"""The ``zoo`` and ``zoo-eval`` commands (click). The commands hold no logic: they parse options, call
one job, and print its result as text or ``--json``.

``app`` is the group and the error boundary; one module per command group: ``models`` (list, info, weights),
``evaluate`` (eval, predict), ``deploy`` (export), ``bench``, ``train`` (train, status, recipes), ``studies``
(analyze, viz); ``_options`` defines the shared options once, ``_output`` formats every result.
"""

from .app import cli, eval_main, main

__all__ = ["main", "eval_main", "cli"]
