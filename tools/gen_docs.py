"""The documentation site's generated pages, from the registry and the recorded results (never typed by hand).

    python tools/gen_docs.py --out /tmp/pages     # write the generated pages to look at them
    mkdocs build --strict                         # the site: tools/docs_hooks.py calls pages() and fill()

- ``models/<name>.md``: one per registered architecture (source, expected vs counted parameters, FLOPs, the
  family's other variants, its checkpoints, the peers' best figure, the layer table);
- ``checkpoints/<name>.md``: one per released checkpoint (scores, calibration, corruption robustness, per-class
  accuracy, the gallery's figures, recipe, training time and hardware, the commands that reproduce and verify
  it, how to load it in zoo, torch.hub and timm, its file and sha256);
- ``cli.md``: every command of ``zoo`` with its options and defaults, from the click commands;
- ``benchmarks/*.md``: the recorded benchmark pages with their figures.

The hand-written pages keep ``<!-- BEGIN name -->``/``<!-- END name -->`` markers that ``fill`` replaces with
``tools/gen_readme.py``'s tables at build time.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_readme  # noqa: E402  (tools/: the tables README and the site share)

import zoo  # noqa: E402
from zoo.registry import get_entry  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BENCHMARK_PAGES = {"throughput": "Throughput of every backend", "train_speed": "Training speed and time to accuracy",
                   "data_pipeline": "The data pipeline", "export_parity": "Export parity on the full test split",
                   "cli_latency": "Command latency", "cli_fuzz": "Command-line fuzzing",
                   "auto_vs_peers": "auto vs what users run instead"}


def _records(name: str) -> dict[str, dict[str, Any]]:
    path = RESULTS / f"{name}.json"
    return {r["weights"]: r for r in json.loads(path.read_text())["rows"]} if path.exists() else {}


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
                      *("| " + " | ".join(r) + " |" for r in rows)])


def model_page(name: str) -> str:
    """One architecture: its card, the family's variants, its checkpoints and its layers."""
    info, entry = zoo.model_info(name), get_entry(name)
    family = [n for n in zoo.list_models() if get_entry(n).family == entry.family and n != name]
    params = f"{info.params:,} counted, {info.expected_params:,} expected: " + (
        "equal" if info.params_match else "**they differ**")
    rows = [["family", f"`{info.family}`" + (f" (also {', '.join(f'[`{n}`]({n}.md)' for n in family)})"
                                             if family else "")],
            ["source", info.source], ["dataset", f"{info.dataset}, {info.num_classes} classes, input "
                                                f"{'x'.join(map(str, info.input_size))}"],
            ["parameters", params]]
    if info.reported_params is not None:
        rows.append(["the source's own count", f"{info.reported_params:,} ({info.reported_params - info.params:+,})"])
    if info.params_note:
        rows.append(["note", info.params_note])
    rows.append(["GFLOPs", f"{info.gflops:.4f} per image ({info.flops_note})"])
    if info.reported_accuracy is not None:
        rows.append(["top-1 reported by the source", f"{info.reported_accuracy:.2f}%"])
    rows += [["published top-1", f"{p.top1:.2f}% ([{p.source}]({p.url}))" + (f": {p.note}" if p.note else "")]
             for p in sorted(info.public, key=lambda p: -p.top1)]
    text = [f"# `{name}`", "", info.description, "", _md_table(["", "this architecture"], rows), "",
            "## Checkpoints", ""]
    text.append(_md_table(["weights", "top-1 (%)", "top-5 (%)", "recipe"], [
        [f"[`{w.name}`](../checkpoints/{w.name}.md)", f"{w.metrics.top1:.2f}", _num(w.metrics.top5), f"`{w.recipe}`"]
        for w in entry.weights]) if entry.weights else "None released yet.")
    text += ["", "## Create it", "", "```python", "import zoo", f"model = zoo.create({json.dumps(name)}"
             + (", weights=\"default\")" if entry.weights else ")  # random weights: no checkpoint yet"),
             "```", "", "## Layers", "", _md_table(["layer", "type", "output", "parameters"], [
                 [f"`{r.name}`", r.type, "x".join(map(str, r.output_shape[1:])), f"{r.params:,}"]
                 for r in zoo.layer_summary(name)])]
    return "\n".join(text) + "\n"


def _num(v: float | None, fmt: str = ".2f") -> str:
    return "" if v is None else format(v, fmt)


