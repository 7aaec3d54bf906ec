"""The catalogue: ``zoo list`` and ``zoo info`` (models and their checkpoints), the ``zoo weights`` group
(where released files are, fetching them, re-checking them) and ``zoo hub export`` (a checkpoint as a Hugging
Face Hub model folder)."""

from __future__ import annotations

from typing import Any

import click

import zoo

from ._options import Path, json_option, progress_option
from ._output import emit_json, model_card, model_list, verified_files, weights_card, weights_table

__all__ = ["info_cmd", "list_cmd", "weights_group", "hub_group"]


@click.command("list")
@click.argument("pattern", default="*")
@click.option("--dataset", help="Only models whose default dataset this is.")
@click.option("--pretrained", is_flag=True, help="Only models with released weights.")
@json_option
def list_cmd(pattern: str, dataset: str | None, pretrained: bool, as_json: bool) -> None:
    """List registered models matching PATTERN (fnmatch wildcards, e.g. 'resnet*'); --pretrained: their checkpoints."""
    from ..registry import get_entry

    models = [get_entry(n).summary() for n in zoo.list_models(pattern, dataset=dataset, pretrained=pretrained)]
    if as_json:
        emit_json(models)
    else:
        click.echo(model_list(models, pattern, pretrained))


@click.command("info")
@click.argument("name")
@json_option
def info_cmd(name: str, as_json: bool) -> None:
    """Show the model card of NAME, or the checkpoint card of NAME=arch.tag (e.g. resnet20.cifar10)."""
    if "." in name:
        _weights_card(zoo.get_weights(name), as_json)
        return
    from ..runners import auto_choices

    info = zoo.model_info(name)
    layers = zoo.layer_summary(name)
    choices = auto_choices(name, info.gflops)
    if as_json:
        emit_json({**info.to_dict(), "layers": [layer.__dict__ for layer in layers], "auto": choices})
    else:
        click.echo(model_card(info, layers, choices))


def _weights_card(w: Any, as_json: bool) -> None:
    from ..weights import where

    place, path = where(w)
    if as_json:
        emit_json({**w.to_dict(), "where": place, "path": str(path) if path else None})
    else:
        click.echo(weights_card(w, place, path))


@click.group("weights")
def weights_group() -> None:
    """Released checkpoints: where they are, fetch them for offline use, re-check them."""


def _released(names: tuple[str, ...], every: bool) -> list[Any]:
    from ..registry import select_weights

    if not every and not names:
        raise click.UsageError("name the weights (arch.tag, wildcards allowed) or pass --all")
    return zoo.list_weights() if every else select_weights(names)


def _released_files(pattern: str) -> list[dict[str, Any]]:
    """The released checkpoints matching ``pattern``: their scores and where their file is."""
    from ..weights import where

    rows = []
    for w in zoo.list_weights(pattern):
        place, path = where(w)
        rows.append({"name": w.name, "dataset": w.dataset, "top1": w.metrics.top1, "top5": w.metrics.top5,
                     "num_params": w.num_params, "file_size": w.file_size, "dtype": w.dtype, "sha256": w.sha256,
                     "where": place, "path": str(path) if path else None})
    return rows


@weights_group.command("list")
@click.argument("pattern", default="*")
@json_option
def weights_list_cmd(pattern: str, as_json: bool) -> None:
    """Released checkpoints matching PATTERN, their scores and where their file is."""
    rows = _released_files(pattern)
    if as_json:
        emit_json(rows)
    else:
        click.echo(weights_table(rows, pattern))


@weights_group.command("download")
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every released checkpoint.")
@click.option("--to", "to", type=Path(file_okay=False), help="Also copy the files here (an offline machine's "
              "$ZOO_WEIGHTS_DIR).")
@progress_option()
@json_option
def weights_download_cmd(names: tuple[str, ...], every: bool, to: str | None, progress: bool, as_json: bool) -> None:
    """Fetch and verify NAMES (arch.tag, wildcards allowed) into the cache, or --to a folder."""
    from ..weights import download

    done = [{"name": w.name, "path": str(download(w, to=to, progress=progress and not as_json))}
            for w in _released(names, every)]
    if as_json:
        emit_json(done)
        return
    for row in done:
        click.echo(f"{row['name']}: {row['path']} (sha256 verified)")


@weights_group.command("verify")
@json_option
def weights_verify_cmd(as_json: bool) -> None:
    """Re-hash every released file in the weights folders and the cache; exit 1 if one is corrupt."""
    from ..weights import verify_files

    rows = verify_files()
    if as_json:
        emit_json(rows)
    else:
        click.echo(verified_files(rows))
    bad = [r["path"] for r in rows if not r["ok"]]
    if bad:
        raise zoo.CheckpointError(f"{len(bad)} file(s) do not match their sha256: {', '.join(bad)}; delete them "
                                  f"(a cached file is fetched again on next use)")


@weights_group.command("path")
@click.argument("name")
@progress_option()
def weights_path_cmd(name: str, progress: bool) -> None:
    """Print the verified file of NAME (arch.tag), downloading it first if needed."""
    from ..weights import download

    click.echo(download(zoo.get_weights(name), progress=progress))


@click.group("hub")
def hub_group() -> None:
    """Released checkpoints as Hugging Face Hub model folders (timm's layout)."""


@hub_group.command("export")
@click.argument("name")
@click.argument("folder", type=Path(file_okay=False))
@progress_option()
@json_option
def hub_export_cmd(name: str, folder: str, progress: bool, as_json: bool) -> None:
    """Write NAME (arch.tag) into FOLDER as a Hub model repository: model.safetensors, config.json, README.md.

    Upload it with `huggingface-cli upload ORG/NAME FOLDER`; load it with zoo.create("local-dir:FOLDER") or,
    once uploaded, zoo.create("hf-hub:ORG/NAME").
    """
    from ..interop.hf_hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, export_folder

    out = export_folder(name, folder, progress=progress and not as_json)
    files = [str(out / f) for f in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)]
    if as_json:
        emit_json({"name": name, "folder": str(out), "files": files})
    else:
        click.echo("\n".join([*files, f"upload: huggingface-cli upload ORG/NAME {out}"]))
