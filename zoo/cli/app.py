"""The ``zoo`` command line. It only assembles commands: each calls the public API and prints.

One error boundary (``_run``) turns every ``ZooError`` into a one-line message and exit code 1;
``--debug`` (or ``ZOO_DEBUG=1``) shows the full traceback instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

import zoo
from zoo.errors import one_line
from zoo.utils.fileio import strict_json

__all__ = ["main", "eval_main", "cli"]


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(strict_json(data), indent=2, default=str, allow_nan=False))


def _table(rows: list[list[str]], headers: list[str], right: set[int] = frozenset()) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def fmt(row: list[str]) -> str:
        return "  ".join(str(v).rjust(w) if i in right else str(v).ljust(w) for i, (v, w) in
                         enumerate(zip(row, widths))).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
threads_option = click.option("--threads", type=click.IntRange(min=1, max=1024),
                              help="CPU threads for torch (default: torch's choice).")


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


class _Path(click.Path):
    """click.Path that also refuses names no file system accepts (NUL bytes), before any work."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and "\x00" in value:
            self.fail("a path cannot contain a NUL byte", param, ctx)
        return super().convert(value, param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(zoo.__version__, prog_name="zoo")
@click.option("--debug", is_flag=True, envvar="ZOO_DEBUG", help="Show full tracebacks and debug logs.")
@click.option("-v", "--verbose", is_flag=True, help="Show info logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """zoo: verified image classifiers for MNIST-style and CIFAR-style data."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    _setup_logging(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)


def _setup_logging(level: int) -> None:
    """One logging setup for ``zoo`` and ``zoo-eval``: warnings always reach stderr."""
    root = logging.getLogger()
    if root.handlers:  # an embedding program (or pytest) has configured logging: only the level changes
        root.setLevel(level)
    else:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _log_level_option(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _setup_logging(logging.DEBUG if param.name == "debug" else logging.INFO)


# zoo-eval runs the eval command without the group, so it takes the group's logging flags itself.
debug_option = click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_log_level_option,
                            help="Show full tracebacks and debug logs.")
verbose_option = click.option("-v", "--verbose", is_flag=True, expose_value=False, is_eager=True,
                              callback=_log_level_option, help="Show info logs.")


@cli.command("list")
@click.argument("pattern", default="*")
@click.option("--dataset", help="Only models whose default dataset this is.")
@click.option("--pretrained", is_flag=True, help="Only models with released weights.")
@json_option
def list_cmd(pattern: str, dataset: str | None, pretrained: bool, as_json: bool) -> None:
    """List registered models matching PATTERN (fnmatch wildcards, e.g. 'resnet*'); --pretrained: their checkpoints."""
    from ..registry import get_entry

    models = [get_entry(n).summary() for n in zoo.list_models(pattern, dataset=dataset, pretrained=pretrained)]
    if as_json:
        _emit_json(models)
        return
    if not models:
        click.echo(f"no {'pretrained ' if pretrained else ''}model matches {pattern!r}")
        return
    if pretrained:  # one row per released checkpoint: the numbers users choose by
        rows = [[w["name"], w["dataset"], f"{w['top1']:.2f}", "-" if w["top5"] is None else f"{w['top5']:.2f}",
                 f"{m['params']:,}", f"{m['gflops']:.4f}", f"{w['file_size'] / 1e6:.1f} MB"]
                for m in models for w in m["weights"]]
        click.echo(_table(rows, ["weights", "dataset", "top-1", "top-5", "params", "GFLOPs", "size"],
                          right={2, 3, 4, 5, 6}))
        click.echo(f"\n{len(rows)} checkpoints; top-1/top-5 (%) measured from the stored file on the full test split.")
        return
    rows = [[m["name"], f"{m['params']:,}", f"{m['gflops']:.4f}", m["dataset"],
             "-" if m["top1"] is None else f"{m['top1']:.2f}", m["source"]] for m in models]
    click.echo(_table(rows, ["name", "params", "GFLOPs", "dataset", "top-1", "source"], right={1, 2, 4}))
    sizes = "/".join("x".join(map(str, s)) for s in sorted({tuple(m["input_size"]) for m in models}))
    click.echo(f"\n{len(models)} models. GFLOPs: one {sizes} input, FLOPs = 2 x MACs; top-1: the default "
               f"checkpoint's (`zoo list --pretrained` for all; `zoo info NAME` for a card).")


@cli.command("info")
@click.argument("name")
@json_option
def info_cmd(name: str, as_json: bool) -> None:
    """Show the model card of NAME, or the checkpoint card of NAME=arch.tag (e.g. resnet20.cifar10)."""
    if "." in name:
        _weights_card(zoo.get_weights(name), as_json)
        return
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
    for p in sorted(info.public, key=lambda p: -p.top1):
        lines.append(f"  published top-1 elsewhere: {p.top1:.2f}% ({p.source}, {p.url})")
    lines.append(f"  weights:       {', '.join(info.weights) or 'none released yet'}")
    click.echo("\n".join(lines))
    click.echo("\nlayers:")
    rows = [[r.name, r.type, "x".join(map(str, r.output_shape[1:])), f"{r.params:,}"] for r in layers]
    click.echo(_table(rows, ["layer", "type", "output", "params"], right={3}))


def _weights_card(w: Any, as_json: bool) -> None:
    from ..weights.load import where

    place, path = where(w)
    if as_json:
        _emit_json({**w.to_dict(), "where": place, "path": str(path) if path else None})
        return
    m = w.metrics
    top5 = "" if m.top5 is None else f", top-5 {m.top5:.2f}%"
    click.echo("\n".join([
        f"{w.name}  (weights of {w.arch}; zoo.create({w.arch!r}, weights={w.name!r}))",
        f"  scores:        top-1 {m.top1:.2f}%{top5}, loss {m.loss:.4f} on the {w.dataset} {m.split} split "
        f"({m.num_images:,} images), measured from the stored file",
        f"  input:         {'x'.join(map(str, w.input_size))}, mean {w.mean}, std {w.std}; {w.num_classes} classes",
        f"  model:         {w.num_params:,} parameters, {w.gflops:.4f} GFLOPs",
        f"  recipe:        {w.recipe} (`zoo recipes {w.recipe}`), {w.train_time_s / 60:.1f} min on {w.hardware}",
        f"  file:          {w.file_name} ({w.dtype}, {w.file_size / 1e6:.1f} MB), sha256 {w.sha256}",
        f"  where:         {place}{f' ({path})' if path else ''}; licence {w.licence}",
    ]))


def _csv(cast: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, str | None], tuple[Any, ...] | None]:
    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[Any, ...] | None:
        if value is None:
            return None
        try:
            return tuple(cast(v.strip()) for v in value.split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"expected a comma-separated list, got {value!r}") from None

    return parse


@cli.command("bench")
@click.option("--model", "-m", "models", required=True, callback=_csv(str),
              help="Models, comma-separated (registered names or timm/<name>).")
@click.option("--device", "devices", default="cpu", show_default=True, callback=_csv(str),
              help="Devices, comma-separated: cpu, cuda (rows say 'no CUDA device' without one).")
@click.option("--backend", "backends", default="eager,auto,onnxruntime,openvino,openvino-bf16", show_default=True,
              callback=_csv(str),
              help="Backends, comma-separated: auto, eager, fold-bn, channels-last, bf16, bf16-cast, compile, "
              "cuda-graph, onnxruntime, onnxruntime-int8, pt2, torchscript, openvino, openvino-bf16, openvino-int8, or "
              "modifiers joined by '+' (fold-bn+channels-last+bf16-cast). int8 calibrates on training images.")
@click.option("--batch-size", "-b", "batch_sizes", default="1,32,256", show_default=True, callback=_csv(int),
              help="Batch sizes, comma-separated.")
@click.option("--threads", callback=_csv(int), help="CPU thread counts, comma-separated [default: torch's].")
@click.option("--min-time", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds of timed calls for the slowest setting of each batch (at least 5 calls).")
@click.option("--refresh-peak", is_flag=True, help="Measure the matmul peak again instead of using the cached one.")
@click.option("--plot", "plot_png", type=_Path(dir_okay=False), help="Write a bar chart of images/s (PNG).")
@json_option
def bench_cmd(models: tuple[str, ...], devices: tuple[str, ...], backends: tuple[str, ...],
              batch_sizes: tuple[int, ...], threads: tuple[int, ...] | None, min_time: float, refresh_peak: bool,
              plot_png: str | None, as_json: bool) -> None:
    """Inference latency and throughput per model, device, backend and batch size, vs eager fp32 and the peak.

    By default zoo's `auto` runs beside eager and the runtimes a deployment would pick instead
    (onnxruntime, OpenVINO fp32 and bf16); add timm's network with `-m resnet18,timm/resnet18`.
    """
    from ..benchmark import bench

    r = bench(models, devices=devices, backends=backends, batch_sizes=batch_sizes, threads=threads,
              min_time_s=min_time, refresh_peak=refresh_peak)
    if plot_png:
        from ..utils.plots import plot_throughput

        plot_throughput([row.to_dict() for row in r.rows], plot_png, title=f"zoo bench on {r.machine['cpu']}")
    if as_json:
        _emit_json(r.to_dict())
        return

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    rows = [[x.model, x.device, x.backend if x.backend == x.setting else f"{x.backend}: {x.setting}",
             str(x.batch_size), num(x.threads, "d"), num(x.median_ms, ".2f"), num(x.p90_ms, ".2f"),
             num(x.images_per_s, ",.0f"), num(x.gflop_per_s, ".1f"),
             num(None if x.peak_share is None else 100 * x.peak_share, ".0f"), num(x.peak_memory_mb, ".1f"),
             num(x.speedup_vs_eager, ".2f"), num(x.cuda_speedup, ".2f"), x.status] for x in r.rows]
    click.echo(_table(rows, ["model", "device", "backend", "batch", "threads", "median ms", "p90 ms", "images/s",
                             "GFLOP/s", "% peak", "mem MB", "x eager", "cuda/cpu", "status"],
                      right=set(range(3, 13))))
    peaks = "; ".join(f"{k}: fp32 {p['fp32']:g}, bf16 {p['bf16'] or '-'} GFLOP/s" for k, p in r.peaks.items())
    load = ", ".join(f"{v:.2f}" for v in r.machine["loadavg"] or [])
    click.echo(f"\npeak (matmul probe, cached): {peaks or 'not measured'}; load average {load}; {r.wall_s:.0f} s")
    if plot_png:
        click.echo(f"chart: {plot_png}")


def _floats(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.replace(",", " ").split())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None


@cli.command("eval")
@click.option("--model", "-m", "model_name", required=True, help="Registered model name (see `zoo list`).")
@click.argument("dataset")
@click.option("--weights", "-w", help="Weight name (arch.tag), tag, or a checkpoint file (.safetensors/.pth/.th).")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N images.")
@click.option("--mean", callback=_floats, help="Normalisation mean, e.g. 0.4914,0.4822,0.4465.")
@click.option("--std", callback=_floats, help="Normalisation std, e.g. 0.247,0.2435,0.2616.")
@click.option("--data-dir", type=_Path(file_okay=False), help="Dataset root (default: $ZOO_DATA, else the cache).")
@click.option("--download", is_flag=True, help="Download the dataset with torchvision if it is missing.")
@click.option("--no-verify", is_flag=True, help="Load a dataset copy that fails verification (with a warning).")
@click.option("--no-sample", is_flag=True, help="Fail instead of falling back to the embedded sample.")
@click.option("--confusion", "confusion_png", type=_Path(dir_okay=False), help="Write the confusion matrix PNG.")
@click.option("--per-class", is_flag=True, help="Print per-class accuracy.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.option("--backend", default="auto", show_default=True,
              help="auto: the setting measured fastest for this CPU class (zoo/auto.json; often bf16); eager: "
                   "fp32 as built, exact recorded accuracies; onnxruntime|pt2|torchscript|openvino|openvino-bf16|"
                   "onnxruntime-int8|openvino-int8: an exported artefact (int8: calibrated on training images), "
                   "with parity against eager; or zoo.runners modifiers such as fold-bn+channels-last.")
@click.option("--artefact", type=_Path(exists=True, dir_okay=False),
              help="An exported file to evaluate (with --backend auto, its runtime comes from the suffix); "
                   "default: export the same weights now.")
@click.option("--trust-artefact", is_flag=True,
              help="Run a pt2 or TorchScript --artefact: those formats are code by nature (loading one can run "
                   "its code), so zoo refuses them unless you trust the file. ONNX and OpenVINO need no trust.")
@debug_option
@verbose_option
@threads_option
@json_option
def eval_cmd(model_name: str, dataset: str, weights: str | None, split: str, batch_size: int, device: str,
             limit: int | None, mean: tuple[float, ...] | None, std: tuple[float, ...] | None, data_dir: str | None,
             download: bool, no_verify: bool, no_sample: bool, confusion_png: str | None, per_class: bool,
             progress: bool, backend: str, artefact: str | None, trust_artefact: bool, threads: int | None,
             as_json: bool) -> None:
    """Evaluate a model on DATASET (cifar10, cifar100, mnist, fashion_mnist, or an image folder DIR/<class>/...):
    top-1, top-5, loss, per class."""
    from ..evaluate import evaluate_model

    _set_threads(threads)

    r = evaluate_model(model_name, dataset, weights=weights, split=split, data_dir=data_dir, download=download,
                       verify=not no_verify, batch_size=batch_size, device=device, limit=limit, mean=mean,
                       std=std, allow_sample=not no_sample, progress=progress and not as_json, backend=backend,
                       artefact=artefact, trust_artefact=trust_artefact)
    if as_json:
        _emit_json(r.to_dict())
        _write_confusion(r, confusion_png)
        return
    what = "embedded sample" if r.is_sample else f"{r.split} split"
    click.echo(f"{r.model} on {r.dataset} {what}: {r.num_images:,} images (data: {r.data_verification})")
    sha = f" (sha256 {r.weights_sha256[:12]}...)" if r.weights_sha256 else ""
    click.echo(f"weights: {r.weights_note}{sha}")
    click.echo(f"top-1  {r.top1:6.2f}%  ({r.correct:,}/{r.num_images:,})")
    click.echo(f"top-5  {r.top5:6.2f}%")
    click.echo(f"loss   {r.loss:.4f}")
    click.echo(f"speed  {r.images_per_s:,.0f} images/s, {r.wall_s:.2f} s, batch {r.batch_size}, {r.device}, "
               f"{r.backend}" + (f" ({r.setting})" if r.setting != r.backend else ""))
    if per_class:
        rows = [[c["class"], f"{c['images']:,}", f"{c['accuracy']:.2f}%"] for c in r.per_class]
        click.echo(_table(rows, ["class", "images", "top-1"], right={1, 2}))
    for note in r.notes:
        click.echo(f"NOTE: {note}")
    if _write_confusion(r, confusion_png):
        click.echo(f"confusion matrix: {confusion_png}")


def _write_confusion(r: Any, path: str | None) -> bool:
    """Written after the results are out, so a bad path never throws a finished evaluation away."""
    if not path:
        return False
    from ..utils.plots import plot_confusion

    plot_confusion(r.confusion, r.classes, path,
                   title=f"{r.model} on {r.dataset} {r.split} ({r.num_images:,} images), top-1 {r.top1:.2f}%")
    return True


@cli.command("predict")
@click.option("--model", "-m", "model_name", required=True, help="Registered model name (see `zoo list`).")
@click.argument("images", nargs=-1, required=True)
@click.option("--weights", "-w", default="default", show_default=True,
              help="Weight name (arch.tag), tag, or a checkpoint file.")
@click.option("--topk", "-k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--backend", default="auto", show_default=True,
              help="auto: the setting measured fastest for this many images (zoo.runners); eager: fp32 as built.")
@threads_option
@json_option
def predict_cmd(model_name: str, images: tuple[str, ...], weights: str, topk: int, batch_size: int, device: str,
                backend: str,
                threads: int | None, as_json: bool) -> None:
    """Classify IMAGES (files or folders) with MODEL's checkpoint: top-k classes and probabilities."""
    from ..predict import predict

    _set_threads(threads)
    results = predict(model_name, list(images), weights=weights, topk=topk, batch_size=batch_size, device=device,
                      backend=backend)
    if as_json:
        _emit_json([r.to_dict() for r in results])
        return
    for r in results:
        click.echo(f"{r.source}: " + ", ".join(f"{t['class']} {100 * t['prob']:.1f}%" for t in r.top))


@cli.command("export")
@click.option("--model", "-m", "model_name", required=True)
@click.option("--weights", "-w", help="Weight name, tag or file (default: the model's default checkpoint).")
@click.option("--format", "fmt", type=click.Choice(["onnx", "pt2", "torchscript", "openvino"]), default="onnx",
              show_default=True)
@click.option("--opset", type=int, help="ONNX opset (default: the exporter's).")
@click.option("--batch", default="dynamic", show_default=True, help="'dynamic' or a fixed batch size.")
@click.option("--out", type=_Path(dir_okay=False), help="Output file (default: <model>.<ext>).")
@click.option("--int8", "int8", is_flag=True, help="Also write a static int8 file (ONNX: onnxruntime's quantizer; "
              "OpenVINO: NNCF), calibrated on training images, and measure its accuracy and speed against fp32.")
@click.option("--calibration", type=click.IntRange(min=1), default=300, show_default=True,
              help="Training images used to calibrate --int8.")
@click.option("--data-dir", type=_Path(file_okay=False), help="Dataset root for the parity check and --int8.")
@threads_option
@json_option
def export_cmd(model_name: str, weights: str | None, fmt: str, opset: int | None, batch: str, out: str | None,
               int8: bool, calibration: int, data_dir: str | None, threads: int | None, as_json: bool) -> None:
    """Export a model to ONNX, torch.export (.pt2), TorchScript or OpenVINO IR and check parity with eager."""
    from ..deploy import export_model

    _set_threads(threads)
    if batch != "dynamic" and not batch.isdigit():
        raise click.BadParameter(f"expected 'dynamic' or a positive integer, got {batch!r}", param_hint="--batch")
    if int8 and fmt not in ("onnx", "openvino"):
        raise click.BadParameter("--int8 applies to --format onnx and --format openvino", param_hint="--int8")
    r = export_model(model_name, fmt, weights=weights, out=out, opset=opset,
                     batch=batch if batch == "dynamic" else int(batch), data_dir=data_dir, int8=int8,
                     calibration=calibration, threads=threads)
    q = r.int8
    if as_json:
        _emit_json(r.to_dict())
        return
    click.echo(f"{r.model} -> {r.path} ({r.format}, exporter: {r.exporter}, weights: {r.weights or 'random'})")
    rows = [[p.inputs, str(p.batch_size), f"{p.max_abs_diff:.2e}", "yes" if p.argmax_identical else "NO"]
            for p in r.parity]
    click.echo(_table(rows, ["inputs", "batch", "max |diff| vs eager", "same argmax"], right={1, 2}))
    click.echo(f"parity: {'OK' if r.ok else 'FAILED'} (tolerance {r.tolerance:g})")
    if q is not None:
        where = "embedded sample" if q.is_sample else "test split"
        click.echo(f"int8: {q.int8_path} ({q.method}), {q.eval_images:,} images of the {where}:")
        click.echo(f"  top-1 {q.fp32_top1:.2f}% -> {q.int8_top1:.2f}% ({q.int8_top1 - q.fp32_top1:+.2f} points, "
                   f"{q.disagreeing_images} images change prediction)")
        click.echo(f"  speed {q.fp32_images_per_s:,.0f} -> {q.int8_images_per_s:,.0f} images/s ({q.speedup:.2f}x), "
                   f"size {q.fp32_bytes / 1e6:.2f} -> {q.int8_bytes / 1e6:.2f} MB")
    for note in r.notes:
        click.echo(f"NOTE: {note}")


@cli.command("train")
@click.option("--model", "-m", "model_name", help="Model to train (default: the recipe's).")
@click.option("--recipe", "-r", "recipe_name", required=True, help="Named recipe (see `zoo recipes`).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe setting (repeatable).")
@click.option("--dataset", help="Dataset name, or an image folder (DIR/train/<class>/..., DIR/test/<class>/...) "
              "[default: the recipe's].")
@click.option("--init-from", help="Start from this checkpoint (weights name or file); a classifier of another size "
              "starts fresh. Recorded in the recipe.")
@click.option("--freeze", help="Layers not to train: module-name patterns ('conv1,bn1,layer1,layer2') or "
              "'all-but-last:N'. Frozen norm layers stay in eval mode. Recorded in the recipe and layers.json.")
@click.option("--out", "out_dir", type=_Path(file_okay=False), help="Run directory (default: runs/<model>-<recipe>).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last epoch.")
@click.option("--tag", help="Checkpoint tag: the file is <model>.<tag>-<sha8>.safetensors (default: the dataset).")
@click.option("--save-dtype", type=click.Choice(["float32", "float16"]), help="Storage dtype of the final weights.")
@click.option("--data-dir", type=_Path(file_okay=False), help="Dataset root (default: $ZOO_DATA, else the cache).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--max-minutes", type=float, help="Time budget: stop (state saved, resumable) before an epoch "
              "that would end past it.")
@threads_option
@click.option("--progress/--no-progress", default=True, show_default=True)
@json_option
def train_cmd(model_name: str | None, recipe_name: str, overrides: tuple[str, ...], dataset: str | None,
              init_from: str | None, freeze: str | None, out_dir: str | None, resume: bool, tag: str | None,
              save_dtype: str | None, data_dir: str | None, device: str, max_minutes: float | None, threads: int | None,
              progress: bool, as_json: bool) -> None:
    """Train a model with a recipe; checkpoints every epoch, evaluates the saved file at the end."""
    from ..train.loop import train
    from ..train.recipes import parse_overrides, resolve_recipe
    from ..train.runs import format_duration

    changes = parse_overrides(overrides)
    changes.update({k: v for k, v in (("dataset", dataset), ("init_from", init_from), ("freeze", freeze))
                    if v is not None})
    recipe = resolve_recipe(recipe_name, changes, model=model_name)
    out_dir = out_dir or os.path.join("runs", f"{recipe.model}-{recipe.name}")
    r = train(recipe, out_dir=out_dir, data_dir=data_dir, resume=resume, device=device, tag=tag,
              progress=progress and not as_json, save_dtype=save_dtype, max_minutes=max_minutes, threads=threads)
    if as_json and (r.checkpoint or not r.finished):
        _emit_json(r.to_dict())
        return
    if not r.finished:
        click.echo(f"{recipe.model}: stopped after epoch {len(r.history)} of {recipe.epochs} (--max-minutes "
                   f"{max_minutes:g}; about {format_duration(r.remaining_s)} left at this pace); state saved in "
                   f"{out_dir}: continue with --resume --out {out_dir}")
        return
    if not r.checkpoint:  # not the main process of a distributed run
        return
    last = r.history[-1]
    click.echo(f"{recipe.model} trained with {recipe.name}: {len(r.history)} epochs, {r.train_time_s:,.0f} s "
               f"({r.hardware})")
    click.echo(f"last epoch: train top-1 {last['train_top1']:.2f}%, {last['train_images_per_s']:,.0f} images/s")
    click.echo(f"checkpoint: {r.checkpoint} (sha256 {r.sha256})")
    click.echo(f"stored file on the full test split: top-1 {r.metrics['top1']:.2f}% "
               f"({r.metrics['correct']:,}/{r.metrics['num_images']:,}), top-5 {r.metrics['top5']:.2f}%, "
               f"loss {r.metrics['loss']:.4f}")


@cli.command("status")
@click.argument("run_dirs", nargs=-1, type=_Path(exists=True, file_okay=False))
@json_option
def status_cmd(run_dirs: tuple[str, ...], as_json: bool) -> None:
    """Where training runs stand: epochs, test top-1 so far, time spent and left, how to continue.

    RUN_DIRS default to the runs under ./runs (zoo train's default --out). Reads each run directory's JSON
    files and lock only (never its state.pt), so it is safe while the run trains.
    """
    from ..train.runs import find_runs, format_duration, run_status

    statuses = [run_status(d) for d in (run_dirs or find_runs("runs"))]
    if as_json:
        _emit_json([s.to_dict() for s in statuses])
        return
    for s in statuses:
        what = {"running": f"running, {s.epochs_done} of {s.epochs} epochs done",
                "stopped": f"stopped after epoch {s.epochs_done} of {s.epochs}",
                "finished": f"finished, {s.epochs_done} epochs"}[s.state]
        click.echo(f"{s.path}: {what} (recipe {s.recipe}: {s.model} on {s.dataset})")
        spent = f"{format_duration(s.train_s + s.eval_s)} of training" + (" and evaluation" if s.eval_s else "")
        left = (f", about {format_duration(s.remaining_s)} left at this pace"
                if s.remaining_s is not None and s.state != "finished" else "")
        click.echo(f"  time: {spent}{left}" + (f" ({s.hardware})" if s.hardware else ""))
        if s.last_test_top1 is not None:
            click.echo(f"  test top-1: {s.last_test_top1:.2f}% after epoch {s.last_test_epoch} (best "
                       f"{s.best_test_top1:.2f}% after epoch {s.best_test_epoch})")
        if s.final_top1 is not None:
            click.echo(f"  checkpoint: {s.checkpoint}: top-1 {s.final_top1:.2f}% on the full test split")
        if s.resume_command:
            click.echo(f"  continue: {s.resume_command} [--max-minutes N]")


@cli.command("recipes")
@click.argument("name", required=False)
@json_option
def recipes_cmd(name: str | None, as_json: bool) -> None:
    """List the named recipes, or show one resolved."""
    from ..train.recipes import get_recipe, list_recipes

    if name:
        r = get_recipe(name)
        if as_json:
            _emit_json(r.to_dict())
        else:
            click.echo("\n".join(f"{k:16s} {v}" for k, v in r.to_dict().items()))
        return
    recipes = [get_recipe(n) for n in list_recipes()]
    if as_json:
        _emit_json([r.to_dict() for r in recipes])
        return
    rows = [[r.name, r.model or "-", r.dataset, str(r.epochs), r.description] for r in recipes]
    click.echo(_table(rows, ["recipe", "model", "dataset", "epochs", "description"], right={3}))


@cli.group("viz")
def viz_group() -> None:
    """Look inside a model: a layer's filters, the feature maps of one image (report 003, Figures 8-13)."""


_layer_option = click.option("--layer", help="Module name (see `zoo info MODEL`), or 'first' / 'last' conv "
                             "[default: first].")
_viz_weights_option = click.option("--weights", "-w", help="Weight name, tag or file (default: the model's "
                                   "released checkpoint, else random weights).")


def _echo_view(r: Any, as_json: bool) -> None:
    if as_json:
        _emit_json(r.to_dict())
        return
    click.echo(f"{r.model}: {r.weights_note}")
    click.echo(f"{r.layer_type} '{r.layer}', shape {'x'.join(map(str, r.shape))}: min {r.stats['min']:.4g}, "
               f"max {r.stats['max']:.4g}, mean {r.stats['mean']:.4g}, std {r.stats['std']:.4g}")
    for note in r.notes:
        click.echo(f"NOTE: {note}")
    click.echo(f"figure: {', '.join(r.paths)}")


@viz_group.command("filters")
@click.option("--model", "-m", "model_name", required=True, help="Registered model name.")
@_viz_weights_option
@_layer_option
@click.option("--out", type=_Path(dir_okay=False), help="PNG to write [default: <model>-filters.png].")
@threads_option
@json_option
def viz_filters_cmd(model_name: str, weights: str | None, layer: str | None, out: str | None, threads: int | None,
                    as_json: bool) -> None:
    """Draw a conv layer's weights (an MLP's first layer as input-sized images), per RGB channel too."""
    from ..studies.viz import filters_figure

    _set_threads(threads)
    _echo_view(filters_figure(model_name, weights=weights, layer=layer, out=out), as_json)


@viz_group.command("activations")
@click.option("--model", "-m", "model_name", required=True, help="Registered model name.")
@click.option("--image", type=_Path(exists=True, dir_okay=False),
              help="Input image (resized to the model's input).")
@click.option("--sample", type=click.IntRange(min=0), help="Use image N of the embedded test sample instead.")
@_viz_weights_option
@_layer_option
@click.option("--out", type=_Path(dir_okay=False), help="PNG to write [default: <model>-activations.png].")
@threads_option
@json_option
def viz_activations_cmd(model_name: str, image: str | None, sample: int | None, weights: str | None,
                        layer: str | None, out: str | None, threads: int | None, as_json: bool) -> None:
    """Draw the feature maps a layer produces for one input image."""
    from ..studies.viz import activations_figure

    _set_threads(threads)
    _echo_view(activations_figure(model_name, image=image, sample=sample, weights=weights, layer=layer, out=out),
               as_json)


@cli.group("weights")
def weights_group() -> None:
    """Released checkpoints: where they are, fetch them for offline use, re-check them."""


def _released(names: tuple[str, ...], every: bool) -> list[Any]:
    from ..registry import select_weights

    if not every and not names:
        raise click.UsageError("name the weights (arch.tag, wildcards allowed) or pass --all")
    return zoo.list_weights() if every else select_weights(names)


@weights_group.command("list")
@click.argument("pattern", default="*")
@json_option
def weights_list_cmd(pattern: str, as_json: bool) -> None:
    """Released checkpoints matching PATTERN, their scores and where their file is."""
    from ..weights.load import where

    rows = []
    for w in zoo.list_weights(pattern):
        place, path = where(w)
        rows.append({"name": w.name, "dataset": w.dataset, "top1": w.metrics.top1, "top5": w.metrics.top5,
                     "num_params": w.num_params, "file_size": w.file_size, "dtype": w.dtype, "sha256": w.sha256,
                     "where": place, "path": str(path) if path else None})
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo(f"no released weights match {pattern!r}")
        return
    table = [[r["name"], r["dataset"], f"{r['top1']:.2f}", "-" if r["top5"] is None else f"{r['top5']:.2f}",
              f"{r['file_size'] / 1e6:.1f} MB", r["sha256"][:8], r["where"]] for r in rows]
    click.echo(_table(table, ["name", "dataset", "top-1", "top-5", "size", "sha256", "where"], right={2, 3, 4}))
    click.echo("\nwhere: weights_dir ($ZOO_WEIGHTS_DIR or the checkout's weights/), cache (by sha256), remote "
               "($ZOO_WEIGHTS_URL or the entry's url; fetched on first use), missing (no copy and no URL).")


@weights_group.command("download")
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every released checkpoint.")
@click.option("--to", "to", type=_Path(file_okay=False), help="Also copy the files here (an offline machine's "
              "$ZOO_WEIGHTS_DIR).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@json_option
def weights_download_cmd(names: tuple[str, ...], every: bool, to: str | None, progress: bool, as_json: bool) -> None:
    """Fetch and verify NAMES (arch.tag, wildcards allowed) into the cache, or --to a folder."""
    from ..weights.load import download

    done = [{"name": w.name, "path": str(download(w, to=to, progress=progress and not as_json))}
            for w in _released(names, every)]
    if as_json:
        _emit_json(done)
        return
    for row in done:
        click.echo(f"{row['name']}: {row['path']} (sha256 verified)")


@weights_group.command("verify")
@json_option
def weights_verify_cmd(as_json: bool) -> None:
    """Re-hash every released file in the weights folders and the cache; exit 1 if one is corrupt."""
    from ..weights.load import cache_dir, verify_files

    rows = verify_files()
    if as_json:
        _emit_json(rows)
    elif not rows:
        click.echo(f"no released files here (weights folders and cache {cache_dir()})")
    else:
        click.echo(_table([[r["name"] or "(not a released file)", "ok" if r["ok"] else "CORRUPT", r["path"]]
                           for r in rows], ["name", "sha256", "path"]))
    bad = [r["path"] for r in rows if not r["ok"]]
    if bad:
        raise zoo.CheckpointError(f"{len(bad)} file(s) do not match their sha256: {', '.join(bad)}; delete them "
                                  f"(a cached file is fetched again on next use)")


@weights_group.command("path")
@click.argument("name")
@click.option("--progress/--no-progress", default=True, show_default=True)
def weights_path_cmd(name: str, progress: bool) -> None:
    """Print the verified file of NAME (arch.tag), downloading it first if needed."""
    from ..weights.load import download

    click.echo(download(zoo.get_weights(name), progress=progress))


@cli.group("analyze")
def analyze_group() -> None:
    """Studies of how models train (report 002's BatchNorm study, report 003's transfer learning)."""


@analyze_group.command("landscape")
@click.option("--full", is_flag=True, help="The report's full recipe (25 epochs on all 50,000 images; GPU hours) "
              "instead of the short one (about 12 minutes on 2 CPU cores).")
@click.option("--models", help="Two models, without and with BatchNorm [default: vgga,vgga_bn].")
@click.option("--lrs", callback=_floats, help="Learning rates [default: 1e-3,2e-3,1e-4,5e-4].")
@click.option("--steps", type=click.IntRange(min=2), help="Training steps per run.")
@click.option("--batch-size", type=click.IntRange(min=2))
@click.option("--train-images", type=click.IntRange(min=0), help="Train on the first N images (0 = all).")
@click.option("--probe-every", type=click.IntRange(min=1), help="Measure the gradient change every N steps.")
@click.option("--seed", type=int)
@click.option("--out", "out_dir", type=_Path(file_okay=False),
              help="Folder for landscape.json and the figures [default: runs/landscape-<short|full>].")
@click.option("--from-json", "from_json", type=_Path(exists=True, dir_okay=False),
              help="Redraw the figures of a saved landscape.json; nothing is trained.")
@click.option("--data-dir", type=_Path(file_okay=False), help="Dataset root (default: $ZOO_DATA, else the cache).")
@click.option("--device", default="cpu", show_default=True)
@threads_option
@click.option("--progress/--no-progress", default=True, show_default=True)
@json_option
def analyze_landscape_cmd(full: bool, models: str | None, lrs: tuple[float, ...] | None, steps: int | None,
                          batch_size: int | None, train_images: int | None, probe_every: int | None,
                          seed: int | None, out_dir: str | None, from_json: str | None, data_dir: str | None,
                          device: str, threads: int | None, progress: bool, as_json: bool) -> None:
    """Loss landscape, gradient predictiveness and beta-smoothness with and without BatchNorm (report 002, 2.2-2.4)."""
    from ..studies.analyze import landscape_config, redraw_landscape, run_landscape

    if from_json:
        r = redraw_landscape(from_json, out_dir)
    else:
        preset = "full" if full else "short"
        config = landscape_config(preset, models=tuple(models.split(",")) if models else None, lrs=lrs, steps=steps,
                                  batch_size=batch_size, train_images=train_images, probe_every=probe_every,
                                  seed=seed)
        r = run_landscape(config, out_dir=out_dir or os.path.join("runs", f"landscape-{preset}"), data_dir=data_dir,
                          device=device, progress=progress and not as_json, threads=threads)
    if as_json:
        _emit_json({k: v for k, v in r.to_dict().items() if k != "runs"})
        return
    rows = [[m, f"{s['all_steps']['loss_band_mean']:.4f}", f"{s['all_steps']['grad_change_mean_of_max']:.4g}",
             f"{s['all_steps']['beta_max']:.4g}", ", ".join(f"{lr}: {v:.3f}" for lr, v in s["final_loss"].items())]
            for m, s in r.summary.items()]
    click.echo(_table(rows, ["model", "loss band", "grad change", "beta max", "final loss per lr"], right={1, 2, 3}))
    click.echo(f"{len(r.runs)} runs in {r.wall_s:,.0f} s ({r.hardware})")
    if r.bn_effect:
        click.echo(r.bn_effect["verdict"])
    click.echo(f"written: {', '.join(r.paths)}")


@analyze_group.command("transfer")
@click.option("--full", is_flag=True, help="The longer preset (15 source epochs, 2,500 target images, 1,000 steps) "
              "instead of the short one (minutes on 2 CPU cores; the README table records its wall time).")
@click.option("--model", help="Architecture with the timm classifier protocol [default: resnet20].")
@click.option("--freeze", help="Layers frozen in the transfer run [default: conv1,bn1,layer1,layer2].")
@click.option("--target-images", type=click.IntRange(min=10), help="Labelled target training images.")
@click.option("--steps", "target_steps", type=click.IntRange(min=1), help="Training steps of each target run.")
@click.option("--out", "out_dir", type=_Path(file_okay=False),
              help="Folder for transfer.json and transfer.png [default: runs/transfer-<short|full>].")
@click.option("--from-json", "from_json", type=_Path(exists=True, dir_okay=False),
              help="Redraw the figure of a saved transfer.json; nothing is trained.")
@click.option("--data-dir", type=_Path(file_okay=False), help="Dataset root (default: $ZOO_DATA, else the cache).")
@threads_option
@json_option
def analyze_transfer_cmd(full: bool, model: str | None, freeze: str | None, target_images: int | None,
                         target_steps: int | None, out_dir: str | None, from_json: str | None, data_dir: str | None,
                         threads: int | None, as_json: bool) -> None:
    """What transfer buys (report 003, section 3): fine-tuning a model pretrained on 5 CIFAR-10 classes, early
    layers frozen, on the other 5 with few labels, against training from scratch."""
    from ..studies.transfer import redraw_transfer, run_transfer, transfer_config

    if from_json:
        r = redraw_transfer(from_json, out_dir)
    else:
        preset = "full" if full else "short"
        config = transfer_config(preset, model=model, freeze=freeze, target_images=target_images,
                                 target_steps=target_steps)
        r = run_transfer(config, out_dir=out_dir or os.path.join("runs", f"transfer-{preset}"), data_dir=data_dir,
                         threads=threads)
    if as_json:
        _emit_json({k: v for k, v in r.items() if k != "runs"})
        return
    rows = [[name, f"{f['test_top1']:.2f}", f"{f['best_test_loss']:.4f}",
             ", ".join(f"{lv}%: {s if s is not None else '-'}" for lv, s in f["steps_to"].items())]
            for name, f in r["final"].items()]
    click.echo(_table(rows, ["run", "final top-1", "best test loss", "steps to reach"], right={1, 2}))
    for claim, agrees in r["agrees_with_report_003"].items():
        click.echo(f"report 003: transfer {claim}: {'agrees' if agrees else 'does not agree'}")
    click.echo(f"written: {', '.join(r['paths'])}")


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
    _setup_logging(logging.DEBUG if debug else logging.WARNING)
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
