"""What the commands print: ``--json`` emission, the table helper, and one formatter per result (a model list,
a card, the bench table, the evaluation and int8 reports, the train summary, a run's status...). Each formatter
takes a job's result and returns the text; only the commands print it."""

from __future__ import annotations

import json
from typing import Any

import click

from zoo.utils.fileio import strict_json

__all__ = ["bench_report", "echo", "emit_json", "eval_report", "export_report", "int8_report", "landscape_report",
           "model_card", "model_list", "predictions", "recipe_card", "recipes_table", "status_report", "table",
           "train_summary", "transfer_report", "tune_report", "verified_files", "view_report", "weights_card",
           "weights_table"]


def echo(text: str) -> None:
    """Print a formatter's text and a line break; nothing at all when there is no text (no predictions, a
    distributed run's other processes)."""
    if text:
        click.echo(text)


def emit_json(data: Any) -> None:
    """Print ``data`` as strict JSON (no NaN or infinity), indented."""
    click.echo(json.dumps(strict_json(data), indent=2, default=str, allow_nan=False))


def table(rows: list[list[str]], headers: list[str], right: set[int] = frozenset()) -> str:
    """A plain-text table: columns padded to their widest cell, those in ``right`` right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def fmt(row: list[str]) -> str:
        return "  ".join(str(v).rjust(w) if i in right else str(v).ljust(w) for i, (v, w) in
                         enumerate(zip(row, widths))).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _shape(dims: Any) -> str:
    return "x".join(map(str, dims))


# models and weights

def model_list(models: list[dict[str, Any]], pattern: str, pretrained: bool) -> str:
    """``zoo list``: one row per model, or with ``pretrained`` one row per released checkpoint."""
    if not models:
        return f"no {'pretrained ' if pretrained else ''}model matches {pattern!r}"
    if pretrained:  # one row per released checkpoint: the numbers users choose by
        rows = [[w["name"], w["dataset"], f"{w['top1']:.2f}", _num(w["top5"], ".2f"), f"{m['params']:,}",
                 f"{m['gflops']:.4f}", f"{w['file_size'] / 1e6:.1f} MB"] for m in models for w in m["weights"]]
        return "\n".join([
            table(rows, ["weights", "dataset", "top-1", "top-5", "params", "GFLOPs", "size"], right={2, 3, 4, 5, 6}),
            f"\n{len(rows)} checkpoints; top-1/top-5 (%) measured from the stored file on the full test split."])
    rows = [[m["name"], f"{m['params']:,}", f"{m['gflops']:.4f}", m["dataset"], _num(m["top1"], ".2f"), m["source"]]
            for m in models]
    sizes = "/".join(_shape(s) for s in sorted({tuple(m["input_size"]) for m in models}))
    return "\n".join([
        table(rows, ["name", "params", "GFLOPs", "dataset", "top-1", "source"], right={1, 2, 4}),
        f"\n{len(models)} models. GFLOPs: one {sizes} input, FLOPs = 2 x MACs; top-1: the default "
        f"checkpoint's (`zoo list --pretrained` for all; `zoo info NAME` for a card)."])


def model_card(info: Any, layers: list[Any], auto: list[dict[str, Any]] = ()) -> str:
    """``zoo info MODEL``: the model card, what ``auto`` runs it with here and why, and its layer table."""
    size = _shape(info.input_size)
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
    for p in sorted(info.public, key=lambda p: -p.top1):
        note = f"; {p.note}" if p.note else ""
        lines.append(f"  published top-1 elsewhere: {p.top1:.2f}% ({p.source}, {p.url}{note})")
    lines.append(f"  weights:       {', '.join(info.weights) or 'none released yet'}")
    lines += [f"  auto, batch {c['batch_size']}: {c['backend']} ({c['why']})" for c in auto]
    rows = [[r.name, r.type, _shape(r.output_shape[1:]), f"{r.params:,}"] for r in layers]
    return "\n".join([*lines, "\nlayers:", table(rows, ["layer", "type", "output", "params"], right={3})])


def weights_card(w: Any, place: str, path: Any) -> str:
    """``zoo info arch.tag``: the checkpoint card, with where its file is."""
    m = w.metrics
    top5 = "" if m.top5 is None else f", top-5 {m.top5:.2f}%"
    return "\n".join([
        f"{w.name}  (weights of {w.arch}; zoo.create({w.arch!r}, weights={w.name!r}))",
        f"  scores:        top-1 {m.top1:.2f}%{top5}, loss {m.loss:.4f} on the {w.dataset} {m.split} split "
        f"({m.num_images:,} images), measured from the stored file",
        f"  input:         {_shape(w.input_size)}, mean {w.mean}, std {w.std}; {w.num_classes} classes",
        f"  model:         {w.num_params:,} parameters, {w.gflops:.4f} GFLOPs",
        f"  recipe:        {w.recipe} (`zoo recipes {w.recipe}`), {w.train_time_s / 60:.1f} min on {w.hardware}",
        f"  file:          {w.file_name} ({w.dtype}, {w.file_size / 1e6:.1f} MB), sha256 {w.sha256}",
        f"  where:         {place}{f' ({path})' if path else ''}; licence {w.licence}",
    ])


def weights_table(rows: list[dict[str, Any]], pattern: str) -> str:
    """``zoo weights list``: the released checkpoints and where their files are."""
    if not rows:
        return f"no released weights match {pattern!r}"
    cells = [[r["name"], r["dataset"], f"{r['top1']:.2f}", _num(r["top5"], ".2f"), f"{r['file_size'] / 1e6:.1f} MB",
              r["sha256"][:8], r["where"]] for r in rows]
    return "\n".join([
        table(cells, ["name", "dataset", "top-1", "top-5", "size", "sha256", "where"], right={2, 3, 4}),
        "\nwhere: weights_dir ($ZOO_WEIGHTS_DIR or the checkout's weights/), package (an installed zoo-weights-N "
        "data distribution), cache (by sha256), remote "
        "($ZOO_WEIGHTS_URL or the entry's url; fetched on first use), missing (no copy and no URL)."])


def verified_files(rows: list[dict[str, Any]]) -> str:
    """``zoo weights verify``: each file's sha256 check."""
    if not rows:
        from ..weights import cache_dir

        return f"no released files here (weights folders and cache {cache_dir()})"
    return table([[r["name"] or "(not a released file)", "ok" if r["ok"] else "CORRUPT", r["path"]] for r in rows],
                 ["name", "sha256", "path"])


