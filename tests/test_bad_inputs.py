"""The bad-input matrix: hostile or faulty checkpoints, datasets, options, training faults and exports.

Every case runs the real command line in-process (``zoo.cli.main`` with its error boundary) and
asserts: the exit code, a one-line ``error:`` message matching the case, no traceback, no payload
executed, and no temporary or half-written file left behind. Fixtures are made in the tests.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import SystemPayload

import zoo
from zoo.cli import eval_main, main
from zoo.weights import save_checkpoint


def _safetensors_with_header(path: Path, header: bytes, body: bytes = b"") -> None:
    path.write_bytes(struct.pack("<Q", len(header)) + header + body)


def _lenet_file(tmp: Path, name: str = "lenet.safetensors", **changes: float) -> Path:
    model = zoo.create("lenet_cifar")
    state = model.state_dict()
    if "nan" in changes:
        state["features.0.weight"][0, 0, 0, 0] = float("nan")
    path = tmp / name
    save_checkpoint(state, path, arch="lenet_cifar", dataset="cifar10")
    return path


def _cifar_dir(tmp: Path, test_batch: bytes | None = None) -> Path:
    folder = tmp / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batch = {b"labels": rng.integers(0, 10, 8).tolist(), b"data": rng.integers(0, 256, (8, 3072), dtype=np.uint8)}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": []}, protocol=2))
    if test_batch is not None:
        (folder / "test_batch").write_bytes(test_batch)
    return tmp / "data"


@dataclass
class Case:
    argv: list[str]
    code: int
    message: str  # a regular expression the one-line error must match ("" for a success)
    setup: Callable[[Path], None] = lambda tmp: None
    entry: Callable[[], None] = main
    needs_data: bool = False
    stdout: str = ""  # a regular expression the output must match (for cases that print, then fail)
    env: dict[str, str] = field(default_factory=dict)


def _write(rel: str, data: bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(data)
    return setup


def _lenet(name: str = "lenet.safetensors", **changes: float) -> Callable[[Path], None]:
    return lambda tmp: _lenet_file(tmp, name, **changes) and None


def _pickled_state(tmp: Path) -> None:
    model = zoo.create("lenet_cifar")
    torch.save({"state_dict": model.state_dict(), "x": SystemPayload(tmp / "marker")}, tmp / "evil.pth")


def _int8_state(tmp: Path) -> None:
    state = {k: (v * 100).to(torch.int8) if v.is_floating_point() else v
             for k, v in zoo.create("lenet_cifar").state_dict().items()}
    save_file(state, str(tmp / "int8.safetensors"))


def _missing_keys(tmp: Path) -> None:
    state = zoo.create("lenet_cifar").state_dict()
    state.pop("fc3.weight", None) or state.pop(next(iter(state)))
    torch.save(state, tmp / "partial.pth")


def _resnet20_file(tmp: Path) -> None:
    save_checkpoint(zoo.create("resnet20"), tmp / "r20.safetensors", arch="resnet20", dataset="cifar10")


def _file_as_parent(tmp: Path) -> None:
    (tmp / "afile").write_text("not a folder")


def _nested(tmp: Path) -> None:
    _safetensors_with_header(tmp / "nested.safetensors", b"[" * 100_000 + b"]" * 100_000)


def _damaged_state(tmp: Path) -> None:
    run = tmp / "run"
    run.mkdir()
    (run / "state.pt").write_bytes(b"PK\x03\x04 truncated zip")


def _state_with_payload(tmp: Path) -> None:
    run = tmp / "run"
    run.mkdir()
    torch.save({"model": {}, "optimizer": {}, "epoch": 1, "history": [], "recipe": {}, "x": SystemPayload(tmp / "marker")},
               run / "state.pt")


def _run_json_bad_dtype(tmp: Path) -> None:
    (tmp / "run").mkdir()
    (tmp / "run" / "run.json").write_text('{"tag": null, "save_dtype": "int4"}')


def _run_files(log: str) -> Callable[[Path], None]:
    """A run directory with a valid recipe.json and the given log."""
    def setup(tmp: Path) -> None:
        (tmp / "run").mkdir()
        (tmp / "run" / "recipe.json").write_text(json.dumps({"name": "x", "model": "lenet_cifar", "epochs": 3}))
        (tmp / "run" / "log.jsonl").write_text(log)
    return setup


def _corrupt_artefact(suffix: str) -> Callable[[Path], None]:
    return _write(f"model{suffix}", b"this is not a model file at all")


def _mnist_onnx(tmp: Path) -> None:
    from zoo.deploy import export_model

    export_model("mlp_60_40_20_bn", "onnx", out=tmp / "mnist.onnx")


def _text_image(tmp: Path) -> None:
    (tmp / "image.png").write_text("not an image")


TRAIN = ["train", "-r", "mlp_60_40_20_bn.mnist", "--no-progress", "--set", "epochs=1", "--set", "train_limit=256"]
EVAL = ["eval", "-m", "lenet_cifar", "cifar10", "--no-progress", "--limit", "16"]
W = ["-w"]

CASES: dict[str, Case] = {
    # -- checkpoints --------------------------------------------------------------------------------------
    "weights: no such file": Case(EVAL + W + ["nothere.safetensors"], 1, "no checkpoint file at nothere"),
    "weights: empty file": Case(EVAL + W + ["empty.safetensors"], 1, "corrupt or truncated",
                                _write("empty.safetensors", b"")),
    "weights: truncated header": Case(EVAL + W + ["t.safetensors"], 1, "corrupt or truncated",
                                      _write("t.safetensors", struct.pack("<Q", 1000) + b"{}")),
    "weights: header not JSON": Case(EVAL + W + ["j.safetensors"], 1, "corrupt or truncated",
                                     lambda tmp: _safetensors_with_header(tmp / "j.safetensors", b"{not json")),
    "weights: header is a list": Case(EVAL + W + ["l.safetensors"], 1, "corrupt or truncated",
                                      lambda tmp: _safetensors_with_header(tmp / "l.safetensors", b"[1, 2]")),
    "weights: deeply nested header": Case(EVAL + W + ["nested.safetensors"], 1, "corrupt or truncated", _nested),
    "weights: pickle payload": Case(EVAL + W + ["evil.pth"], 1, "refused for safety", _pickled_state),
    "weights: garbage .pth": Case(EVAL + W + ["g.pth"], 1, "refused for safety|corrupt", _write("g.pth", b"\x80\x04garbage")),
    "weights: other architecture": Case(EVAL + W + ["r20.safetensors"], 1, "resnet20", _resnet20_file),
    "weights: missing keys": Case(EVAL + W + ["partial.pth"], 1, "missing keys", _missing_keys),
    "weights: int8 tensors": Case(EVAL + W + ["int8.safetensors"], 1, "integer tensors where", _int8_state),
    "weights: unknown name": Case(EVAL + W + ["lenet_cifar.imagenet"], 1, "unknown|not found"),
    "weights: a folder": Case(EVAL + W + ["."], 1, "not a file|folder|directory|not found|unknown"),
    "weights: unknown suffix": Case(EVAL + W + ["w.txt"], 1, "format|suffix|not found|unknown",
                                    _write("w.txt", b"hello")),
    # -- datasets -------------------------------------------------------------------------------------------
    "data: unknown dataset": Case(["eval", "-m", "lenet_cifar", "imagenet"], 1, "unknown dataset"),
    "data: absent, --no-sample": Case(EVAL + ["--data-dir", "nodata", "--no-sample"], 1, "not found: expected"),
    "data: data dir is a file": Case(EVAL + ["--data-dir", "afile", "--no-sample"], 2, "is a file|not a directory",
                                     _file_as_parent),
    "data: garbage batch file": Case(EVAL + ["--data-dir", "data"], 1, "not a readable CIFAR batch file",
                                     lambda tmp: _cifar_dir(tmp, b"garbage") and None),
    "data: payload in batch file": Case(EVAL + ["--data-dir", "data"], 1, "not a plain CIFAR batch file",
                                        lambda tmp: _cifar_dir(tmp, pickle.dumps(SystemPayload(tmp / "marker"))) and None),
    "data: batch holds a list": Case(EVAL + ["--data-dir", "data"], 1, "holds a list",
                                     lambda tmp: _cifar_dir(tmp, pickle.dumps([1])) and None),
    "data: fails verification": Case(EVAL + ["--data-dir", "data"], 1, "failed verification",
                                     lambda tmp: _cifar_dir(tmp) and None),
    "data: unknown split": Case(EVAL + ["--split", "val"], 2, "val"),
    "data: truncated MNIST": Case(["eval", "-m", "mlp_60_40_20_bn", "mnist", "--data-dir", "m", "--no-progress"], 1,
                                  "mnist|MNIST", lambda tmp: [_write(f"m/MNIST/raw/{n}", b"\x00\x00\x08")(tmp) for n in
                                                              ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]
                                  and None),
    # -- options --------------------------------------------------------------------------------------------
    "option: --device nonsense": Case(EVAL + ["--device", "nonsense"], 1, "invalid device 'nonsense'"),
    "option: --device cuda:abc": Case(EVAL + ["--device", "cuda:abc"], 1, "invalid device 'cuda:abc'"),
    "option: --device cuda without one": Case(EVAL + ["--device", "cuda"], 1, "no CUDA device"),
    "option: train --device nonsense": Case(TRAIN + ["--device", "gpu0", "--out", "r"], 1, "invalid device 'gpu0'"),
    "option: --batch-size 0": Case(EVAL + ["--batch-size", "0"], 2, "batch-size"),
    "option: --limit 0": Case(EVAL + ["--limit", "0"], 2, "limit"),
    "option: --mean nan": Case(EVAL + ["--mean", "nan,0,0"], 1, "--mean must be finite"),
    "option: --std 0": Case(EVAL + ["--std", "0,0,0"], 1, "--std finite and positive"),
    "option: --std -1": Case(EVAL + ["--std", "-1,1,1"], 1, "--std finite and positive"),
    "option: --mean wrong count": Case(EVAL + ["--mean", "0.5,0.5"], 1, "need 3 values"),
    "option: --mean not numbers": Case(EVAL + ["--mean", "a,b,c"], 2, "comma-separated numbers"),
    "option: unknown backend": Case(EVAL + ["--backend", "tensorrt-ish"], 1, "backend"),
    "option: --artefact with eager": Case(EVAL + ["--backend", "eager", "--artefact", "model.onnx"], 1,
                                          "--artefact needs --backend", _corrupt_artefact(".onnx")),
    "option: corrupt onnx artefact": Case(EVAL + ["--backend", "onnxruntime", "--artefact", "model.onnx"], 1,
                                          "not a readable onnx artefact", _corrupt_artefact(".onnx")),
    "option: corrupt pt2 artefact": Case(EVAL + ["--backend", "pt2", "--artefact", "model.pt2"], 1,
                                         "not a readable pt2 artefact", _corrupt_artefact(".pt2")),
    "option: corrupt torchscript artefact": Case(EVAL + ["--backend", "torchscript", "--artefact", "model.pt"], 1,
                                                 "not a readable torchscript artefact", _corrupt_artefact(".pt")),
    "option: artefact of another model": Case(EVAL + ["--backend", "onnxruntime", "--artefact", "mnist.onnx"], 1,
                                              "cannot take cifar10 input", _mnist_onnx),
    "option: unknown model": Case(["eval", "-m", "resnet21", "cifar10"], 1, "unknown model 'resnet21'"),
    "option: unknown command": Case(["evaluate"], 2, "No such command"),
    "option: zoo-eval unknown option": Case(["-m", "lenet_cifar", "cifar10", "--bogus"], 2, "--bogus",
                                            entry=eval_main),
    # -- training -------------------------------------------------------------------------------------------
    "train: unknown recipe": Case(["train", "-r", "resnet20.imagenet"], 1, "unknown recipe"),
    "train: unknown --set key": Case(TRAIN + ["--set", "lr_max=1"], 1, "unknown recipe key 'lr_max'"),
    "train: --set without =": Case(TRAIN + ["--set", "epochs"], 1, "key=value"),
    "train: --set epochs=abc": Case(TRAIN + ["--set", "epochs=abc"], 1, "expected int"),
    "train: --set train_limit=-100": Case(TRAIN + ["--set", "train_limit=-100"], 1, "train_limit must be >= 0"),
    "train: --set lr=0": Case(TRAIN + ["--set", "lr=0"], 1, "lr must be > 0"),
    "train: --set optimizer=lbfgs": Case(TRAIN + ["--set", "optimizer=lbfgs"], 1, "optimizer must be one of"),
    "train: --set epochs=0": Case(TRAIN + ["--set", "epochs=0"], 1, "epochs must be >= 1"),
    "train: --tag with a path": Case(TRAIN + ["--tag", "x/../../escaped", "--out", "r"], 1, "invalid tag"),
    "train: --max-minutes 0": Case(TRAIN + ["--max-minutes", "0", "--out", "r"], 1, "max_minutes must be > 0"),
    "train: --threads 0": Case(TRAIN + ["--threads", "0"], 2, "threads"),
    "train: --out is a file": Case(TRAIN + ["--out", "afile"], 2, "is a file",
                                   _file_as_parent),
    "train: damaged state": Case(TRAIN + ["--out", "run", "--resume"], 1, "cannot be resumed: it is damaged",
                                 _damaged_state, needs_data=True),
    "train: state with a payload": Case(TRAIN + ["--out", "run", "--resume"], 1, "refused for safety", _state_with_payload,
                                        needs_data=True),
    "train: existing run without --resume": Case(TRAIN + ["--out", "run"], 1, "already holds a run", _damaged_state),
    "train: batch larger than the data": Case(TRAIN + ["--set", "batch_size=100000", "--out", "r"], 1,
                                              "exceeds the 256 training images", needs_data=True),
    "train: --save-dtype from a damaged run.json": Case(TRAIN + ["--out", "run", "--resume"], 1,
                                                        "records an unknown save_dtype", _run_json_bad_dtype),
    "train: run.json not options": Case(TRAIN + ["--out", "run", "--resume"], 1, "run.json cannot be read as a zoo "
                                        "run file: not the run's options", _write("run/run.json", b"[1]")),
    "status: not a run directory": Case(["status", "."], 1, r"is not a zoo training run \(no recipe.json\)"),
    "status: missing directory": Case(["status", "nowhere"], 2, "does not exist"),
    "status: no runs under ./runs": Case(["status"], 1, r"no training runs under runs/"),
    "status: damaged log": Case(["status", "run"], 1, "log.jsonl cannot be read as a zoo run file",
                                _run_files('{"epoch": 1, "epoch_s": 2.0}\n{"epoch": 2, "epo')),
    "status: log line not an epoch": Case(["status", "run"], 1, "a line is not an epoch record",
                                          _run_files('{"epoch": 1, "epoch_s": 2.0}\n[1, 2]\n')),
    "status: recipe.json not a recipe": Case(["status", "run"], 1, "recipe.json cannot be read as a zoo run file",
                                             _write("run/recipe.json", b'"just a string"')),
    # -- export ---------------------------------------------------------------------------------------------
    "export: --batch 0": Case(["export", "-m", "lenet_cifar", "--batch", "0", "--out", "m.onnx"], 1, "positive integer"),
    "export: --batch abc": Case(["export", "-m", "lenet_cifar", "--batch", "abc", "--out", "m.onnx"], 2,
                                "positive integer"),
    "export: --opset 1": Case(["export", "-m", "lenet_cifar", "--opset", "1", "--out", "m.onnx"], 1,
                              "ONNX opsets run from 7"),
    "export: --opset 999": Case(["export", "-m", "lenet_cifar", "--opset", "999", "--out", "m.onnx"], 1,
                                "ONNX opsets run from 7"),
    "export: --opset with pt2": Case(["export", "-m", "lenet_cifar", "--format", "pt2", "--opset", "18"], 1,
                                     "applies to --format onnx"),
    "export: unknown format": Case(["export", "-m", "lenet_cifar", "--format", "tflite"], 2, "tflite"),
    "export: --int8 with pt2": Case(["export", "-m", "lenet_cifar", "--format", "pt2", "--int8"], 2, "--int8"),
    "export: parent is a file": Case(["export", "-m", "lenet_cifar", "--out", "afile/m.onnx"], 1,
                                     "Not a directory|File exists", _file_as_parent),
    # -- viz, bench, listings ------------------------------------------------------------------------------
    "viz: --out parent is a file": Case(["viz", "filters", "-m", "lenet_cifar", "--out", "afile/f.png"], 1,
                                        "Not a directory|File exists", _file_as_parent),
    "viz: image that is not one": Case(["viz", "activations", "-m", "lenet_cifar", "--image", "image.png", "--out",
                                        "a.png"], 1, "image", _text_image),
    "viz: missing image": Case(["viz", "activations", "-m", "lenet_cifar", "--image", "none.png"], 2, "none.png"),
    "viz: --out with no file name": Case(["viz", "filters", "-m", "lenet_cifar", "--out", ""], 1,
                                         "cannot write a figure to"),
    "viz: --out not a figure format": Case(["viz", "filters", "-m", "lenet_cifar", "--out", "f.onnx"], 1,
                                           "cannot write a figure as 'f.onnx'"),
    "train: --threads huge": Case(TRAIN + ["--threads", "99999999999999999999"], 2, "threads"),
    "bench: --threads huge": Case(["bench", "-m", "lenet_cifar", "--threads", "99999999999999999999"], 1,
                                  "thread counts must be in 1..1024"),
    "bench: --batch-size 0": Case(["bench", "-m", "lenet_cifar", "--batch-size", "0"], 1, "batch"),
    "bench: --device nonsense": Case(["bench", "-m", "lenet_cifar", "--device", "nonsense"], 1,
                                     "unsupported device 'nonsense'"),
    "bench: unknown model": Case(["bench", "-m", "resnet21"], 1, "unknown model"),
    "info: unknown model": Case(["info", "vgg99"], 1, "unknown model 'vgg99'"),
    "list: unknown dataset": Case(["list", "--dataset", "imagenet"], 1, "unknown dataset"),
    "recipes: unknown": Case(["recipes", "fast"], 1, "unknown recipe"),
    "analyze: one model": Case(["analyze", "landscape", "--models", "vgga", "--out", "ls"], 1, "models must be two names"),
    # -- results that must not be lost ------------------------------------------------------------------
    "eval: --confusion unwritable": Case(EVAL + ["--confusion", "afile/c.png"], 1, "Not a directory|File exists",
                                         _file_as_parent, stdout=r"top-1 .*%"),
    "eval: NaN weights, strict JSON": Case(EVAL + W + ["nan.safetensors", "--json"], 0, "", _lenet("nan.safetensors",
                                                                                                    nan=1)),
}


def _run(case: Case, tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
         ) -> tuple[int, str, str]:
    monkeypatch.chdir(tmp)
    prog = "zoo-eval" if case.entry is eval_main else "zoo"
    monkeypatch.setattr(sys, "argv", [prog, *case.argv])
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    code = 0
    try:
        case.entry()
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("restore_threads")  # `zoo train --threads` sets torch's for the whole process
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[name]
    if case.needs_data and not os.environ.get("ZOO_DATA"):
        pytest.skip("needs ZOO_DATA (MNIST)")
    case.setup(tmp_path)
    capsys.readouterr()
    before = {p for p in tmp_path.rglob("*")}
    code, out, err = _run(case, tmp_path, monkeypatch, capsys)
    assert not (tmp_path / "marker").exists(), "a payload ran"
    assert "Traceback" not in err + out
    assert code == case.code, f"exit {code}, stderr: {err[-1500:]}"
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if case.code:
        assert len(errors) == 1, err
        assert re.search(case.message, errors[0]), errors[0]
        assert not [line for line in err.splitlines() if line.strip() and not line.startswith(("error:", "WARNING",
                                                                                               "INFO"))], err
    else:
        assert not errors, err
    if case.stdout:
        assert re.search(case.stdout, out), out
    stray = [p for p in set(tmp_path.rglob("*")) - before if p.name.startswith(".") and not p.name == ".lock"]
    assert not stray, f"temporary files left behind: {stray}"
    if name.startswith("export:"):
        assert not (tmp_path / "m.onnx").exists() and not list(tmp_path.glob("*.onnx")), "a failed export left a file"


def test_nan_weights_warn_and_json_is_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
                                             ) -> None:
    _lenet_file(tmp_path, "nan.safetensors", nan=1)
    code, out, err = _run(CASES["eval: NaN weights, strict JSON"], tmp_path, monkeypatch, capsys)
    assert code == 0
    assert any("NaN or Inf values" in r.message and r.levelname == "WARNING" for r in caplog.records)
    data = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert data["loss"] is None or isinstance(data["loss"], float)


def test_matrix_is_large_enough() -> None:
    assert len(CASES) >= 60
