"""``zoo bench``: inference latency and throughput per model, device, backend and batch size."""

from __future__ import annotations

import click

from ._options import Path, comma_list, json_option
from ._output import bench_report, emit_json, tune_report

__all__ = ["bench_cmd"]


@click.command("bench")
@click.option("--model", "-m", "models", required=True, callback=comma_list(str),
              help="Models, comma-separated (registered names or timm/<name>).")
@click.option("--device", "devices", default="cpu", show_default=True, callback=comma_list(str),
              help="Devices, comma-separated: cpu, cuda (rows say 'no CUDA device' without one).")
@click.option("--backend", "backends", default="eager,auto,onnxruntime,openvino,openvino-bf16", show_default=True,
              callback=comma_list(str),
              help="Backends, comma-separated: auto, eager, fold-bn, channels-last, bf16, bf16-cast, compile, "
              "cuda-graph, onnxruntime, onnxruntime-int8, pt2, torchscript, openvino, openvino-bf16, openvino-int8, or "
              "modifiers joined by '+' (fold-bn+channels-last+bf16-cast). int8 calibrates on training images. "
              "auto-int8: auto with the int8 runners, where the checkpoint's recorded int8 top-1 change is within "
              "0.3 points.")
@click.option("--batch-size", "-b", "batch_sizes", default="1,32,256", show_default=True, callback=comma_list(int),
              help="Batch sizes, comma-separated.")
@click.option("--threads", callback=comma_list(int), help="CPU thread counts, comma-separated [default: torch's].")
@click.option("--min-time", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds of timed calls for the slowest setting of each batch (at least 5 calls).")
@click.option("--refresh-peak", is_flag=True, help="Measure the matmul peak again instead of using the cached one.")
@click.option("--plot", "plot_png", type=Path(dir_okay=False), help="Write a bar chart of images/s (PNG).")
@click.option("--peers", is_flag=True,
              help="Add zoo's ONNX file run by onnxruntime and by OpenVINO with their own defaults (same threads): "
              "what a user would run instead.")
@click.option("--tune", is_flag=True,
              help="Tune auto instead: time its candidates for each model at the batch sizes and threads given, and "
              "store the result for this machine in the zoo cache (auto reads it first); with --backend auto-int8, "
              "the int8 runners too.")
@json_option
def bench_cmd(models: tuple[str, ...], devices: tuple[str, ...], backends: tuple[str, ...],
              batch_sizes: tuple[int, ...], threads: tuple[int, ...] | None, min_time: float, refresh_peak: bool,
              plot_png: str | None, peers: bool, tune: bool, as_json: bool) -> None:
    """Inference latency and throughput per model, device, backend and batch size, vs eager fp32 and the peak.

    By default zoo's `auto` runs beside eager and the runtimes a deployment would pick instead
    (onnxruntime, OpenVINO fp32 and bf16); add timm's network with `-m resnet18,timm/resnet18`.
    """
    if tune:
        from ..benchmark.tune import tune as tune_auto

        int8 = "auto-int8" in backends  # the int8 runners too, for --backend auto-int8
        results = [tune_auto(m, batch_sizes=batch_sizes, threads=t, int8=int8) for m in models
                   for t in (threads or (None,))]
        emit_json([r.to_dict() for r in results]) if as_json else click.echo(tune_report(results))
        return
    from ..benchmark import bench

    r = bench(models, devices=devices, backends=backends, batch_sizes=batch_sizes, threads=threads,
              min_time_s=min_time, refresh_peak=refresh_peak, peers=peers)
    if plot_png:
        from ..utils.plots import plot_throughput

        plot_throughput([row.to_dict() for row in r.rows], plot_png, title=f"zoo bench on {r.machine['cpu']}")
    if as_json:
        emit_json(r.to_dict())
    else:
        click.echo(bench_report(r, plot_png))