# jobs: bench, eval, predict, export

def bench_report(r: Any, plot_png: str | None) -> str:
    """``zoo bench``: one row per setting, then the peaks and the machine's load."""
    rows = [[x.model, x.device, x.backend if x.backend == x.setting else f"{x.backend}: {x.setting}",
             str(x.batch_size), _num(x.threads, "d"), _num(x.median_ms, ".2f"), _num(x.p90_ms, ".2f"),
             _num(x.images_per_s, ",.0f"), _num(x.gflop_per_s, ".1f"),
             _num(None if x.peak_share is None else 100 * x.peak_share, ".0f"), _num(x.peak_memory_mb, ".1f"),
             _num(x.speedup_vs_eager, ".2f"), _num(x.cuda_speedup, ".2f"), x.status] for x in r.rows]
    peaks = "; ".join(f"{k}: fp32 {p['fp32']:g}, bf16 {p['bf16'] or '-'} GFLOP/s" for k, p in r.peaks.items())
    load = ", ".join(f"{v:.2f}" for v in r.machine["loadavg"] or [])
    lines = [table(rows, ["model", "device", "backend", "batch", "threads", "median ms", "p90 ms", "images/s",
                          "GFLOP/s", "% peak", "mem MB", "x eager", "cuda/cpu", "status"], right=set(range(3, 13))),
             f"\npeak (matmul probe, cached): {peaks or 'not measured'}; load average {load}; {r.wall_s:.0f} s"]
    why = {(x.model, n) for x in r.rows for n in x.notes if x.backend != x.setting and n.startswith("auto ran")}
    peers = {(x.backend, n) for x in r.rows for n in x.notes if x.backend in r.settings.get("peers", ())}
    lines += [f"{model}: {note}" for model, note in sorted(why)] + [f"{p}: {note}" for p, note in sorted(peers)]
    if plot_png:
        lines.append(f"chart: {plot_png}")
    return "\n".join(lines)


def tune_report(results: list[Any]) -> str:
    """``zoo bench --tune``: each candidate's images/s and setup time per batch size, the winner marked."""
    lines = []
    for r in results:
        rows = [[str(p["batch_size"]), spec, f"{c['images_per_s']:,.0f}", f"{c['setup_s']:.2f}",
                 "fastest" if spec == r.winners[p["batch_size"]] else ""]
                for p in r.points for spec, c in sorted(p["candidates"].items(), key=lambda kv: -kv[1]["images_per_s"])]
        lines += [f"{r.model} on {r.machine}, {r.threads} thread{'s' if r.threads != 1 else ''}:",
                  table(rows, ["batch", "candidate", "images/s", "setup s", "auto"], right={0, 2, 3}),
                  r.summary, *(f"NOTE: {n}" for n in r.notes), ""]
    return "\n".join(lines).rstrip()


