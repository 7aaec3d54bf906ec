"""Regenerate the generated tables of README.md and docs/results.csv from the registry (and the layer table);
the same tables fill the documentation site's pages (``tools/gen_docs.py``).

    python tools/gen_readme.py          # rewrite README.md and docs/results.csv in place
    python tools/gen_readme.py --check  # exit 1 when either is stale (the test suite runs this)

Each table sits between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers (``SECTIONS``): README.md
keeps ``README_SECTIONS``; the site's pages under ``docs/`` keep the others, filled when the site is built.
``docs/results.csv`` has one row per released checkpoint, in the columns of timm's results files
(``model,top1,top1_err,top5,top5_err,param_count,img_size``) plus zoo's own.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import layers  # tools/layers.py: the layer table (this script's folder is on sys.path)

import zoo
from zoo.registry import get_entry
from zoo.train.runs import format_duration, run_status
from zoo.utils.hardware import recorded_hardware

README = Path(__file__).resolve().parent.parent / "README.md"
RESULTS = README.parent / "docs" / "results.csv"


def results_csv() -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["model", "dataset", "top1", "top1_err", "top5", "top5_err", "param_count", "gflops", "img_size",
                     "file_size", "dtype", "sha256", "recipe", "train_time_s", "hardware", "best_public_top1",
                     "best_public_source"])
    for w in zoo.list_weights():
        m = w.metrics
        top5 = ("", "") if m.top5 is None else (f"{m.top5:.2f}", f"{100 - m.top5:.2f}")
        best = get_entry(w.arch).best_public
        writer.writerow([w.name, w.dataset, f"{m.top1:.2f}", f"{100 - m.top1:.2f}", *top5, w.num_params,
                         f"{w.gflops:.4f}", w.input_size[-1], w.file_size, w.dtype, w.sha256, w.recipe,
                         w.train_time_s, w.hardware, "" if best is None else f"{best.top1:.2f}",
                         "" if best is None else best.source])
    return out.getvalue()


def model_table() -> str:
    rows = ["| model | family | dataset | params (counted) | source's own figure | GFLOPs | source | weights |",
            "|---|---|---|---:|---:|---:|---|---|"]
    for name in zoo.list_models():
        i = zoo.model_info(name)
        own = f"{i.reported_params:,}" if i.reported_params is not None else ""
        rows.append(f"| `{i.name}` | {i.family} | {i.dataset} | {i.params:,} | {own} | {i.gflops:.4f} | "
                    f"{i.source} | {', '.join(i.weights) or '-'} |")
    return "\n".join(rows)


def param_notes() -> str:
    lines = []
    for name in zoo.list_models():
        i = zoo.model_info(name)
        if i.params_note:
            lines.append(f"- `{i.name}`: {i.params_note}")
    return "\n".join(lines)


def weights_table() -> str:
    rows = ["| weights | dataset | top-1 (%) | top-5 (%) | test loss | source's top-1 (%) | best public top-1 (%) | "
            "recipe | train time | hardware | file |",
            "|---|---|---:|---:|---:|---:|---|---|---:|---|---|"]
    for w in zoo.list_weights():
        info = zoo.model_info(w.arch)
        reported = info.reported_accuracy
        best = get_entry(w.arch).best_public
        top5 = "-" if w.metrics.top5 is None else f"{w.metrics.top5:.2f}"
        rows.append(f"| `{w.name}` | {w.dataset} | {w.metrics.top1:.2f} | {top5} | {w.metrics.loss:.4f} | "
                    f"{'' if reported is None else f'{reported:.2f}'} | "
                    f"{'' if best is None else f'{best.top1:.2f} ([{best.source}]({best.url}))'} | `{w.recipe}` | "
                    f"{w.train_time_s / 60:.1f} min | {w.hardware} | `weights/{w.file_name}` ({w.dtype}, "
                    f"{w.file_size / 1e6:.1f} MB) |")
    return "\n".join(rows)


def training_times() -> str:
    """Every recorded run under docs/runs (its log and result) and every recorded estimate
    (benchmarks/results/estimates/*.json, ``zoo recipes --estimate --json``): time per epoch and in all, each
    with the machine class and precision it was measured in."""
    import json

    rows = ["| recipe | epochs | machine | per epoch | training | source | top-1 (%) |",
            "|---|---:|---|---:|---:|---|---:|"]
    runs = [(run_status(p.parent), p.parent.name) for p in (README.parent / "docs" / "runs").glob("*/recipe.json")]
    for st, name in sorted(runs, key=lambda r: (r[0].recipe, r[1])):
        epochs = f"{st.epochs}" if st.epochs_done == st.epochs else f"{st.epochs_done} of {st.epochs}"
        top1 = "" if st.final_top1 is None else f"{st.final_top1:.2f}"
        rows.append(f"| `{st.recipe}` | {epochs} | {st.hardware} | {format_duration(st.train_s / st.epochs_done)} | "
                    f"{format_duration(st.train_s)} | run `docs/runs/{name}` | {top1} |")
    for path in sorted((README.parent / "benchmarks" / "results" / "estimates").glob("*.json")):
        for e in json.loads(path.read_text()):
            rows.append(f"| `{e['recipe']}` | {e['epochs']} | {e['hardware']} | {format_duration(e['epoch_s'])} | "
                        f"{format_duration(e['total_s'])} | estimate `benchmarks/results/estimates/{path.name}` | |")
    return "\n".join(rows)


def peers_table() -> str:
    """Per architecture that another collection publishes a figure for: zoo's checkpoint beside the best one."""
    rows = ["| model | zoo top-1 (%) | best public top-1 (%) | where | zoo - best (points) |",
            "|---|---:|---:|---|---:|"]
    for name in zoo.list_models():
        entry = get_entry(name)
        best = entry.best_public
        if best is None:
            continue
        ours = entry.weights[0].metrics.top1 if entry.weights else None
        gap = "no checkpoint yet" if ours is None else f"{ours - best.top1:+.2f}"
        note = f" ({best.note})" if best.note else ""
        rows.append(f"| `{name}` | {'-' if ours is None else f'{ours:.2f}'} | {best.top1:.2f} | "
                    f"[{best.source}]({best.url}){note} | {gap} |")
    return "\n".join(rows)


def calibration_table() -> str:
    """Per released checkpoint: the test split's ECE, NLL and Brier score at temperature 1 and at the fitted one
    (``benchmarks/results/calibration.json``, written by ``tools/calibration_record.py``)."""
    import json

    data = json.loads((README.parent / "benchmarks" / "results" / "calibration.json").read_text())
    machines = sorted({row["hardware"] for row in data["rows"]})
    rows = [f"ECE: {data['ece_definition']}. Temperature fitted on {data['holdout']} (every checkpoint here was "
            f"trained on them), scores on the full test split, {data['precision']}, on {'; '.join(machines)}.", "",
            "| checkpoint | top-1 (%) | temperature | ECE | ECE, scaled | NLL | NLL, scaled | Brier | Brier, scaled |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["rows"]:
        b, a = r["before"], r["after"]
        rows.append(f"| `{r['weights']}` | {r['top1']:.2f} | {r['temperature']:.3f} | {b['ece']:.2f} | {a['ece']:.2f} "
                    f"| {b['nll']:.4f} | {a['nll']:.4f} | {b['brier']:.4f} | {a['brier']:.4f} |")
    return "\n".join(rows)


def robustness_table() -> str:
    """Per released CIFAR-10 checkpoint: top-1, calibration (``calibration.json``) and the accuracy on corrupted
    test images (``benchmarks/results/robustness.json``, written by ``tools/robustness_record.py``), with
    RobustBench's Standard model as the anchor row."""
    import json

    results = README.parent / "benchmarks" / "results"
    if not (results / "robustness.json").exists():
        return "Not recorded yet: `python tools/robustness_record.py`."
    data = json.loads((results / "robustness.json").read_text())
    calibration = {r["weights"]: r for r in json.loads((results / "calibration.json").read_text())["rows"]}
    machines = sorted({row["hardware"] for row in data["rows"]})
    settings = ", ".join(sorted({row["setting"] for row in data["rows"]}))
    sizes = sorted({row["images_per_point"] for row in data["rows"]})
    a = data["anchor"]
    rows = [f"Mean corruption accuracy: the mean top-1 over 15 corruptions x 5 severities, on the first "
            f"{' or '.join(f'{n:,}' for n in sizes)} test images per point ({data['style']}; seed {data['seed']}); "
            f"clean: the same images uncorrupted. On {'; '.join(machines)} (runners chosen by auto: {settings}). "
            "ECE in points of top-1, before and "
            f"after the fitted temperature (the calibration table).", "",
            "| checkpoint | top-1 (%) | ECE | ECE, scaled | NLL | clean top-1, same images | mean corruption "
            "accuracy | noise | blur | weather | digital | images per point |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(data["rows"], key=lambda r: -r["mean_corruption_accuracy"]):
        c, f = calibration[r["weights"]], r["per_family"]
        rows.append(f"| `{r['weights']}` | {r['top1']:.2f} | {c['before']['ece']:.2f} | {c['after']['ece']:.2f} | "
                    f"{c['before']['nll']:.4f} | {r['clean_top1']:.2f} | **{r['mean_corruption_accuracy']:.2f}** | "
                    f"{f['noise']:.2f} | {f['blur']:.2f} | {f['weather']:.2f} | {f['digital']:.2f} | "
                    f"{r['images_per_point']:,} |")
    rows.append(f"| [{a['model']}]({a['url']}) (anchor: the released CIFAR-10-C) | {a['clean_top1']:.2f} | | | | | "
                f"**{a['mean_corruption_accuracy']:.2f}** | | | | | 10,000 |")
    return "\n".join(rows)


def landscape_table() -> str:
    import json

    path = README.parent / "benchmarks" / "results" / "landscape" / "landscape.json"
    data = json.loads(path.read_text())
    summary, cfg = data["summary"], data["config"]
    models = list(summary)
    machine = recorded_hardware(data["hardware"], "fp32")  # the study runs in eager fp32
    rows = [f"{cfg.get('steps', '?')} steps per run; wall time {data['wall_s'] / 60:.1f} min on {machine}.",
            "",
            "| measure | " + " | ".join(f"`{m}`" for m in models) + " |", "|---|" + "---:|" * len(models)]
    measures = [("loss band (max - min over learning rates), mean over steps", "all_steps", "loss_band_mean"),
                ("the same, second half of the steps", "second_half", "loss_band_mean"),
                ("gradient change over a step, mean of the per-step largest", "all_steps", "grad_change_mean_of_max"),
                ("the same, last Linear layer only", "all_steps", "grad_change_last_mean_of_max"),
                ("beta smoothness, largest seen", "all_steps", "beta_max"),
                ("beta smoothness, second half, mean of the per-step largest", "second_half", "beta_mean_of_max")]
    for label, part, key in measures:
        rows.append(f"| {label} | " + " | ".join(f"{summary[m][part][key]:.3g}" for m in models) + " |")
    finals = [f"{min(summary[m]['final_loss'].values()):.2f}-{max(summary[m]['final_loss'].values()):.2f}"
              for m in models]
    rows.append("| final training loss over the learning rates | " + " | ".join(finals) + " |")
    return "\n".join(rows)


def transfer_table() -> str:
    import json

    data = json.loads((README.parent / "benchmarks" / "results" / "transfer" / "transfer.json").read_text())
    cfg, final = data["config"], data["final"]
    levels = list(final["transfer"]["steps_to"])
    rows = [f"Source: `{cfg['model']}` trained on classes {cfg['source_classes']} ({data['source']['images']:,} "
            f"images, {cfg['source_epochs']} epochs; {data['source']['test_top1']:.2f}% on their test images). Target: "
            f"{', '.join(data['target']['classes'])}, {data['target']['train_images']:,} labelled images, "
            f"{cfg['target_steps']} steps of Adam (lr {cfg['lr']:g}, batch {cfg['batch_size']}), scored on "
            f"{data['target']['test_images']:,} test images. Frozen in the transfer run: `{cfg['freeze']}`. "
            f"Wall time {data['wall_s'] / 60:.1f} min on {recorded_hardware(data['hardware'], 'fp32')}.", "",
            "| run | final top-1 (%) | final test loss | lowest test loss | " +
            " | ".join(f"steps to {lv}%" for lv in levels) + " |",
            "|---|---:|---:|---:|" + "---:|" * len(levels)]
    for name, f in final.items():
        steps = " | ".join("not reached" if f["steps_to"][lv] is None else str(f["steps_to"][lv]) for lv in levels)
        rows.append(f"| {name} | {f['test_top1']:.2f} | {f['test_loss']:.4f} | {f['best_test_loss']:.4f} | {steps} |")
    rows += ["", "| report 003's finding | this run |", "|---|---|"]
    rows += [f"| transfer {claim} | {'agrees' if ok else 'does not agree'} |"
             for claim, ok in data["agrees_with_report_003"].items()]
    return "\n".join(rows)


def layout_table() -> str:
    """The package's layers, lowest first, with the modules each holds (``tools/layers.py``)."""
    package = README.parent / "zoo"
    modules = {".".join(f.relative_to(README.parent).with_suffix("").parts).removesuffix(".__init__"): f
               for f in sorted(package.rglob("*.py"))}
    by_layer: dict[int, list[str]] = {}
    for name, f in modules.items():
        shown = f"{f.parent.relative_to(README.parent)}/" if f.name == "__init__.py" and name != "zoo" else \
            str(f.relative_to(README.parent))
        by_layer.setdefault(layers.layer_of(name), []).append(shown)
    rows = ["| layer | modules | what |", "|---|---|---|"]
    for i, layer in enumerate(layers.LAYERS):
        files = by_layer.get(i, [])
        folders = [f for f in files if f.endswith("/")]
        inside = {f: sorted(Path(g).stem for g in files if g.startswith(f) and not g.endswith("/")) for f in folders}
        alone = [f for f in files if not f.endswith("/") and not any(f.startswith(d) for d in folders)]
        cells = [f"`{d}` ({', '.join(inside[d])})" if inside[d] else f"`{d}`" for d in folders]
        cells += [f"`{f}`" for f in alone]
        rows.append(f"| {layer.name} | {'; '.join(cells)} | {layer.what} |")
    return "\n".join(rows)


SECTIONS = {"calibration": calibration_table, "robustness": robustness_table,
            "layout": layout_table, "models": model_table, "param-notes": param_notes, "weights": weights_table,
            "peers": peers_table, "training-times": training_times, "landscape": landscape_table,
            "transfer": transfer_table}


README_SECTIONS = ("weights",)  # the site's pages hold the others (tools/gen_docs.py fills them at build time)


def render(text: str, required: tuple[str, ...] = README_SECTIONS) -> str:
    """``text`` with every ``<!-- BEGIN name -->`` section it has regenerated; each of ``required`` must be there."""
    for key, fn in SECTIONS.items():
        pattern = re.compile(rf"(<!-- BEGIN {key} -->\n)(?:.*?\n)?(<!-- END {key} -->)", re.S)
        if not pattern.search(text):
            if key in required:
                raise SystemExit(f"README.md has no '{key}' markers")
            continue
        text = pattern.sub(lambda m: m.group(1) + fn() + "\n" + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when README.md is stale instead of writing it")
    args = parser.parse_args()
    stale = []
    for path, make in ((README, lambda old: render(old)), (RESULTS, lambda old: results_csv())):
        old = path.read_text() if path.exists() else ""
        new = make(old)
        if new != old:
            stale.append(path)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"{', '.join(p.name for p in stale)} stale: run `python tools/gen_readme.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
