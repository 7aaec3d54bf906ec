"""Training: ``zoo train`` (a recipe run, resumable), ``zoo status`` (where runs stand) and ``zoo recipes``."""

from __future__ import annotations

import click

from ._options import (
    RUNS_DIR,
    Path,
    data_dir_option,
    default_run_dir,
    device_option,
    json_option,
    model_option,
    out_dir_option,
    progress_option,
    threads_option,
)
from ._output import (
    echo,
    emit_json,
    estimate_report,
    estimates_table,
    recipe_card,
    recipes_table,
    status_report,
    train_summary,
)

__all__ = ["recipes_cmd", "status_cmd", "train_cmd"]


@click.command("train")
@model_option("Model to train (default: the recipe's).", required=False)
@click.option("--recipe", "-r", "recipe_name", required=True, help="Named recipe (see `zoo recipes`).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe setting (repeatable).")
@click.option("--dataset", help="Dataset name, or an image folder (DIR/train/<class>/..., DIR/test/<class>/...) "
              "[default: the recipe's].")
@click.option("--init-from", help="Start from this checkpoint (weights name or file); a classifier of another size "
              "starts fresh. Recorded in the recipe.")
@click.option("--freeze", help="Layers not to train: module-name patterns ('conv1,bn1,layer1,layer2') or "
              "'all-but-last:N'. Frozen norm layers stay in eval mode. Recorded in the recipe and layers.json.")
@out_dir_option("Run directory (default: runs/<model>-<recipe>).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last epoch.")
@click.option("--tag", help="Checkpoint tag: the file is <model>.<tag>-<sha8>.safetensors (default: the dataset).")
@click.option("--save-dtype", type=click.Choice(["float32", "float16"]), help="Storage dtype of the final weights.")
@data_dir_option()
@device_option()
@click.option("--max-minutes", type=float, help="Time budget: stop (state saved, resumable) before an epoch "
              "that would end past it.")
@click.option("--estimate", is_flag=True, help="Time a few real training steps here and print how long an epoch and "
              "the whole recipe would take; writes nothing.")
@threads_option
@progress_option()
@json_option
def train_cmd(model_name: str | None, recipe_name: str, overrides: tuple[str, ...], dataset: str | None,
              init_from: str | None, freeze: str | None, out_dir: str | None, resume: bool, tag: str | None,
              save_dtype: str | None, data_dir: str | None, device: str, max_minutes: float | None, estimate: bool,
              threads: int | None, progress: bool, as_json: bool) -> None:
    """Train a model with a recipe; checkpoints every epoch, evaluates the saved file at the end."""
    from ..train.loop import train
    from ..train.recipes import parse_overrides, resolve_recipe

    changes = parse_overrides(overrides)
    changes.update({k: v for k, v in (("dataset", dataset), ("init_from", init_from), ("freeze", freeze))
                    if v is not None})
    recipe = resolve_recipe(recipe_name, changes, model=model_name)
    if estimate:
        from ..train.estimate import estimate as estimate_recipe

        e = estimate_recipe(recipe, data_dir=data_dir, device=device, threads=threads)
        emit_json(e.to_dict()) if as_json else echo(estimate_report(e))
        return
    out_dir = default_run_dir(out_dir, f"{recipe.model}-{recipe.name}")
    r = train(recipe, out_dir=out_dir, data_dir=data_dir, resume=resume, device=device, tag=tag,
              progress=progress and not as_json, save_dtype=save_dtype, max_minutes=max_minutes, threads=threads)
    if as_json and (r.checkpoint or not r.finished):
        emit_json(r.to_dict())
    else:
        echo(train_summary(r, recipe, out_dir, max_minutes))


@click.command("status")
@click.argument("run_dirs", nargs=-1, type=Path(exists=True, file_okay=False))
@json_option
def status_cmd(run_dirs: tuple[str, ...], as_json: bool) -> None:
    """Where training runs stand: epochs, test top-1 so far, time spent and left, how to continue.

    RUN_DIRS default to the runs under ./runs (zoo train's default --out). Reads each run directory's JSON
    files and lock only (never its state.pt), so it is safe while the run trains.
    """
    from ..train.runs import find_runs, run_status

    statuses = [run_status(d) for d in (run_dirs or find_runs(RUNS_DIR))]
    if as_json:
        emit_json([s.to_dict() for s in statuses])
        return
    for s in statuses:
        click.echo(status_report(s))


@click.command("recipes")
@click.argument("name", required=False)
@click.option("--estimate", is_flag=True, help="Time each recipe (or NAME) here, a few real training steps each, "
              "and list how long an epoch and the whole recipe would take on this machine; writes nothing.")
@data_dir_option()
@threads_option
@progress_option()
@json_option
def recipes_cmd(name: str | None, estimate: bool, data_dir: str | None, threads: int | None, progress: bool,
                as_json: bool) -> None:
    """List the named recipes, or show one resolved."""
    from ..train.recipes import get_recipe, list_recipes

    if estimate:
        from ..train.estimate import estimate_recipes

        recipes = [get_recipe(n) for n in ([name] if name else list_recipes())]
        rows = list(estimate_recipes(recipes, data_dir=data_dir, threads=threads, progress=progress and not as_json))
        emit_json([e.to_dict() for e in rows]) if as_json else echo(estimates_table(rows))
        return
    if name:
        r = get_recipe(name)
        if as_json:
            emit_json(r.to_dict())
        else:
            click.echo(recipe_card(r))
        return
    recipes = [get_recipe(n) for n in list_recipes()]
    if as_json:
        emit_json([r.to_dict() for r in recipes])
    else:
        click.echo(recipes_table(recipes))

