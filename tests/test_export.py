"""Export: every architecture to ONNX with parity, .pt2, TorchScript and OpenVINO, metadata, int8 (onnxruntime and
NNCF), runners loaded from files, the no-torch example."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper
from PIL import Image

import zoo
from conftest import require_dataset
from zoo.cli import cli
from zoo.data.datasets import batches, calibration_batch, load_for_eval, load_sample
from zoo.deploy import ATOL, export_model, quantize
from zoo.runners import backend_of, load
from zoo.runners.serialize import ExportError
from zoo.scoring import evaluate

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.list_models())
def test_every_architecture_exports_to_onnx_with_parity(name: str, tmp_path: Path) -> None:
    r = export_model(name, "onnx", out=tmp_path / f"{name}.onnx")
    assert r.exporter == "dynamo", r.exporter  # the legacy fallback would be listed in the README
    assert r.ok and len(r.parity) == 4
    assert all(p.max_abs_diff <= ATOL * max(1.0, p.logit_scale) and p.argmax_identical for p in r.parity)
    assert {p.batch_size for p in r.parity} == {2, 7}  # dynamic batch


def test_a_pt2_or_torchscript_file_needs_trust(tmp_path: Path) -> None:
    from zoo.runners import UntrustedArtefactError
    from zoo.runners.serialize import to_torchscript

    path, _ = to_torchscript(zoo.create("lenet_cifar").eval(), tmp_path / "l.ts.pt", input_size=(3, 32, 32))
    with pytest.raises(UntrustedArtefactError, match="--trust-artefact"):
        load(path)
    assert load(path, trust=True)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("fmt", ["pt2", "torchscript", "openvino"])
@pytest.mark.parametrize("name", ["resnet20", "vgga_light", "cnn_32_64_mnist"])
def test_pt2_torchscript_and_openvino_parity(name: str, fmt: str, tmp_path: Path) -> None:
    r = export_model(name, fmt, out=tmp_path / f"{name}.{'xml' if fmt == 'openvino' else fmt}")
    assert r.ok and all(p.max_abs_diff <= ATOL * max(1.0, p.logit_scale) for p in r.parity)
    assert {p.batch_size for p in r.parity} == {2, 7}  # dynamic batch
    runner = load(r.path, {"pt2": "pt2", "torchscript": "torchscript", "openvino": "openvino"}[fmt],
                  trust=True)  # made here; a pt2 or TorchScript file from elsewhere is refused without it
    assert runner.spec == {"pt2": "pt2", "torchscript": "torchscript", "openvino": "openvino"}[fmt]
    assert runner(torch.randn(3, *zoo.model_info(name).input_size)).shape == (3, zoo.model_info(name).num_classes)
    if fmt == "openvino":  # two files, both in place, nothing staged left behind
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.bin", f"{name}.xml"]


@pytest.mark.slow
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


@pytest.mark.slow
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
    result = CliRunner().invoke(cli, ["eval", "-m", "resnet20", "cifar10", "--artefact", str(out), "--json",
                                      "--data-dir", str(tmp_path / "none")])  # --backend auto: from the suffix
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["backend"] == "onnxruntime"


def test_runner_backend_comes_from_the_file_suffix(tmp_path: Path) -> None:
    assert [backend_of(f"m{s}") for s in (".onnx", ".pt2", ".ts.pt", ".xml")] == \
        ["onnxruntime", "pt2", "torchscript", "openvino"]
    with pytest.raises(zoo.InvalidArgumentError, match="cannot tell the format of m.pth"):
        backend_of("m.pth")
    r = export_model("resnet20", "onnx", out=tmp_path / "r20.onnx")
    runner = load(r.path)  # the same kind of object as zoo.runners.prepare makes
    x = torch.randn(2, 3, 32, 32)
    eager = zoo.runners.prepare(zoo.create("resnet20", weights="default"), "eager", input_size=(3, 32, 32))
    assert isinstance(runner, zoo.runners.Runner) and isinstance(eager, zoo.runners.Runner)
    assert runner.spec == "onnxruntime" and runner.precision == "fp32" and runner.path == Path(r.path)
    with torch.no_grad():
        assert (runner(x) - eager(x)).abs().max().item() < 1e-4


@pytest.mark.full_data
@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_quantisation_is_measured(fmt: str, tmp_path: Path) -> None:
    require_dataset("mnist", "train")
    suffix = ".xml" if fmt == "openvino" else ".onnx"
    r = export_model("mlp_60_40_20_bn", fmt, out=tmp_path / f"m{suffix}")
    q = quantize(r.path, tmp_path / f"m.int8{suffix}", name="mlp_60_40_20_bn", calibration=256, eval_limit=2000)
    assert q.backend == f"{'onnxruntime' if fmt == 'onnx' else 'openvino'}-int8" and q.calibration_images == 256
    if fmt == "onnx":
        ops = {n.op_type for n in onnx.load(q.int8_path).graph.node}
        assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
        assert dict((p.key, p.value) for p in onnx.load(q.int8_path).metadata_props)["zoo.quantization"] == q.method
        # 7-bit weights: full-range ones saturate onnxruntime's u8s8 sums on CPUs without VNNI
        weights = [numpy_helper.to_array(t) for t in onnx.load(q.int8_path).graph.initializer
                   if t.name.endswith("_quantized") and t.data_type == onnx.TensorProto.INT8]  # not int32 biases
        assert weights and max(int(abs(w.astype(int)).max()) for w in weights) == 64
    else:
        import openvino as ov

        model = ov.Core().read_model(q.int8_path)
        assert "FakeQuantize" in {op.get_type_name() for op in model.get_ops()}
        assert model.get_rt_info(["zoo", "quantization"]).astype(str) == q.method
        assert model.get_rt_info(["zoo", "model"]).astype(str) == "mlp_60_40_20_bn"  # the fp32 IR's metadata
        weights = [op.get_data() for op in model.get_ops()
                   if op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8]
        assert len(weights) == 4 and max(int(abs(w.astype(int)).max()) for w in weights) <= 64  # 7-bit, every layer
    assert q.int8_bytes < q.fp32_bytes / 2 and q.eval_images == 2000
    assert abs(q.int8_top1 - q.fp32_top1) < 1.0 and q.fp32_images_per_s > 0 and q.int8_images_per_s > 0


@pytest.mark.full_data
@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_of_a_model_with_batchnorm_after_a_pool_keeps_its_accuracy(fmt: str, tmp_path: Path) -> None:
    # fastnet_mnist fell to chance (~10%) in int8 when its BatchNorms after max-pools were left to the
    # quantisers: export quantises the folded model.
    require_dataset("mnist", "train")
    suffix = ".xml" if fmt == "openvino" else ".onnx"
    r = export_model("fastnet_mnist", fmt, out=tmp_path / f"f{suffix}", int8=True, calibration=300)
    q = r.int8
    assert q is not None and Path(q.int8_path) == tmp_path / f"f.int8{suffix}" and Path(q.int8_path).exists()
    assert q.eval_images == 10000 and not q.is_sample and q.fp32_top1 > 99.0
    assert abs(q.int8_top1 - q.fp32_top1) <= 0.3, (q.fp32_top1, q.int8_top1)
    assert r.to_dict()["int8"]["top1_change"] == q.int8_top1 - q.fp32_top1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(  # no scratch files left behind
        [f"f{suffix}", f"f.int8{suffix}"] + (["f.bin", "f.int8.bin"] if fmt == "openvino" else []))


@pytest.mark.full_data
@pytest.mark.parametrize("backend", ["openvino-int8", "onnxruntime-int8"])
def test_int8_backends_fold_batchnorm_before_quantising(backend: str) -> None:
    require_dataset("mnist", "train")
    weights = zoo.get_weights("fastnet_mnist.mnist")
    model = zoo.create("fastnet_mnist", weights=weights.name)
    split = dataclasses.replace(load_for_eval("mnist", "test"), indices=None)
    split = dataclasses.replace(split, images=split.images[:2000], labels=split.labels[:2000])
    calibration = calibration_batch("mnist", 300, mean=weights.mean, std=weights.std)
    scores = {}
    for spec in ("eager", backend):
        runner = zoo.runners.prepare(model, spec, input_size=(1, 28, 28), threads=1,
                                      calibration=calibration if spec == backend else None)
        scores[spec] = evaluate(runner, split, batch_size=500, mean=weights.mean, std=weights.std)["top1"]
    assert "folded 6 of 6 BatchNorm layers before quantising" in runner.notes
    assert abs(scores[backend] - scores["eager"]) <= 0.5, scores


@pytest.mark.full_data
@pytest.mark.parametrize("backend", ["openvino-int8", "onnxruntime-int8"])
def test_zoo_eval_int8_backends_calibrate_on_training_images_and_count_parity(backend: str) -> None:
    require_dataset("cifar10", "train")
    result = CliRunner().invoke(cli, ["eval", "-m", "resnet20", "cifar10", "--backend", backend, "--limit", "1000",
                                      "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    e = json.loads(result.output[result.output.index("{"):])
    assert e["setting"] == backend and e["num_images"] == 1000
    assert e["parity"]["disagreeing_images"] <= 30  # int8 moves a few images near a decision boundary, not more
    assert abs(e["parity"]["backend_top1"] - e["parity"]["eager_top1"]) <= 1.5


@pytest.mark.slow
def test_int8_without_training_images_fails_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "zoo", "eval", "-m", "resnet20", "cifar10", "--backend",
                           "openvino-int8", "--data-dir", str(tmp_path), "--no-progress"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "int8 calibration needs the training images" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


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