def eval_report(r: Any, per_class: bool) -> str:
    """``zoo eval``: top-1, top-5, loss and speed, per class when asked, and the job's notes."""
    what = "embedded sample" if r.is_sample else f"{r.split} split"
    sha = f" (sha256 {r.weights_sha256[:12]}...)" if r.weights_sha256 else ""
    lines = [f"{r.model} on {r.dataset} {what}: {r.num_images:,} images (data: {r.data_verification})",
             f"weights: {r.weights_note}{sha}",
             f"top-1  {r.top1:6.2f}%  ({r.correct:,}/{r.num_images:,})",
             f"top-5  {r.top5:6.2f}%",
             f"loss   {r.loss:.4f} (NLL" + (f", temperature {r.temperature:.4g})" if r.temperature != 1 else ")"),
             f"ECE    {r.ece:.2f} (15 bins, points of top-1), Brier {r.brier:.4f}",
             f"speed  {r.images_per_s:,.0f} images/s, {r.wall_s:.2f} s, batch {r.batch_size}, {r.device}, "
             f"{r.backend}" + (f" ({r.setting})" if r.setting != r.backend else "")]
    if per_class:
        rows = [[c["class"], f"{c['images']:,}", f"{c['accuracy']:.2f}%"] for c in r.per_class]
        lines.append(table(rows, ["class", "images", "top-1"], right={1, 2}))
    return "\n".join([*lines, *(f"NOTE: {note}" for note in r.notes)])


def calibration_report(r: Any) -> str:
    """``zoo calibrate``: the fitted temperature and the test split's calibration before and after it."""
    rows = [[label, f"{m['ece']:.2f}", f"{m['nll']:.4f}", f"{m['brier']:.4f}"]
            for label, m in (("T = 1", r.before), (f"T = {r.temperature:.4f}", r.after))]
    lines = [f"{r.weights or r.model}: temperature {r.temperature:.4f}, fitted on the last {r.holdout_images:,} "
             f"training images; test split ({r.test_images:,} images, top-1 {r.top1:.2f}%):",
             table(rows, ["", "ECE", "NLL", "Brier"], right={1, 2, 3}),
             f"ECE: {r.ece_definition}"]
    if r.weights:
        lines.append(f"card field: temperature={r.temperature:.4f}")
    return "\n".join([*lines, *(f"NOTE: {note}" for note in r.notes)])


def robustness_report(r: Any) -> str:
    """``zoo eval --corruptions``: top-1 per corruption (rows) and severity (columns), means, and the notes."""
    levels = sorted({p["severity"] for p in r.points})
    top1 = {(p["corruption"], p["severity"]): p["top1"] for p in r.points}
    rows = [[name, *(f"{top1[name, s]:.1f}" for s in levels), f"{mean:.2f}"] for name, mean in r.per_corruption.items()]
    rows.append(["mean", *(f"{r.per_severity[str(s)]:.1f}" for s in levels), f"{r.mean_corruption_accuracy:.2f}"])
    cached = f", {r.cached_points} of {len(r.points)} from the cache" if r.cached_points else ""
    lines = [f"{r.weights or r.model} on {r.dataset} test, corrupted: {r.images_per_point:,} images per point, "
             f"seed {r.seed}; clean top-1 on the same images {r.clean_top1:.2f}%",
             table(rows, ["corruption", *(f"s{s}" for s in levels), "mean"], right=set(range(1, len(levels) + 2))),
             "families: " + ", ".join(f"{f} {v:.2f}" for f, v in r.per_family.items()),
             f"mean corruption accuracy {r.mean_corruption_accuracy:.2f}% (clean {r.clean_top1:.2f}%); "
             f"{r.wall_s:.1f} s ({r.generation_s:.1f} s generating{cached}), {r.backend}"
             + (f" ({r.setting})" if r.setting != r.backend else "")]
    return "\n".join([*lines, *(f"NOTE: {note}" for note in r.notes)])


def predictions(results: list[Any]) -> str:
    """``zoo predict``: one line per image, its top-k classes and probabilities."""
    return "\n".join(f"{r.source}: " + ", ".join(f"{t['class']} {100 * t['prob']:.1f}%" for t in r.top)
                     for r in results)


