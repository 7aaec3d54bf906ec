"""CIFAR-10-C-style corruptions (zoo.data.corruptions, zoo.data.distortions, zoo.robustness): the batched
operations against the libraries the published generator calls (scikit-image, SciPy, OpenCV), the 15 corruptions
on real test images, determinism, the content-hash cache, and ``zoo-eval --corruptions``."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from conftest import require_dataset
from zoo.data import distortions as D
from zoo.data.corruptions import (
    CORRUPTIONS,
    cache_dir,
    corrupt,
    corrupt_split,
    parse_corruptions,
    parse_severities,
)
from zoo.data.datasets import load_sample


@pytest.fixture(scope="module")
def sample() -> zoo.data.Split:
    return load_sample("cifar10").head(64)


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).double().numpy()


def _random(seed: int = 0) -> torch.Tensor:
    return torch.rand((1, 3, 32, 32), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("sigma", "truncate", "mode", "scipy_mode"), [
    (0.4, 4.0, "nearest", "nearest"), (1.0, 4.0, "nearest", "nearest"), (6.4, 3.0, "symmetric", "reflect"),
    (1.92, 3.0, "symmetric", "reflect")])
def test_gaussian_blur_is_scipys_gaussian_filter(sigma: float, truncate: float, mode: str, scipy_mode: str) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x = _random()
    expected = ndimage.gaussian_filter(_hwc(x), sigma=(sigma, sigma, 0), truncate=truncate, mode=scipy_mode)
    got = D.gaussian_blur(x, sigma, truncate=truncate, mode=mode)
    assert np.abs(_hwc(got) - expected).max() < 1e-5


def test_filter2d_and_the_defocus_disk_are_opencvs() -> None:
    cv2 = pytest.importorskip("cv2")
    from zoo.data.corruptions import _disk

    for radius, alias in ((0.3, 0.4), (1.5, 0.1), (1, 0.2)):
        t = np.arange(-8, 9)
        disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius ** 2).astype(np.float32)
        kernel = cv2.GaussianBlur(disk / disk.sum(), ksize=(3, 3), sigmaX=alias)
        assert np.abs(_disk(radius, alias).numpy() - kernel).max() < 1e-6
        x = _random(1)
        expected = np.stack([cv2.filter2D(_hwc(x)[:, :, c].astype(np.float32), -1, kernel) for c in range(3)], -1)
        assert np.abs(_hwc(D.filter2d(x, torch.from_numpy(kernel))) - expected).max() < 1e-5


@pytest.mark.parametrize("factor", [1.01, 1.05, 1.25, 1.75, 2.25])
def test_clipped_zoom_is_scipys_first_order_zoom_of_the_centre(factor: float) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x = _random(2)
    side = int(np.ceil(32 / factor))
    top = (32 - side) // 2
    big = ndimage.zoom(_hwc(x)[top:top + side, top:top + side], (factor, factor, 1), order=1)
    trim = (big.shape[0] - 32) // 2
    assert np.abs(_hwc(D.clipped_zoom(x, factor)) - big[trim:trim + 32, trim:trim + 32]).max() < 1e-5


def test_affine_warp_is_opencvs_warp_affine_with_reflected_borders() -> None:
    cv2 = pytest.importorskip("cv2")
    src = np.float32([[26, 26], [26, 6], [6, 6]])
    dst = src + np.float32([[2.1, -1.3], [-0.7, 2.4], [1.9, 0.6]])
    forward = cv2.getAffineTransform(src, dst)
    x = _random(3)
    expected = cv2.warpAffine(_hwc(x).astype(np.float32), forward, (32, 32), borderMode=cv2.BORDER_REFLECT_101)
    inverse = torch.from_numpy(cv2.invertAffineTransform(forward)).double()[None]
    got = _hwc(D.affine_warp(x, inverse))
    assert np.abs(got - expected)[1:-1, 1:-1].max() < 2e-3  # OpenCV interpolates in 1/32-pixel fixed point
    assert np.abs(got - expected).mean() < 1e-3


def test_displace_is_scipys_map_coordinates_with_mirrored_borders() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x = _random(4)
    g = torch.Generator().manual_seed(5)
    dx, dy = (torch.randn((1, 32, 32), generator=g) * 1.5 for _ in range(2))
    ys, xs, cs = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    coords = [ys + dy[0].numpy()[..., None], xs + dx[0].numpy()[..., None], cs]
    expected = ndimage.map_coordinates(_hwc(x), [c.reshape(-1) for c in coords], order=1, mode="reflect")
    assert np.abs(_hwc(D.displace(x, dx, dy)).reshape(-1) - expected).max() < 1e-5


def test_brightness_is_a_shift_of_hsv_value() -> None:
    color = pytest.importorskip("skimage.color")
    x = _random(6)
    x[0, :, 0, 0] = 0  # a black pixel becomes grey
    for shift in (0.05, 0.3):
        hsv = color.rgb2hsv(_hwc(x))
        hsv[:, :, 2] = np.clip(hsv[:, :, 2] + shift, 0, 1)
        assert np.abs(_hwc(D.scale_value(x, shift)) - color.hsv2rgb(hsv)).max() < 1e-5


def test_motion_blur_weights_the_pixels_behind_along_its_angle() -> None:
    x = torch.zeros(2, 1, 9, 17)
    x[:, 0, 4, 4] = 1.0
    out = D.motion_blur(x, 6, 1.5, torch.tensor([0.0, 90.0]))
    taps = torch.exp(-torch.arange(13.0) ** 2 / (2 * 1.5 ** 2))
    taps /= taps.sum()
    # at angle 0 the pixel k to the left of the spike samples it at tap k; at 90 degrees, the pixel k above it
    assert torch.allclose(out[0, 0, 4, :5].flip(0), taps[:5]) and out[0, 0, 4, 5:].abs().max() == 0
    assert torch.allclose(out[1, 0, :5, 4].flip(0), taps[:5]) and out[1, 0, :, 5:].abs().max() == 0
    assert torch.allclose(D.motion_blur(torch.full((1, 3, 8, 8), 0.3), 9, 2.5, torch.tensor([33.0])),
                          torch.full((1, 3, 8, 8), 0.3))


def test_glass_scramble_copies_a_neighbour_up_or_left_into_each_pixel() -> None:
    x = torch.arange(3 * 32 * 32, dtype=torch.float64).view(1, 3, 32, 32)
    out = D.shuffle_pixels(x, 1, 1, torch.Generator().manual_seed(0))
    assert torch.equal(out[..., :2, :], x[..., :2, :]) and torch.equal(out[..., :, :2], x[..., :, :2])
    moved = 0
    for i in range(2, 32):
        for j in range(2, 32):
            here = out[0, :, i, j]
            options = [x[0, :, i + dy, j + dx] for dy in (-1, 0) for dx in (-1, 0)]
            assert any(torch.equal(here, o) for o in options)
            moved += not torch.equal(here, x[0, :, i, j])
    assert moved > 500  # three in four pixels take a neighbour


def test_plasma_fractal_is_a_normalised_seeded_height_map() -> None:
    a = D.plasma_fractal(3, 32, 2.0, torch.Generator().manual_seed(1))
    b = D.plasma_fractal(3, 32, 2.0, torch.Generator().manual_seed(1))
    assert a.shape == (3, 32, 32) and torch.equal(a, b)
    assert torch.allclose(a.amin(dim=(1, 2)), torch.zeros(3).double()) and torch.allclose(a.amax(dim=(1, 2)),
                                                                             torch.ones(3).double())
    assert (a[0] - a[1]).abs().mean() > 0.05


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_every_corruption_changes_every_image_at_severity_1_and_is_deterministic(name: str, sample) -> None:
    images = sample.images
    one = corrupt(images, name, 1)
    assert one.dtype == torch.uint8 and one.shape == images.shape
    assert bool((one != images).flatten(1).any(1).all()), f"{name} at severity 1 left an image unchanged"
    assert torch.equal(corrupt(images, name, 1), one)  # the same bytes again
    worst = corrupt(images, name, 5)
    assert not torch.equal(worst, one)


def test_the_random_corruptions_follow_their_seed(sample) -> None:
    images = sample.images[:16]
    for name in ("gaussian_noise", "glass_blur", "motion_blur", "snow", "frost", "fog", "elastic_transform"):
        assert not torch.equal(corrupt(images, name, 3, seed=0), corrupt(images, name, 3, seed=1)), name
    assert torch.equal(corrupt(images, "contrast", 3, seed=0), corrupt(images, "contrast", 3, seed=1))


def test_corrupt_refuses_what_it_is_not_defined_for(sample) -> None:
    with pytest.raises(zoo.InvalidArgumentError, match="RGB images"):
        corrupt(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "fog", 1)
    with pytest.raises(zoo.InvalidArgumentError, match="unknown corruption 'smog'"):
        corrupt(sample.images, "smog", 1)
    with pytest.raises(zoo.InvalidArgumentError, match="from 1 to 5"):
        corrupt(sample.images, "fog", 6)


def test_parse_corruptions_and_severities() -> None:
    assert parse_corruptions("all") == tuple(CORRUPTIONS) and len(CORRUPTIONS) == 15
    assert parse_corruptions("noise,fog,fog") == ("gaussian_noise", "shot_noise", "impulse_noise", "fog")
    assert parse_severities("1-5") == (1, 2, 3, 4, 5) and parse_severities("5,1,3") == (1, 3, 5)
    for bad in ("0-2", "6", "two", "3-", ""):
        with pytest.raises(zoo.InvalidArgumentError):
            parse_severities(bad)
    with pytest.raises(zoo.InvalidArgumentError, match="use all, a family"):
        parse_corruptions("noise,haze")


def test_frost_without_its_photographs_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.data import corruptions

    corruptions._frost_photos.cache_clear()
    monkeypatch.setattr(corruptions.importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(zoo.ZooError, match=r"pip install 'zoo\[robustness\]'"):
            corruptions.check_available(("fog", "frost"))
        corruptions.check_available(("fog",))  # the other fourteen need nothing more
    finally:
        corruptions._frost_photos.cache_clear()


def test_the_cache_is_keyed_by_content_and_refuses_a_tampered_file(sample, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first, hit = corrupt_split(sample, "shot_noise", 2)
    assert not hit and "shot_noise, severity 2" in first.verification
    again, hit = corrupt_split(sample, "shot_noise", 2)
    assert hit and torch.equal(again.images, first.images) and torch.equal(again.labels, sample.labels)
    other, hit = corrupt_split(sample.head(32), "shot_noise", 2)  # other source images: another key
    assert not hit and len(list(cache_dir().iterdir())) == 2
    path = next(p for p in cache_dir().iterdir() if p.stat().st_size > other.images.numel())
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one pixel changed: the stored hash no longer matches
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        redone, hit = corrupt_split(sample, "shot_noise", 2)
    assert not hit and torch.equal(redone.images, first.images) and "does not match" in caplog.text
    path.write_bytes(b"not a safetensors file")
    assert corrupt_split(sample, "shot_noise", 2)[1] is False
    assert corrupt_split(sample, "shot_noise", 2)[1] is True  # rewritten whole


def _zoo(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(cache)}
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600, env=env)


def test_zoo_eval_corruptions_refuses_options_that_do_not_apply(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli

    for args, message in ((["--corruptions", "all", "--split", "train"], "does not take --split"),
                          (["--corruptions", "fog", "--reliability", "r.png"], "does not take --reliability"),
                          (["--heatmap", "h.png"], "--heatmap needs --corruptions"),
                          (["--corruptions", "haze"], "unknown corruption 'haze'"),
                          (["--corruptions", "fog", "--severity", "0-9"], "severities run from 1 to 5"),
                          (["--corruptions", "fog", "--backend", "onnxruntime"], "not the exported backend"),
                          (["-m", "mlp_60_40_20_bn", "mnist", "--corruptions", "fog"], "defined for RGB images")):
        if "mnist" not in args:
            args = ["-m", "resnet20", "cifar10", *args]
        result = CliRunner().invoke(cli, ["eval", *args])
        said = result.output + str(result.exception or "")
        assert result.exit_code != 0 and message in said, (args, said)
    run = _zoo("eval", "-m", "resnet20", "cifar10", "--corruptions", "haze", cwd=tmp_path, cache=tmp_path)
    assert run.returncode == 1 and "unknown corruption 'haze'" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow
@pytest.mark.full_data
def test_zoo_eval_corruptions_is_reproducible_and_severity_5_hurts_more_than_1(tmp_path: Path) -> None:
    require_dataset("cifar10")
    args = ("eval", "-m", "resnet20", "cifar10", "--corruptions", "all", "--severity", "1-5", "--limit", "200",
            "--backend", "eager", "--json")
    runs = []
    for k in range(2):  # two fresh caches: the second run generates every image again
        run = _zoo(*args, "--heatmap", f"h{k}.png", cwd=tmp_path, cache=tmp_path / f"cache{k}")
        assert run.returncode == 0, run.stderr
        runs.append(json.loads(run.stdout))
    a, b = runs
    assert a["points"] == b["points"] and a["cached_points"] == 0 and len(a["points"]) == 75
    assert a["images_per_point"] == 200 and "not the released CIFAR-10-C files" in a["style"]
    assert a["per_severity"]["5"] < a["per_severity"]["1"] < a["clean_top1"]
    assert a["mean_corruption_accuracy"] == pytest.approx(sum(p["top1"] for p in a["points"]) / 75)
    assert (tmp_path / "h0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cached = _zoo(*args, cwd=tmp_path, cache=tmp_path / "cache0")
    assert json.loads(cached.stdout)["cached_points"] == 75 and json.loads(cached.stdout)["points"] == [
        {**p, "cached": True} for p in a["points"]]


def test_every_released_cifar10_checkpoint_has_a_robustness_record_for_its_file() -> None:
    record = json.loads((Path(__file__).resolve().parent.parent / "benchmarks" / "results" /
                         "robustness.json").read_text())
    rows = {row["weights"]: row for row in record["rows"]}
    assert "not the released CIFAR-10-C files" in record["style"] and record["anchor"]["mean_corruption_accuracy"]
    from zoo.data.corruptions import GENERATOR_VERSION

    assert record["generator_version"] == GENERATOR_VERSION, "the generator changed: rerun tools/robustness_record.py"
    for w in zoo.list_weights():
        if w.dataset != "cifar10":
            continue
        assert w.name in rows, f"{w.name} has no robustness row: python tools/robustness_record.py {w.name}"
        row = rows[w.name]
        assert row["sha256"] == w.sha256, f"{w.name}: the row is for another file; rerun tools/robustness_record.py"
        assert len(row["points"]) == 75 and {p["corruption"] for p in row["points"]} == set(CORRUPTIONS)
        assert row["mean_corruption_accuracy"] == pytest.approx(sum(p["top1"] for p in row["points"]) / 75)
        assert row["mean_corruption_accuracy"] < row["clean_top1"]