def _scores(w: zoo.Weights) -> list[list[str]]:
    m = w.metrics
    rows = [["top-1", f"**{m.top1:.2f}%** on the {m.split} split ({m.num_images:,} images), from the stored file"],
            ["top-5", f"{_num(m.top5)}%"], ["test loss (NLL)", f"{m.loss:.4f}"]]
    calibration = _records("calibration").get(w.name)
    if calibration and calibration["sha256"] == w.sha256:
        rows.append(["ECE", f"{calibration['before']['ece']:.2f}; {calibration['after']['ece']:.2f} at the fitted "
                            f"temperature {calibration['temperature']:.3f} ([results](../results.md#calibration))"])
    robust = _records("robustness").get(w.name)
    if robust and robust["sha256"] == w.sha256:
        rows.append(["mean corruption accuracy", f"{robust['mean_corruption_accuracy']:.2f}% on "
                                                 f"{robust['images_per_point']:,}"
                     f" images per point, clean {robust['clean_top1']:.2f}% "
                     "([results](../results.md#robustness-to-corruptions))"])
    return rows


def _gallery(w: zoo.Weights) -> list[str]:
    """The gallery's figures for ``w`` and its per-class accuracy, when the gallery holds them for this file."""
    path = ROOT / "docs" / "gallery" / f"{w.name}.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    if record.get("sha256") != w.sha256:
        return ["The gallery has no figures for this file yet (`python tools/gen_gallery.py`)."]
    text = []
    if record.get("per_class"):
        text += ["## Per-class accuracy", "", _md_table(["class", "images", "top-1 (%)"], [
            [c["class"], f"{c['images']:,}", f"{c['accuracy']:.2f}"] for c in record["per_class"]]), ""]
    figures = [("confusion", "Confusion matrix"), ("curves", "Training curves"), ("filters", "First-layer filters"),
               ("activations", "First conv layer's feature maps for test sample #0")]
    for key, title in figures:
        if (ROOT / "docs" / "gallery" / f"{w.name}-{key}.png").exists():
            text += [f"## {title}", "", f"![{title.lower()} of {w.name}](../gallery/{w.name}-{key}.png)", ""]
    return text


def _recipe_rows(recipe: Any) -> list[list[str]]:
    from zoo.train.recipes import Recipe

    defaults = Recipe().to_dict()
    return [[f"`{k}`", f"`{json.dumps(v)}`"] for k, v in recipe.to_dict().items()
            if k not in ("name", "description") and v != defaults[k]]


def _load_lines(w: zoo.Weights) -> list[str]:
    """How to load ``w`` in zoo, torch.hub (which loads an architecture's default checkpoint) and timm."""
    arch, name = json.dumps(w.arch), json.dumps(w.name)
    lines = ["```python", "import zoo", f"model = zoo.create({arch}, weights={name}).eval()",
             f"transform = zoo.get_weights({name}).transforms()"]
    if get_entry(w.arch).weights[0].name == w.name:
        lines += ["", "import torch", f"model = torch.hub.load(\"path/to/zoo\", {arch}, source=\"local\", "
                  "pretrained=True)"]
    return [*lines, "", "import timm, zoo.interop.to_timm  # registers zoo's models with timm",
            f"model = timm.create_model(\"zoo_{w.name}\", pretrained=True)", "```"]


def checkpoint_page(w: zoo.Weights) -> str:
    """One released checkpoint: what it scores, how it was trained, how to reproduce, verify and load it."""
    from zoo.train.recipes import RECIPES

    recipe = RECIPES.get(w.recipe)
    run = ROOT / "docs" / "runs" / w.name
    text = [f"# `{w.name}`", "", f"Weights of [`{w.arch}`](../models/{w.arch}.md) for {w.dataset} "
            f"({w.num_classes} classes, input {'x'.join(map(str, w.input_size))}, mean {list(w.mean)}, std "
            f"{list(w.std)}).", "", _md_table(["score", "from the stored file"], _scores(w)), "", *_gallery(w),
            "## Training", "", f"Recipe `{w.recipe}`: {recipe.description if recipe else ''}", "",
            f"Trained in {w.train_time_s / 60:.1f} min on {w.hardware}."
            + (f" The run's recipe, log and result: `docs/runs/{w.name}/`." if run.is_dir() else ""), ""]
    if recipe is not None:
        text += ["The recipe's settings that differ from `zoo.train.recipes.Recipe`'s defaults (`zoo recipes "
                 f"{w.recipe}` prints them all):", "", _md_table(["setting", "value"], _recipe_rows(recipe)), ""]
    text += ["## Reproduce and verify", "", "```bash",
             f"zoo train --recipe {w.recipe} --out runs/{w.arch}" + (" --device cuda" if "NVIDIA" in w.hardware
                                                                      else "") + "   # train it again",
             f"zoo-eval --model {w.arch} {w.dataset} --weights {w.name} --backend eager   # its top-1, exactly",
             "zoo weights verify                                  # re-hash every file", "```", "",
             "## Load it", "", *_load_lines(w), "", "## File", "", _md_table(["", "the released file"], [
                 ["file", f"`weights/{w.file_name}`"], ["sha256", f"`{w.sha256}`"],
                 ["stored as", f"{w.dtype}, {w.file_size / 1e6:.1f} MB"], ["parameters", f"{w.num_params:,}"],
                 ["GFLOPs", f"{w.gflops:.4f}"], ["licence", w.licence]])]
    return "\n".join(text) + "\n"