def int8_report(q: Any) -> str:
    """The int8 file ``zoo export --int8`` wrote: its accuracy, speed and size against fp32."""
    where = "embedded sample" if q.is_sample else "test split"
    return "\n".join([
        f"int8: {q.int8_path} ({q.method}), {q.eval_images:,} images of the {where}:",
        f"  top-1 {q.fp32_top1:.2f}% -> {q.int8_top1:.2f}% ({q.int8_top1 - q.fp32_top1:+.2f} points, "
        f"{q.disagreeing_images} images change prediction)",
        f"  speed {q.fp32_images_per_s:,.0f} -> {q.int8_images_per_s:,.0f} images/s ({q.speedup:.2f}x), "
        f"size {q.fp32_bytes / 1e6:.2f} -> {q.int8_bytes / 1e6:.2f} MB"])


def export_report(r: Any) -> str:
    """``zoo export``: the file written, its parity with eager, the int8 report, the job's notes."""
    rows = [[p.inputs, str(p.batch_size), f"{p.max_abs_diff:.2e}", "yes" if p.argmax_identical else "NO"]
            for p in r.parity]
    lines = [f"{r.model} -> {r.path} ({r.format}, exporter: {r.exporter}, weights: {r.weights or 'random'})",
             table(rows, ["inputs", "batch", "max |diff| vs eager", "same argmax"], right={1, 2}),
             f"parity: {'OK' if r.ok else 'FAILED'} (tolerance {r.tolerance:g})"]
    if r.int8 is not None:
        lines.append(int8_report(r.int8))
    return "\n".join([*lines, *(f"NOTE: {note}" for note in r.notes)])


# training

def train_summary(r: Any, recipe: Any, out_dir: str, max_minutes: float | None) -> str:
    """``zoo train``: how a run ended, or how to continue a stopped one ("" for a distributed run's other
    processes, which have no checkpoint to report)."""
    from ..train.runs import format_duration

    if not r.finished:
        return (f"{recipe.model}: stopped after epoch {len(r.history)} of {recipe.epochs} (--max-minutes "
                f"{max_minutes:g}; about {format_duration(r.remaining_s)} left at this pace); state saved in "
                f"{out_dir}: continue with --resume --out {out_dir}")
    if not r.checkpoint:  # not the main process of a distributed run
        return ""
    last, m = r.history[-1], r.metrics
    return "\n".join([
        f"{recipe.model} trained with {recipe.name}: {len(r.history)} epochs, {r.train_time_s:,.0f} s ({r.hardware})",
        f"last epoch: train top-1 {last['train_top1']:.2f}%, {last['train_images_per_s']:,.0f} images/s",
        f"checkpoint: {r.checkpoint} (sha256 {r.sha256})",
        f"stored file on the full test split: top-1 {m['top1']:.2f}% ({m['correct']:,}/{m['num_images']:,}), "
        f"top-5 {m['top5']:.2f}%, loss {m['loss']:.4f}"])


def status_report(s: Any) -> str:
    """``zoo status``: where one run stands, its scores so far and how to continue it."""
    from ..train.runs import format_duration

    what = {"running": f"running, {s.epochs_done} of {s.epochs} epochs done",
            "stopped": f"stopped after epoch {s.epochs_done} of {s.epochs}",
            "finished": f"finished, {s.epochs_done} epochs"}[s.state]
    spent = f"{format_duration(s.train_s + s.eval_s)} of training" + (" and evaluation" if s.eval_s else "")
    left = (f", about {format_duration(s.remaining_s)} left at this pace"
            if s.remaining_s is not None and s.state != "finished" else "")
    lines = [f"{s.path}: {what} (recipe {s.recipe}: {s.model} on {s.dataset})",
             f"  time: {spent}{left}" + (f" ({s.hardware})" if s.hardware else "")]
    if s.last_test_top1 is not None:
        lines.append(f"  test top-1: {s.last_test_top1:.2f}% after epoch {s.last_test_epoch} (best "
                     f"{s.best_test_top1:.2f}% after epoch {s.best_test_epoch})")
    if s.final_top1 is not None:
        lines.append(f"  checkpoint: {s.checkpoint}: top-1 {s.final_top1:.2f}% on the full test split")
    if s.resume_command:
        lines.append(f"  continue: {s.resume_command} [--max-minutes N]")
    return "\n".join(lines)


