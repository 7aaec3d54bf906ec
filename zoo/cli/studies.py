"""The studies: the ``zoo analyze`` group (report 002's loss landscape, report 003's transfer learning) and the
``zoo viz`` group (a layer's filters, the feature maps of one image)."""

from __future__ import annotations

import click

from ._options import (
    Path,
    batch_size_option,
    data_dir_option,
    default_run_dir,
    device_option,
    floats,
    from_json_option,
    full_option,
    json_option,
    layer_option,
    model_option,
    out_dir_option,
    out_file_option,
    progress_option,
    set_threads,
    threads_option,
    weights_option,
)
from ._output import emit_json, landscape_report, transfer_report, view_report

__all__ = ["analyze_group", "viz_group"]


@click.group("analyze")
def analyze_group() -> None:
    """Studies of how models train (report 002's BatchNorm study, report 003's transfer learning)."""


@analyze_group.command("landscape")
@full_option("The report's full recipe (25 epochs on all 50,000 images; GPU hours) instead of the short one "
             "(about 12 minutes on 2 CPU cores).")
@click.option("--models", help="Two models, without and with BatchNorm [default: vgga,vgga_bn].")
@click.option("--lrs", callback=floats, help="Learning rates [default: 1e-3,2e-3,1e-4,5e-4].")
@click.option("--steps", type=click.IntRange(min=2), help="Training steps per run.")
@batch_size_option(minimum=2, short=False)
@click.option("--train-images", type=click.IntRange(min=0), help="Train on the first N images (0 = all).")
@click.option("--probe-every", type=click.IntRange(min=1), help="Measure the gradient change every N steps.")
@click.option("--seed", type=int)
@out_dir_option("Folder for landscape.json and the figures [default: runs/landscape-<short|full>].")
@from_json_option("Redraw the figures of a saved landscape.json; nothing is trained.")
@data_dir_option()
@device_option()
@threads_option
@progress_option()
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
        r = run_landscape(config, out_dir=default_run_dir(out_dir, f"landscape-{preset}"), data_dir=data_dir,
                          device=device, progress=progress and not as_json, threads=threads)
    if as_json:
        emit_json({k: v for k, v in r.to_dict().items() if k != "runs"})
    else:
        click.echo(landscape_report(r))


@analyze_group.command("transfer")
@full_option("The longer preset (15 source epochs, 2,500 target images, 1,000 steps) instead of the short one "
             "(minutes on 2 CPU cores; the README table records its wall time).")
@click.option("--model", help="Architecture with the timm classifier protocol [default: resnet20].")
@click.option("--freeze", help="Layers frozen in the transfer run [default: conv1,bn1,layer1,layer2].")
@click.option("--target-images", type=click.IntRange(min=10), help="Labelled target training images.")
@click.option("--steps", "target_steps", type=click.IntRange(min=1), help="Training steps of each target run.")
@out_dir_option("Folder for transfer.json and transfer.png [default: runs/transfer-<short|full>].")
@from_json_option("Redraw the figure of a saved transfer.json; nothing is trained.")
@data_dir_option()
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
        r = run_transfer(config, out_dir=default_run_dir(out_dir, f"transfer-{preset}"), data_dir=data_dir,
                         threads=threads)
    if as_json:
        emit_json({k: v for k, v in r.items() if k != "runs"})
    else:
        click.echo(transfer_report(r))


@click.group("viz")
def viz_group() -> None:
    """Look inside a model: a layer's filters, the feature maps of one image (report 003, Figures 8-13)."""


_VIZ_WEIGHTS = "Weight name, tag or file (default: the model's released checkpoint, else random weights)."


@viz_group.command("filters")
@model_option("Registered model name.")
@weights_option(_VIZ_WEIGHTS)
@layer_option
@out_file_option("PNG to write [default: <model>-filters.png].")
@threads_option
@json_option
def viz_filters_cmd(model_name: str, weights: str | None, layer: str | None, out: str | None, threads: int | None,
                    as_json: bool) -> None:
    """Draw a conv layer's weights (an MLP's first layer as input-sized images), per RGB channel too."""
    from ..studies.viz import filters_figure

    set_threads(threads)
    r = filters_figure(model_name, weights=weights, layer=layer, out=out)
    if as_json:
        emit_json(r.to_dict())
    else:
        click.echo(view_report(r))


@viz_group.command("activations")
@model_option("Registered model name.")
@click.option("--image", type=Path(exists=True, dir_okay=False),
              help="Input image (resized to the model's input).")
@click.option("--sample", type=click.IntRange(min=0), help="Use image N of the embedded test sample instead.")
@weights_option(_VIZ_WEIGHTS)
@layer_option
@out_file_option("PNG to write [default: <model>-activations.png].")
@threads_option
@json_option
def viz_activations_cmd(model_name: str, image: str | None, sample: int | None, weights: str | None,
                        layer: str | None, out: str | None, threads: int | None, as_json: bool) -> None:
    """Draw the feature maps a layer produces for one input image."""
    from ..studies.viz import activations_figure

    set_threads(threads)
    r = activations_figure(model_name, image=image, sample=sample, weights=weights, layer=layer, out=out)
    if as_json:
        emit_json(r.to_dict())
    else:
        click.echo(view_report(r))
