"""The options more than one command takes, each defined once, and what applies them: the logging that
``--debug`` and ``-v`` set up, the torch threads of ``--threads``, the default run folder of ``--out``.

A factory takes a parameter where commands word the same option differently (``--weights``' help, ``--device``'s),
so every command's ``--help`` reads as before.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import click

__all__ = ["RUNS_DIR", "Path", "backend_option", "batch_size_option", "comma_list", "data_dir_option",
           "debug_option", "default_run_dir", "device_option", "floats", "from_json_option", "full_option",
           "json_option", "layer_option", "model_option", "out_dir_option", "out_file_option", "progress_option",
           "set_threads", "setup_logging", "threads_option", "verbose_option", "weights_option"]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

RUNS_DIR = "runs"  # where training runs and studies write when --out is not given


def default_run_dir(out: str | None, name: str) -> str:
    """``--out`` as given, else ``runs/<name>``: the one place a default run folder is built."""
    return out or os.path.join(RUNS_DIR, name)


class Path(click.Path):
    """click.Path that also refuses names no file system accepts (NUL bytes), before any work."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and "\x00" in value:
            self.fail("a path cannot contain a NUL byte", param, ctx)
        return super().convert(value, param, ctx)


def comma_list(cast: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, str | None],
                                                         tuple[Any, ...] | None]:
    """A callback that parses ``a,b,c`` into a tuple of ``cast`` values (empty items dropped)."""
    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[Any, ...] | None:
        if value is None:
            return None
        try:
            return tuple(cast(v.strip()) for v in value.split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"expected a comma-separated list, got {value!r}") from None

    return parse


def floats(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
    """A callback that parses numbers separated by commas or spaces."""
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.replace(",", " ").split())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None


# logging: the group's flags, and zoo-eval's own (it runs the eval command without the group)

def setup_logging(level: int) -> None:
    """One logging setup for ``zoo`` and ``zoo-eval``: warnings always reach stderr."""
    root = logging.getLogger()
    if root.handlers:  # an embedding program (or pytest) has configured logging: only the level changes
        root.setLevel(level)
    else:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _log_level(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        setup_logging(logging.DEBUG if param.name == "debug" else logging.INFO)


_DEBUG_HELP = "Show full tracebacks and debug logs."
_VERBOSE_HELP = "Show info logs."


def debug_option(*, standalone: bool = False) -> Decorator:
    """``--debug``: the group's flag (also read from ``$ZOO_DEBUG``), or, ``standalone``, a flag that sets up
    logging itself for a command run without the group (``zoo-eval``)."""
    if standalone:
        return click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_log_level,
                            help=_DEBUG_HELP)
    return click.option("--debug", is_flag=True, envvar="ZOO_DEBUG", help=_DEBUG_HELP)


def verbose_option(*, standalone: bool = False) -> Decorator:
    """``-v/--verbose``: the group's flag, or, ``standalone``, one that sets up logging itself."""
    if standalone:
        return click.option("-v", "--verbose", is_flag=True, expose_value=False, is_eager=True, callback=_log_level,
                            help=_VERBOSE_HELP)
    return click.option("-v", "--verbose", is_flag=True, help=_VERBOSE_HELP)


# options of many commands

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
threads_option = click.option("--threads", type=click.IntRange(min=1, max=1024),
                              help="CPU threads for torch (default: torch's choice).")


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (torch is imported only when it is given)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def model_option(help: str | None = None, *, required: bool = True) -> Decorator:
    """``--model/-m``, the registered model a command works on."""
    return click.option("--model", "-m", "model_name", required=required, help=help)


def weights_option(help: str, *, default: str | None = None) -> Decorator:
    """``--weights/-w``: a weight name (arch.tag), a tag or a checkpoint file."""
    if default is None:
        return click.option("--weights", "-w", help=help)
    return click.option("--weights", "-w", default=default, show_default=True, help=help)


def data_dir_option(help: str = "Dataset root (default: $ZOO_DATA, else the cache).") -> Decorator:
    """``--data-dir``, the dataset root."""
    return click.option("--data-dir", type=Path(file_okay=False), help=help)


def device_option(help: str | None = None) -> Decorator:
    """``--device``, one device (cpu by default)."""
    return click.option("--device", default="cpu", show_default=True, help=help)


def progress_option(help: str | None = None) -> Decorator:
    """``--progress/--no-progress``, a progress bar (on by default)."""
    return click.option("--progress/--no-progress", default=True, show_default=True, help=help)


def batch_size_option(default: int | None = None, *, minimum: int = 1, short: bool = True) -> Decorator:
    """``--batch-size`` (``-b`` too, unless not ``short``)."""
    names = ("--batch-size", "-b") if short else ("--batch-size",)
    if default is None:
        return click.option(*names, type=click.IntRange(min=minimum))
    return click.option(*names, type=click.IntRange(min=minimum), default=default, show_default=True)


def backend_option(help: str) -> Decorator:
    """``--backend``, how the model runs (``auto`` by default)."""
    return click.option("--backend", default="auto", show_default=True, help=help)


def out_file_option(help: str) -> Decorator:
    """``--out``, the file a command writes."""
    return click.option("--out", type=Path(dir_okay=False), help=help)


def out_dir_option(help: str) -> Decorator:
    """``--out``, the folder a run or study writes (see ``default_run_dir``)."""
    return click.option("--out", "out_dir", type=Path(file_okay=False), help=help)


def from_json_option(help: str) -> Decorator:
    """``--from-json``, a study's saved results to redraw instead of running it."""
    return click.option("--from-json", "from_json", type=Path(exists=True, dir_okay=False), help=help)


def full_option(help: str) -> Decorator:
    """``--full``, a study's long preset instead of its short one."""
    return click.option("--full", is_flag=True, help=help)


layer_option = click.option("--layer", help="Module name (see `zoo info MODEL`), or 'first' / 'last' conv "
                            "[default: first].")