def _option_row(p: Any) -> list[str]:
    import click

    names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
    if isinstance(p, click.Argument):
        return [f"`{p.human_readable_name}` (argument)", "", "required" if p.required else "optional"]
    kind = "flag" if p.is_flag else (p.type.name if not isinstance(p.type, click.Choice)
                                     else " \\| ".join(map(str, p.type.choices)))
    unset = p.default is None or type(p.default).__name__ == "Sentinel"  # click 8.2: UNSET for "no default"
    default = "" if unset or p.default in (False, ()) or callable(p.default) else f"`{p.default}`"
    return [names, _escape(p.help or "").replace("|", "\\|"), f"{kind}; default {default}" if default else kind]


def _escape(text: str) -> str:
    """Help text as Markdown prose: ``<name>`` shown, not taken for an HTML tag."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _commands(group: Any, prefix: str) -> list[tuple[str, Any]]:
    import click

    found = []
    for name in sorted(group.commands):
        cmd = group.commands[name]
        found.append((f"{prefix} {name}", cmd))
        if isinstance(cmd, click.Group):
            found += _commands(cmd, f"{prefix} {name}")
    return found


def cli_page() -> str:
    """Every command, its help, usage and options with their defaults, from the click commands themselves."""
    import click

    from zoo.cli import cli

    text = ["# Command-line reference", "", "Generated from the click commands (`zoo --help`, `zoo COMMAND --help`);"
            " `zoo-eval` is `zoo eval`. Every command exits 1 with a one-line message on a bad input (`--debug` shows "
            "the traceback).", ""]
    for path, cmd in _commands(cli, "zoo"):
        ctx = click.Context(cmd, info_name=path)
        usage = " ".join(cmd.collect_usage_pieces(ctx))
        text += [f"## `{path}`", "", _escape(inspect.cleandoc(cmd.help or "")), "", f"```\n{path} {usage}\n```", ""]
        params = [p for p in cmd.params if p.name != "help"]
        if params and not isinstance(cmd, click.Group):
            text += [_md_table(["option", "what", "type and default"], [_option_row(p) for p in params]), ""]
    return "\n".join(text) + "\n"


def benchmark_page(name: str, title: str) -> str | None:
    """A recorded benchmark's page (``benchmarks/results/<name>.md``) under a title, images pointing beside it."""
    path = RESULTS / f"{name}.md"
    if not path.exists():
        return None
    body = re.sub(r"^# .*\n", "", path.read_text(), count=1)
    figure = f"![{title}]({name}.png)\n\n" if (RESULTS / f"{name}.png").exists() else ""
    return f"# {title}\n\nRecorded in `benchmarks/results/{name}.md` (and `.json`).\n\n{figure}{body}"


def pages() -> dict[str, str]:
    """Every generated page: path under the site -> Markdown."""
    out = {f"models/{n}.md": model_page(n) for n in zoo.list_models()}
    out.update({f"checkpoints/{w.name}.md": checkpoint_page(w) for w in zoo.list_weights()})
    out["cli.md"] = cli_page()
    for name, title in BENCHMARK_PAGES.items():
        page = benchmark_page(name, title)
        if page is not None:
            out[f"benchmarks/{name}.md"] = page
    return out


def checkpoint_links() -> str:
    """The released checkpoints in a table narrow enough for a page, each linked to its own page."""
    rows = []
    for w in zoo.list_weights():
        public = max((p.top1 for p in zoo.model_info(w.arch).public), default=None)
        machine = w.hardware.split(",")[0].split(" (")[0]  # "AMD EPYC Zen 4", "NVIDIA H200"
        rows.append([f"[`{w.name}`](checkpoints/{w.name}.md)", w.dataset, f"**{w.metrics.top1:.2f}**",
                     _num(public), f"{w.num_params / 1e6:.2f}M", f"{w.gflops:.3f}", machine])
    return _md_table(["checkpoint", "dataset", "top-1 (%)", "best public top-1 (%)", "params", "GFLOPs",
                      "trained on"], rows)


SITE_SECTIONS = {"checkpoint-links": checkpoint_links}  # the site's own tables, beside gen_readme's


def fill(markdown: str) -> str:
    """``markdown`` with each ``<!-- BEGIN name -->`` section filled in: the site's own (``SITE_SECTIONS``) and
    those ``tools/gen_readme.py`` knows."""
    for key, fn in SITE_SECTIONS.items():
        markdown = re.sub(rf"(<!-- BEGIN {key} -->\n)(?:.*?\n)?(<!-- END {key} -->)",
                          lambda m, fn=fn: m.group(1) + fn() + "\n" + m.group(2), markdown, flags=re.S)
    return gen_readme.render(markdown, required=())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the generated pages into")
    args = parser.parse_args()
    generated = pages()
    for path, text in generated.items():
        target = args.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    print(f"wrote {len(generated)} pages under {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
