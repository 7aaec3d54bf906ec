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
from ._output import calibration_report, echo, emit_json, eval_report, predictions, robustness_report

__all__ = ["eval_cmd", "predict_cmd", "calibrate_cmd"]


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
@click.option("--reliability", "reliability_png", type=Path(dir_okay=False),
              help="Write the reliability diagram (accuracy against confidence, 15 bins) PNG.")
@click.option("--temperature", help="Divide the logits by this before loss and calibration: a number, or 'fitted' "
                                    "for the one on the checkpoint's card (zoo calibrate).")
@click.option("--corruptions", help="Score on the test split corrupted in the style of CIFAR-10-C instead: all, a "
                                    "family (noise, blur, weather, digital) or names, comma-separated.")
@click.option("--severity", "severities", default="1-5", show_default=True,
              help="With --corruptions: severities, e.g. 1-5, 3 or 1,3,5.")
@click.option("--heatmap", "heatmap_png", type=Path(dir_okay=False),
              help="With --corruptions: write the top-1 heat map (corruption x severity) PNG.")
@click.option("--corruption-seed", type=int, default=0, show_default=True,
              help="With --corruptions: the seed the corrupted images are generated from.")
@progress_option("Progress bar on stderr.")
@backend_option("auto: the setting measured fastest here (this machine's tuning, else zoo/runners/auto.json for its "
                "CPU class; often bf16); auto-int8: the same with the int8 runners where the checkpoint's recorded "
                "int8 top-1 change is within 0.3 points; eager: fp32 as built, exact recorded accuracies; "
                "onnxruntime|pt2|torchscript|openvino|openvino-bf16|"
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
             reliability_png: str | None, temperature: str | None, corruptions: str | None, severities: str,
             heatmap_png: str | None, corruption_seed: int, progress: bool, backend: str, artefact: str | None,
             trust_artefact: bool, threads: int | None, as_json: bool) -> None:
    """Evaluate a model on DATASET (cifar10, cifar100, mnist, fashion_mnist, or an image folder DIR/<class>/...):
    top-1, top-5, loss (NLL), calibration (ECE, Brier), per class; or, with --corruptions, top-1 on corrupted
    test images per corruption and severity."""
    from ..evaluate import evaluate_model

    set_threads(threads)
    if corruptions is not None:
        _refuse_with_corruptions(split=split != "test", artefact=artefact, confusion=confusion_png,
                                 reliability=reliability_png, temperature=temperature, mean=mean, std=std,
                                 per_class=per_class, download=download)
        _corruptions(model_name, dataset, weights, corruptions, severities, limit, corruption_seed, data_dir,
                     not no_verify, batch_size, device, backend, not no_sample, progress and not as_json, as_json,
                     heatmap_png)
        return
    if heatmap_png is not None:
        raise click.UsageError("--heatmap needs --corruptions")
    r = evaluate_model(model_name, dataset, weights=weights, split=split, data_dir=data_dir, download=download,
                       verify=not no_verify, batch_size=batch_size, device=device, limit=limit, mean=mean,
                       std=std, allow_sample=not no_sample, progress=progress and not as_json, backend=backend,
                       artefact=artefact, trust_artefact=trust_artefact, temperature=temperature)
    if as_json:
        emit_json(r.to_dict())
        _write_figures(r, confusion_png, reliability_png)
        return
    click.echo(eval_report(r, per_class))
    for what, path in _write_figures(r, confusion_png, reliability_png):
        click.echo(f"{what}: {path}")


def _write_figures(r: Any, confusion: str | None, reliability: str | None) -> list[tuple[str, str]]:
    """Written after the results are out, so a bad path never throws a finished evaluation away."""
    from ..utils.plots import plot_confusion, plot_reliability

    what = f"{r.model} on {r.dataset} {r.split} ({r.num_images:,} images)"
    written = []
    if confusion:
        plot_confusion(r.confusion, r.classes, confusion, title=f"{what}, top-1 {r.top1:.2f}%")
        written.append(("confusion matrix", confusion))
    if reliability:
        scaled = f", temperature {r.temperature:.3g}" if r.temperature != 1 else ""
        plot_reliability(r.calibration_bins, reliability, title=f"{what}{scaled}: ECE {r.ece:.2f}")
        written.append(("reliability diagram", reliability))
    return written


def _refuse_with_corruptions(**given: Any) -> None:
    used = [f"--{name.replace('_', '-')}" for name, value in given.items() if value]
    if used:
        raise click.UsageError(f"--corruptions scores the test split as given; it does not take {', '.join(used)}")


def _corruptions(model_name: str, dataset: str, weights: str | None, corruptions: str, severities: str,
                 limit: int | None, seed: int, data_dir: str | None, verify: bool, batch_size: int, device: str,
                 backend: str, allow_sample: bool, progress: bool, as_json: bool, heatmap: str | None) -> None:
    from ..robustness import evaluate_corruptions
    from ..utils.plots import plot_corruption_heatmap

    r = evaluate_corruptions(model_name, dataset, weights=weights, corruptions=corruptions, severities=severities,
                             limit=limit, seed=seed, data_dir=data_dir, verify=verify, batch_size=batch_size,
                             device=device, backend=backend, allow_sample=allow_sample, progress=progress)
    if as_json:
        emit_json(r.to_dict())
    else:
        click.echo(robustness_report(r))
    if heatmap:
        plot_corruption_heatmap(r.points, heatmap, title=f"{r.weights or r.model}: top-1 (%) on {r.dataset} test, "
                                f"{r.images_per_point:,} images per cell (CIFAR-10-C style)")
        if not as_json:
            click.echo(f"heat map: {heatmap}")


@click.command("calibrate")
@click.argument("model_name", metavar="MODEL")
@weights_option("Weight name (arch.tag), tag, or a checkpoint file (default: MODEL's released checkpoint).")
@click.option("--holdout", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Fit on the last N training images (never the test split).")
@batch_size_option(500)
@device_option("cpu, cuda or cuda:N.")
@data_dir_option()
@click.option("--no-verify", is_flag=True, help="Load a dataset copy that fails verification (with a warning).")
@progress_option("Progress bar on stderr.")
@threads_option
@json_option
def calibrate_cmd(model_name: str, weights: str | None, holdout: int, batch_size: int, device: str,
                  data_dir: str | None, no_verify: bool, progress: bool, threads: int | None, as_json: bool) -> None:
    """Fit a temperature for MODEL's checkpoint on held-out training images; the test split's ECE, NLL and
    Brier score before and after it."""
    from ..evaluate import calibrate_model

    set_threads(threads)
    r = calibrate_model(model_name, weights=weights, holdout=holdout, data_dir=data_dir, verify=not no_verify,
                        batch_size=batch_size, device=device, progress=progress and not as_json)
    if as_json:
        emit_json(r.to_dict())
    else:
        click.echo(calibration_report(r))


@click.command("predict")
@model_option("Registered model name (see `zoo list`).")
@click.argument("images", nargs=-1, required=True)
@weights_option("Weight name (arch.tag), tag, or a checkpoint file.", default="default")
@click.option("--topk", "-k", type=click.IntRange(min=1), default=3, show_default=True)
@batch_size_option(64)
@device_option()
@backend_option("auto: the setting measured fastest for this many images (zoo.runners); auto-int8: with the int8 "
                "runners where the checkpoint's int8 record allows; eager: fp32 as built.")
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
