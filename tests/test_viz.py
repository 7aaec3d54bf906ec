"""zoo.studies.viz and `zoo viz`: filters and feature maps as arrays and as figures; the gallery is current."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo.cli import cli
from zoo.data.datasets import load_sample
from zoo.studies.viz import (
    activations_figure,
    filters_figure,
    layer_activations,
    layer_weights,
    load_image,
    resolve_layer,
)

ROOT = Path(__file__).resolve().parent.parent


def _png_size(path: str | Path) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def test_layer_names_first_last_and_unknown() -> None:
    model = zoo.create("vgga")
    assert resolve_layer(model) == resolve_layer(model, "first") == "features.0"
    assert resolve_layer(model, "last") == "features.18"
    assert resolve_layer(model, "classifier.0") == "classifier.0"
    with pytest.raises(zoo.InvalidArgumentError, match="features.0"):
        resolve_layer(model, "conv9")
    assert resolve_layer(zoo.create("mlp_60_40_20_bn")) == "features.1"  # no conv: the first Linear


def test_mlp_filters_are_the_first_layer_reshaped_to_the_image() -> None:
    model = zoo.create("mlp_60_40_20_bn", weights="default")
    name, w = layer_weights(model, input_size=(1, 28, 28))
    assert name == "features.1" and w.shape == (60, 1, 28, 28)
    np.testing.assert_array_equal(w.reshape(60, -1), model.features[1].weight.detach().numpy())
    with pytest.raises(zoo.InvalidArgumentError, match="reads the image"):
        layer_weights(model, "features.5", input_size=(1, 28, 28))


def test_filters_figure_of_the_released_mlp(tmp_path: Path) -> None:
    r = filters_figure("mlp_60_40_20_bn", out=tmp_path / "f.png")
    assert r.weights == "mlp_60_40_20_bn.mnist" and r.shape == [60, 1, 28, 28] and not r.notes
    w, h = _png_size(r.paths[0])
    assert w > 400 and h > 400


def test_rgb_filters_figure_and_random_weights_say_so(tmp_path: Path) -> None:
    r = filters_figure("cnn3_fc1000", out=tmp_path / "f.png")
    assert r.weights is None and "random weights" in r.notes[0]
    assert r.layer == "features.0" and r.shape == [32, 3, 5, 5]
    w, h = _png_size(r.paths[0])
    assert w > 600 and h > 600  # RGB composite + three channels


def test_activations_are_the_layer_output_before_the_inplace_relu() -> None:
    torch.manual_seed(0)
    model = zoo.create("vgga")  # Conv2d is followed by ReLU(inplace=True)
    x = torch.randn(3, 32, 32)
    name, maps = layer_activations(model, x, "features.0")
    conv = model.features[0]
    expected = F.conv2d(x[None], conv.weight, conv.bias, padding=1)[0].detach().numpy()
    assert (maps < 0).any()
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    _, after_relu = layer_activations(model, x, "features.1")
    np.testing.assert_allclose(after_relu, np.maximum(expected, 0), atol=1e-5)


def test_image_file_is_read_converted_and_resized(tmp_path: Path) -> None:
    img = load_sample("cifar10").images[3].permute(1, 2, 0).numpy()
    path = tmp_path / "big.png"
    Image.fromarray(img).resize((96, 96), Image.NEAREST).save(path)
    x = load_image(path, (3, 32, 32))
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    assert load_image(path, (1, 28, 28)).shape == (1, 28, 28)
    with pytest.raises(zoo.ZooError, match="is a folder; a regular file is expected"):
        load_image(tmp_path, (3, 32, 32))


def test_activations_figure_from_a_file_and_from_the_sample(tmp_path: Path) -> None:
    img = load_sample("mnist").images[0, 0].numpy()
    Image.fromarray(img).save(tmp_path / "digit.png")
    r = activations_figure("mlp_60_40_20_bn", image=tmp_path / "digit.png", out=tmp_path / "a.png")
    assert r.shape == [60] and any(n.startswith("predicted: 7") for n in r.notes)  # test image 0 is a 7
    r = activations_figure("lenet_cifar", sample=5, layer="last", out=tmp_path / "b.png")
    assert r.layer == "features.6" and r.shape == [128, 8, 8]
    assert _png_size(r.paths[0])[0] > 600
    with pytest.raises(zoo.InvalidArgumentError, match="exactly one"):
        activations_figure("lenet_cifar")


def test_cli_viz_filters_and_activations(tmp_path: Path) -> None:
    out = tmp_path / "filters.png"
    result = CliRunner().invoke(cli, ["viz", "filters", "-m", "mlp_60_40_20_bn", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["layer"] == "features.1" and data["paths"] == [str(out)] and out.exists()
    out = tmp_path / "act.png"
    result = CliRunner().invoke(cli, ["viz", "activations", "-m", "cnn3_fc1000", "--sample", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "random weights" in result.output and out.exists()


def test_cli_viz_unknown_layer_is_a_one_line_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "zoo", "viz", "filters", "-m", "lenet_cifar", "--layer", "nope",
                           "--out", "/dev/null"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: no layer 'nope'") and "Traceback" not in proc.stderr


def test_gallery_is_current_for_every_released_checkpoint() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_gallery.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    page = (ROOT / "docs" / "gallery.md").read_text()
    assert all(f"`{w.name}`" in page for w in zoo.list_weights())
    assert "docs/gallery.md" in (ROOT / "README.md").read_text()