def recipe_card(r: Any) -> str:
    """``zoo recipes NAME``: one recipe resolved, a setting a line."""
    return "\n".join(f"{k:16s} {v}" for k, v in r.to_dict().items())


def recipes_table(recipes: list[Any]) -> str:
    """``zoo recipes``: the named recipes."""
    rows = [[r.name, r.model or "-", r.dataset, str(r.epochs), r.description] for r in recipes]
    return table(rows, ["recipe", "model", "dataset", "epochs", "description"], right={3})


def estimates_table(rows: list[Any]) -> str:
    """``zoo recipes --estimate``: each recipe's expected time on this machine."""
    from ..train.runs import format_duration

    if not rows:
        return "no recipe to time (a recipe that names no model takes --model: `zoo train --estimate`)"
    body = [[e.recipe, e.model, e.precision, f"{e.train_images_per_s:,.0f}", format_duration(e.epoch_s),
             str(e.epochs), format_duration(e.total_s)] for e in rows]
    return "\n".join([table(body, ["recipe", "model", "precision", "images/s", "epoch", "epochs", "total"],
                             right={3, 4, 5, 6}),
                      f"on {rows[0].hardware.rsplit(', ', 1)[0]}; about a second of training steps timed per recipe, "
                      f"evaluations included in the total; nothing was written"])


# studies

def view_report(r: Any) -> str:
    """``zoo viz``: the layer drawn, its statistics, the notes and the figure written."""
    return "\n".join([
        f"{r.model}: {r.weights_note}",
        f"{r.layer_type} '{r.layer}', shape {_shape(r.shape)}: min {r.stats['min']:.4g}, "
        f"max {r.stats['max']:.4g}, mean {r.stats['mean']:.4g}, std {r.stats['std']:.4g}",
        *(f"NOTE: {note}" for note in r.notes),
        f"figure: {', '.join(r.paths)}"])


def landscape_report(r: Any) -> str:
    """``zoo analyze landscape``: per model, the loss band, gradient change, beta and final losses."""
    rows = [[m, f"{s['all_steps']['loss_band_mean']:.4f}", f"{s['all_steps']['grad_change_mean_of_max']:.4g}",
             f"{s['all_steps']['beta_max']:.4g}", ", ".join(f"{lr}: {v:.3f}" for lr, v in s["final_loss"].items())]
            for m, s in r.summary.items()]
    lines = [table(rows, ["model", "loss band", "grad change", "beta max", "final loss per lr"], right={1, 2, 3}),
             f"{len(r.runs)} runs in {r.wall_s:,.0f} s ({r.hardware})"]
    if r.bn_effect:
        lines.append(r.bn_effect["verdict"])
    return "\n".join([*lines, f"written: {', '.join(r.paths)}"])


def transfer_report(r: dict[str, Any]) -> str:
    """``zoo analyze transfer``: each run's final scores, and whether report 003's claims hold."""
    rows = [[name, f"{f['test_top1']:.2f}", f"{f['best_test_loss']:.4f}",
             ", ".join(f"{lv}%: {s if s is not None else '-'}" for lv, s in f["steps_to"].items())]
            for name, f in r["final"].items()]
    return "\n".join([
        table(rows, ["run", "final top-1", "best test loss", "steps to reach"], right={1, 2}),
        *(f"report 003: transfer {claim}: {'agrees' if agrees else 'does not agree'}"
          for claim, agrees in r["agrees_with_report_003"].items()),
        f"written: {', '.join(r['paths'])}"])


def estimate_report(e: Any) -> str:
    """``zoo train --estimate``: the recipe's expected time on this machine, and what it was measured from."""
    from ..train.runs import format_duration

    passes = f"{e.evaluations} test pass{'es' if e.evaluations != 1 else ''}"
    lines = [f"{e.recipe} ({e.model}) on {e.hardware}: {e.train_images_per_s:,.0f} training "
             f"images/s (batch {e.batch_size}, {e.steps} steps timed)",
             f"  one epoch: {format_duration(e.epoch_s)} ({e.steps_per_epoch:,} steps)"]
    if e.low_res_epochs:
        lines.append(f"  one of the first {e.low_res_epochs} epochs, at the recipe's low resolution: "
                     f"{format_duration(e.low_res_epoch_s)}")
    lines += [f"  {e.epochs} epochs and {passes} ({format_duration(e.eval_s)} each): about "
              f"{format_duration(e.total_s)}",
              f"  (measured in {e.measured_s:.1f} s; nothing was written)"]
    return "\n".join(lines)
