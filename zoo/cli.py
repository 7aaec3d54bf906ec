"""The ``zoo`` command line. It only assembles commands: each calls the public API and prints.

One error boundary (``_run``) turns every ``ZooError`` into a one-line message and exit code 1;
``--debug`` (or ``ZOO_DEBUG=1``) shows the full traceback instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Callable

import click

import zoo

__all__ = ["main", "eval_main", "cli"]


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _table(rows: list[list[str]], headers: list[str], right: set[int] = frozenset()) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def fmt(row: list[str]) -> str:
        return "  ".join(str(v).rjust(w) if i in right else str(v).ljust(w) for i, (v, w) in
                         enumerate(zip(row, widths))).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(zoo.__version__, prog_name="zoo")
@click.option("--debug", is_flag=True, envvar="ZOO_DEBUG", help="Show full tracebacks and debug logs.")
@click.option("-v", "--verbose", is_flag=True, help="Show info logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """zoo: verified image classifiers for MNIST-style and CIFAR-style data."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@cli.command("list")
@click.argument("pattern", default="*")
@click.option("--dataset", help="Only models whose default dataset this is.")
@click.option("--pretrained", is_flag=True, help="Only models with released weights.")
@json_option
def list_cmd(pattern: str, dataset: str | None, pretrained: bool, as_json: bool) -> None:
    """List registered models matching PATTERN (fnmatch wildcards, e.g. 'resnet*')."""
    infos = [zoo.model_info(n) for n in zoo.list_models(pattern, dataset=dataset, pretrained=pretrained)]
    if as_json:
        _emit_json([i.to_dict() for i in infos])
        return
    if not infos:
        click.echo(f"no model matches {pattern!r}")
        return
    rows = [[i.name, f"{i.params:,}", f"{i.gflops:.4f}", i.dataset, i.source, ", ".join(i.weights) or "-"]
            for i in infos]
    click.echo(_table(rows, ["name", "params", "GFLOPs", "dataset", "source", "weights"], right={1, 2}))
    click.echo(f"\n{len(infos)} models. GFLOPs: one {'/'.join('x'.join(map(str, s)) for s in sorted({i.input_size for i in infos}))}"
               " input, FLOPs = 2 x MACs (see `zoo info NAME`).")


@cli.command("info")
@click.argument("name")
@json_option
def info_cmd(name: str, as_json: bool) -> None:
    """Show the model card of NAME."""
    info = zoo.model_info(name)
    layers = zoo.layer_summary(name)
    if as_json:
        _emit_json({**info.to_dict(), "layers": [layer.__dict__ for layer in layers]})
        return
    size = "x".join(map(str, info.input_size))
    lines = [
        f"{info.name}  ({info.family})",
        f"  {info.description}",
        f"  source:        {info.source}",
        f"  dataset:       {info.dataset} ({info.num_classes} classes), input {size}",
        f"  mean / std:    {info.mean} / {info.std}",
        f"  parameters:    {info.params:,} counted, {info.expected_params:,} expected"
        f" -> {'match' if info.params_match else 'MISMATCH'}",
    ]
    if info.reported_params is not None:
        lines.append(f"  the source says {info.reported_params:,} ({info.reported_params - info.params:+,})")
    if info.params_note:
        lines.append(f"  note:          {info.params_note}")
    lines.append(f"  GFLOPs:        {info.gflops:.4f} at {size} ({info.flops_note})")
    if info.reported_accuracy is not None:
        lines.append(f"  reported top-1 in the source: {info.reported_accuracy:.2f}%")
    lines.append(f"  weights:       {', '.join(info.weights) or 'none released yet'}")
    click.echo("\n".join(lines))
    click.echo("\nlayers:")
    rows = [[r.name, r.type, "x".join(map(str, r.output_shape[1:])), f"{r.params:,}"] for r in layers]
    click.echo(_table(rows, ["layer", "type", "output", "params"], right={3}))


def _run(command: Callable[..., Any], prog_name: str) -> None:
    """Run a click command with zoo's error boundary."""
    debug = "--debug" in sys.argv or os.environ.get("ZOO_DEBUG", "") not in ("", "0")
    try:
        command.main(prog_name=prog_name, standalone_mode=False)
    except zoo.ZooError as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


def main() -> None:
    """Entry point of ``zoo``."""
    _run(cli, "zoo")


def eval_main() -> None:
    """Entry point of ``zoo-eval`` (the same as ``zoo eval``)."""
    _run(cli.commands["eval"], "zoo-eval")
