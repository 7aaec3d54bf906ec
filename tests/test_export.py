"""Export: every architecture to ONNX with parity, .pt2 and TorchScript, metadata, int8, the no-torch example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo.cli import cli
from zoo.data import batches, load_sample
from zoo.deploy import export_model, quantize_onnx
from zoo.export import ATOL, ExportError, load_runner

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.list_models())
def test_every_architecture_exports_to_onnx_with_parity(name: str, tmp_path: Path) -> None:
    r = export_model(name, "onnx", out=tmp_path / f"{name}.onnx")
    assert r.exporter == "dynamo", r.exporter  # the legacy fallback would be listed in the README
    assert r.ok and len(r.parity) == 4
    assert all(p.max_abs_diff <= ATOL * max(1.0, p.logit_scale) and p.argmax_identical for p in r.parity)
    assert {p.batch_size for p in r.parity} == {2, 7}  # dynamic batch


@pytest.mark.parametrize("fmt", ["pt2", "torchscript", "openvino"])
@pytest.mark.parametrize("name", ["resnet20", "vgga_light", "cnn_32_64_mnist"])
def test_pt2_torchscript_and_openvino_parity(name: str, fmt: str, tmp_path: Path) -> None:
    r = export_model(name, fmt, out=tmp_path / f"{name}.{'xml' if fmt == 'openvino' else fmt}")
    assert r.ok and all(p.max_abs_diff <= ATOL * max(1.0, p.logit_scale) for p in r.parity)
    assert {p.batch_size for p in r.parity} == {2, 7}  # dynamic batch
    runner = load_runner(r.path, {"pt2": "pt2", "torchscript": "torchscript", "openvino": "openvino"}[fmt])
    assert runner(torch.randn(3, *zoo.model_info(name).input_size)).shape == (3, zoo.model_info(name).num_classes)
    if fmt == "openvino":  # two files, both in place, nothing staged left behind
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.bin", f"{name}.xml"]


def test_openvino_ir_carries_the_metadata_and_evaluates_like_eager(tmp_path: Path) -> None:
    import openvino as ov

    r = export_model("resnet20", "openvino", out=tmp_path / "r20.xml")
    model = ov.Core().read_model(r.path)
    w = zoo.get_weights("resnet20.cifar10")
    assert model.get_rt_info(["zoo", "weights_sha256"]).astype(str) == w.sha256
    assert json.loads(model.get_rt_info(["zoo", "mean"]).astype(str)) == list(w.mean)
    for backend in ("openvino", "openvino-bf16"):
        result = CliRunner().invoke(cli, ["eval", "-m", "resnet20", "cifar10", "--backend", backend, "--artefact",
                                          r.path, "--json", "--data-dir", str(tmp_path / "none")])
        assert result.exit_code == 0, result.output
        e = json.loads(result.output[result.output.index("{"):])
        assert e["backend"] == backend and e["num_images"] == 1000  # the sample
        if backend == "openvino":  # fp32: the same top-1 on every image
            assert e["parity"]["identical"] and e["correct"] == e["parity"]["eager_correct"]
        else:  # bf16 arithmetic: a few images may flip
            assert e["parity"]["disagreeing_images"] <= 10


def test_onnx_metadata_describes_the_model(tmp_path: Path) -> None:
    r = export_model("mlp_60_40_20_bn", "onnx", out=tmp_path / "m.onnx")
    meta = {p.key: p.value for p in onnx.load(r.path).metadata_props}
    w = zoo.get_weights("mlp_60_40_20_bn.mnist")
    assert meta["zoo.model"] == "mlp_60_40_20_bn" and meta["zoo.weights"] == w.name
    assert meta["zoo.weights_sha256"] == w.sha256
    assert json.loads(meta["zoo.classes"]) == list(w.classes) and json.loads(meta["zoo.mean"]) == list(w.mean)
    assert json.loads(meta["zoo.input_size"]) == [1, 28, 28] and meta["zoo.num_classes"] == "10"


def test_parity_failure_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="disagrees with eager"):
        export_model("vgga_light", "onnx", out=tmp_path / "v.onnx", tolerance=-1.0)


def test_cli_export_json_and_backend_eval(tmp_path: Path) -> None:
    out = tmp_path / "r20.onnx"
    result = CliRunner().invoke(cli, ["export", "-m", "resnet20", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["ok"]
    result = CliRunner().invoke(cli, ["eval", "-m", "resnet20", "cifar10", "--backend", "onnxruntime", "--artefact",
                                      str(out), "--json", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output[result.output.index("{"):])
    assert r["backend"] == "onnxruntime" and r["parity"]["identical"] and r["parity"]["disagreeing_images"] == 0
    assert r["parity"]["eager_correct"] == r["parity"]["backend_correct"] == r["correct"]


def test_int8_quantisation_is_measured(tmp_path: Path) -> None:
    r = export_model("mlp_60_40_20_bn", "onnx", out=tmp_path / "m.onnx")
    q = quantize_onnx(r.path, tmp_path / "m.int8.onnx", name="mlp_60_40_20_bn", calibration=256)
    ops = {n.op_type for n in onnx.load(q.int8_path).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert q.int8_bytes < q.fp32_bytes / 2
    assert abs(q.int8_top1 - q.fp32_top1) < 2.0 and q.fp32_images_per_s > 0 and q.int8_images_per_s > 0


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
@pytest.mark.parametrize("name,dataset", [("mlp_60_40_20_bn", "mnist"), ("resnet20", "cifar10")])
def test_example_classifies_pngs_like_eager_without_torch(name: str, dataset: str, fmt: str, tmp_path: Path) -> None:
    model_path = export_model(name, fmt, out=tmp_path / f"{name}.{'xml' if fmt == 'openvino' else fmt}").path
    sample = load_sample(dataset)
    paths = []
    for i in range(12):
        img = sample.images[i].permute(1, 2, 0).numpy()
        png = tmp_path / f"{i}.png"
        Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(png)
        paths.append(str(png))
    check = ("import runpy, sys; sys.argv = sys.argv[1:]\n"
             "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "assert 'torch' not in sys.modules, 'the example imported torch'\n")
    proc = subprocess.run([sys.executable, "-c", check, str(ROOT / "examples" / f"classify_{fmt}.py"), model_path,
                           *paths, "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = [r["index"] for r in json.loads(proc.stdout)]
    torch.manual_seed(0)
    model = zoo.create(name, weights="default" if zoo.model_info(name).weights else None).eval()
    w = zoo.model_info(name)
    x, _ = next(batches(sample, 12, mean=w.mean, std=w.std))
    with torch.no_grad():
        expected = model(x).argmax(1).tolist()
    assert got == expected
