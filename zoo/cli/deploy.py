"""``zoo export``: a checkpoint written as ONNX, torch.export, TorchScript or OpenVINO IR, its parity with
eager checked, and with ``--int8`` a calibrated int8 file measured against fp32."""

from __future__ import annotations

import click

from ._options import (
    data_dir_option,
    json_option,
    model_option,
    out_file_option,
    set_threads,
    threads_option,
    weights_option,
)
from ._output import emit_json, export_report

__all__ = ["export_cmd"]


@click.command("export")
@model_option()
@weights_option("Weight name, tag or file (default: the model's default checkpoint).")
@click.option("--format", "fmt", type=click.Choice(["onnx", "pt2", "torchscript", "openvino"]), default="onnx",
              show_default=True)
@click.option("--opset", type=int, help="ONNX opset (default: the exporter's).")
@click.option("--batch", default="dynamic", show_default=True, help="'dynamic' or a fixed batch size.")
@out_file_option("Output file (default: <model>.<ext>).")
@click.option("--int8", "int8", is_flag=True, help="Also write a static int8 file (ONNX: onnxruntime's quantizer; "
              "OpenVINO: NNCF), calibrated on training images, and measure its accuracy and speed against fp32.")
@click.option("--calibration", type=click.IntRange(min=1), default=300, show_default=True,
              help="Training images used to calibrate --int8.")
@data_dir_option("Dataset root for the parity check and --int8.")
@threads_option
@json_option
def export_cmd(model_name: str, weights: str | None, fmt: str, opset: int | None, batch: str, out: str | None,
               int8: bool, calibration: int, data_dir: str | None, threads: int | None, as_json: bool) -> None:
    """Export a model to ONNX, torch.export (.pt2), TorchScript or OpenVINO IR and check parity with eager."""
    from ..deploy import export_model

    set_threads(threads)
    if batch != "dynamic" and not batch.isdigit():
        raise click.BadParameter(f"expected 'dynamic' or a positive integer, got {batch!r}", param_hint="--batch")
    if int8 and fmt not in ("onnx", "openvino"):
        raise click.BadParameter("--int8 applies to --format onnx and --format openvino", param_hint="--int8")
    r = export_model(model_name, fmt, weights=weights, out=out, opset=opset,
                     batch=batch if batch == "dynamic" else int(batch), data_dir=data_dir, int8=int8,
                     calibration=calibration, threads=threads)
    if as_json:
        emit_json(r.to_dict())
    else:
        click.echo(export_report(r))
