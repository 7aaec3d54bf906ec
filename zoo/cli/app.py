"""The ``zoo`` command line. It only assembles commands: the group, its logging flags, the registration of
the command modules, and the error boundary.

One error boundary (``_run``) turns every ``ZooError`` into a one-line message and exit code 1;
``--debug`` (or ``ZOO_DEBUG=1``) shows the full traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

import zoo
from zoo.errors import one_line

from . import bench, deploy, evaluate, models, studies, train
from ._options import debug_option, setup_logging, verbose_option

__all__ = ["main", "eval_main", "cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(zoo.__version__, prog_name="zoo")
@debug_option()
@verbose_option()
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """zoo: verified image classifiers for MNIST-style and CIFAR-style data."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    setup_logging(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)


for _command in (
    models.list_cmd, models.info_cmd, models.weights_group, models.hub_group,  # the catalogue
    evaluate.eval_cmd, evaluate.predict_cmd, evaluate.calibrate_cmd, deploy.export_cmd, bench.bench_cmd,  # the jobs
    train.train_cmd, train.status_cmd, train.recipes_cmd,  # training
    studies.analyze_group, studies.viz_group,  # the studies
):
    cli.add_command(_command)


def _env_debug() -> bool:
    """``ZOO_DEBUG`` read as click reads the --debug flag's environment variable (1/true/yes/on, 0/false/no/off)."""
    value = os.environ.get("ZOO_DEBUG", "").strip()
    try:
        return bool(value) and click.BOOL.convert(value, None, None)
    except click.BadParameter:
        return False


def _fail(message: str, code: int = 1) -> None:
    """The one error line: line breaks flattened, at most about 1,000 characters (a huge argument is cut)."""
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


def _run(command: Callable[..., Any], prog_name: str) -> None:
    """Run a click command with zoo's error boundary."""
    debug = "--debug" in sys.argv or _env_debug()
    setup_logging(logging.DEBUG if debug else logging.WARNING)
    try:
        command.main(prog_name=prog_name, standalone_mode=False)
    except zoo.ZooError as e:
        if debug:
            raise
        _fail(str(e))
    except OSError as e:  # the file system said no: permissions, a full disk, a read-only folder
        if debug:
            raise
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        _fail(f"{e.strerror or e}{where}")
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:  # bad options: one line too, with click's exit code (2 for usage)
        hint = " (see --help)" if isinstance(e, click.UsageError) else ""
        _fail(f"{e.format_message()}{hint}", e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


def main() -> None:
    """Entry point of ``zoo``."""
    _run(cli, "zoo")


def eval_main() -> None:
    """Entry point of ``zoo-eval`` (the same as ``zoo eval``)."""
    _run(cli.commands["eval"], "zoo-eval")
