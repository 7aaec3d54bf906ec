"""``zoo eval`` (also the ``zoo-eval`` command) and ``zoo predict``: a checkpoint scored on a dataset, or
classifying image files."""

from __future__ import annotations

from typing import Any

import click

from ._options import (
    Path,
    backend_option,
    batch_size_option,
    data_dir_option,
    debug_option,
    device_option,
    floats,
    json_option,
    model_option,
    progress_option,
    set_threads,
    threads_option,
    verbose_option,
    weights_option,
)
from ._output import echo, emit_json, eval_report, predictions

__all__ = ["eval_cmd", "predict_cmd"]


@click.command("eval")
@model_option("Registered model name (see `zoo list`).")
@click.argument("dataset")
@weights_option("Weight name (arch.tag), tag, or a checkpoint file (.safetensors/.pth/.th).")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@batch_size_option(256)
@device_option("cpu, cuda or cuda:N.")
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N images.")
@click.option("--mean", callback=floats, help="Normalisation mean, e.g. 0.4914,0.4822,0.4465.")
@click.option("--std", callback=floats, help="Normalisation std, e.g. 0.247,0.2435,0.2616.")
@data_dir_option()
@click.option("--download", is_flag=True, help="Download the dataset with torchvision if it is missing.")
@click.option("--no-verify", is_flag=True, help="Load a dataset copy that fails verification (with a warning).")
@click.option("--no-sample", is_flag=True, help="Fail instead of falling back to the embedded sample.")
@click.option("--confusion", "confusion_png", type=Path(dir_okay=False), help="Write the confusion matrix PNG.")
@click.option("--per-class", is_flag=True, help="Print per-class accuracy.")
@progress_option("Progress bar on stderr.")
@backend_option("auto: the setting measured fastest for this CPU class (zoo/runners/auto.json; often bf16); eager: "
                "fp32 as built, exact recorded accuracies; onnxruntime|pt2|torchscript|openvino|openvino-bf16|"
                "onnxruntime-int8|openvino-int8: an exported artefact (int8: calibrated on training images), "
                "with parity against eager; or zoo.runners modifiers such as fold-bn+channels-last.")
@click.option("--artefact", type=Path(exists=True, dir_okay=False),
              help="An exported file to evaluate (with --backend auto, its runtime comes from the suffix); "
                   "default: export the same weights now.")
@click.option("--trust-artefact", is_flag=True,
              help="Run a pt2 or TorchScript --artefact: those formats are code by nature (loading one can run "
                   "its code), so zoo refuses them unless you trust the file. ONNX and OpenVINO need no trust.")
@debug_option(standalone=True)
@verbose_option(standalone=True)
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

    set_threads(threads)
    r = evaluate_model(model_name, dataset, weights=weights, split=split, data_dir=data_dir, download=download,
                       verify=not no_verify, batch_size=batch_size, device=device, limit=limit, mean=mean,
                       std=std, allow_sample=not no_sample, progress=progress and not as_json, backend=backend,
                       artefact=artefact, trust_artefact=trust_artefact)
    if as_json:
        emit_json(r.to_dict())
        _write_confusion(r, confusion_png)
        return
    click.echo(eval_report(r, per_class))
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


@click.command("predict")
@model_option("Registered model name (see `zoo list`).")
@click.argument("images", nargs=-1, required=True)
@weights_option("Weight name (arch.tag), tag, or a checkpoint file.", default="default")
@click.option("--topk", "-k", type=click.IntRange(min=1), default=3, show_default=True)
@batch_size_option(64)
@device_option()
@backend_option("auto: the setting measured fastest for this many images (zoo.runners); eager: fp32 as built.")
@threads_option
@json_option
def predict_cmd(model_name: str, images: tuple[str, ...], weights: str, topk: int, batch_size: int, device: str,
                backend: str, threads: int | None, as_json: bool) -> None:
    """Classify IMAGES (files or folders) with MODEL's checkpoint: top-k classes and probabilities."""
    from ..predict import predict

    set_threads(threads)
    results = predict(model_name, list(images), weights=weights, topk=topk, batch_size=batch_size, device=device,
                      backend=backend)
    if as_json:
        emit_json([r.to_dict() for r in results])
    else:
        echo(predictions(results))
