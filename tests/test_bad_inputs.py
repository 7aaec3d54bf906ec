"""The bad-input matrix: hostile or faulty checkpoints, datasets, options, training faults and exports.

Every case runs the real command line in-process (``zoo.cli.app.main`` with its error boundary) and
asserts: the exit code, a one-line ``error:`` message matching the case, no traceback, no payload
executed, and no temporary or half-written file left behind. Fixtures are made in the tests.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import signal
import struct
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import zoo
from conftest import SystemPayload, TouchPayload
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
    seconds: float = 60.0  # a bound on the call: a hang (a FIFO, a stalled read, a link cycle) fails the case


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
    torch.save({"model": {}, "optimizer": {}, "epoch": 1, "history": [], "recipe": {},
                "x": SystemPayload(tmp / "marker")},
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


# -- round 3 fixtures: artefacts, archives, images, run folders ----------------------------------------------


def _lenet_pt2(path: Path) -> None:
    from zoo.runners.serialize import to_pt2

    to_pt2(zoo.create("lenet_cifar").eval(), path, input_size=(3, 32, 32))


def _payload_pt2(tmp: Path) -> None:
    """A pt2 whose sample inputs are a pickle payload: ``torch.export.load`` unpickles them without restriction
    when ``weights_only`` refuses them (tests/test_hostile_data.py shows it runs)."""
    _lenet_pt2(tmp / "clean.pt2")
    with zipfile.ZipFile(tmp / "clean.pt2") as src, zipfile.ZipFile(tmp / "evil.pt2", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("sample_inputs/model.pt"):
                buffer = io.BytesIO()
                torch.save(TouchPayload(tmp / "marker"), buffer)
                data = buffer.getvalue()
            dst.writestr(info, data)
    (tmp / "clean.pt2").unlink()


PRINTING_MODULE = """
import torch


class Printing(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("PAYLOAD RAN")
        return torch.zeros(x.shape[0], 10)
"""


def _printing_torchscript(tmp: Path) -> None:
    """A TorchScript file whose forward prints (into --json output, were it run)."""
    import importlib.util
    import warnings

    (tmp / "printing_module.py").write_text(PRINTING_MODULE)
    spec = importlib.util.spec_from_file_location("printing_module", tmp / "printing_module.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(module.Printing()).save(str(tmp / "printing.pt"))
    (tmp / "printing_module.py").unlink()


def _zip_bomb(path: Path) -> None:
    """The zip at ``path`` (a torch file, pt2 or TorchScript) rewritten with one more member whose central
    directory entry declares 3.75 GiB: what a zip bomb declares, without the gigabytes on disk."""
    with zipfile.ZipFile(path) as src:
        members = [(info, src.read(info)) for info in src.infolist()]
    prefix = members[0][0].filename.split("/")[0]
    with zipfile.ZipFile(path, "w") as dst:
        for info, data in members:
            dst.writestr(info, data)
        dst.writestr(f"{prefix}/bomb", b"\x00" * 1024)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, data.rindex(b"PK\x01\x02") + 24, 0xF0000000)  # the last entry's size
    path.write_bytes(bytes(data))


def _bomb_artefact(name: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        if name.endswith(".pt2"):
            _lenet_pt2(tmp / name)
        else:
            torch.save(zoo.create("lenet_cifar").state_dict(), tmp / name)
        _zip_bomb(tmp / name)
    return setup


def _sparse(rel: str, size: int) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        with open(tmp / rel, "wb") as f:
            f.write(struct.pack("<Q", 64) + b"{}")
            f.truncate(size)  # sparse: no disk used
    return setup


def _fifo(rel: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(tmp / rel)
    return setup


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int = 8, height: int = 8, extra: bytes = b"") -> bytes:
    """A hand-made 8-bit grey PNG: a header that may claim any size, extra chunks, one row of pixels."""
    row = b"\x00" + b"\x80" * width
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + extra + _png_chunk(b"IDAT", zlib.compress(row * min(height, 8))) + _png_chunk(b"IEND", b""))


BOMB_PNG = _png(30_000, 30_000)  # 900 M pixels claimed by a file of 100 bytes: Pillow's DecompressionBombError
TEXT_BOMB_PNG = _png(extra=_png_chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"\x00" * (4 << 20))))
ICC_BOMB_PNG = _png(extra=_png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * (4 << 20))))


def _image_folder(image: bytes, name: str = "bad.png") -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        from PIL import Image

        (tmp / "imgs" / "cat").mkdir(parents=True)
        Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp / "imgs" / "cat" / "good.png")
        (tmp / "imgs" / "cat" / name).write_bytes(image)
    return setup


def _float_tiff(tmp: Path) -> None:
    from PIL import Image

    Image.new("F", (8, 8), 0.5).save(tmp / "float.tif")


def _float8_state(tmp: Path) -> None:
    state = {k: v.to(torch.float8_e4m3fn) if v.is_floating_point() else v
             for k, v in zoo.create("lenet_cifar").state_dict().items()}
    save_file(state, str(tmp / "f8.safetensors"))


def _user_folder(tmp: Path) -> None:
    """A folder of the user's own files, some named like temporaries or checkpoints."""
    home = tmp / "home"
    home.mkdir()
    for name in ("notes.txt", ".draft.0123456789ab.tmp.txt", ".photo.safetensors", "model.safetensors", "log.jsonl"):
        (home / name).write_text(f"the user's {name}")


def _lock_symlink(tmp: Path) -> None:
    (tmp / "run").mkdir()
    (tmp / "run" / "run.json").write_text('{"tag": null, "save_dtype": null}')
    (tmp / "elsewhere").mkdir()
    (tmp / "run" / ".lock").symlink_to(tmp / "elsewhere" / "created-by-the-lock")


def _state(tmp: Path, **changes: object) -> None:
    from zoo.train.recipes import resolve_recipe

    recipe = resolve_recipe("mlp_60_40_20_bn.mnist", {"epochs": 1, "train_limit": 256})
    state = {"model": zoo.create("mlp_60_40_20_bn").state_dict(), "optimizer": {"state": {}, "param_groups": []},
             "epoch": 1, "history": [{"epoch": 1, "epoch_s": 1.0}], "recipe": json.loads(recipe.to_json())}
    state.update(changes)
    (tmp / "run").mkdir()
    torch.save(state, tmp / "run" / "state.pt")


def _state_with(**changes: object) -> Callable[[Path], None]:
    return lambda tmp: _state(tmp, **changes)


def _run_dir(recipe: dict[str, object] | None = None, log: str = "", result: object = None) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / "run").mkdir()
        base = {"name": "x", "model": "lenet_cifar", "dataset": "cifar10", "epochs": 3}
        (tmp / "run" / "recipe.json").write_text(json.dumps({**base, **(recipe or {})}))
        (tmp / "run" / "log.jsonl").write_text(log)
        if result is not None:
            (tmp / "run" / "result.json").write_text(json.dumps(result))
    return setup


def _landscape(config: object = None, drop: str = "") -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        data = {"config": {"models": ["vgga", "vgga_bn"], "lrs": [0.001], "steps": 2} if config is None else config,
                "runs": [], "summary": {}, "bn_effect": {}, "hardware": "x", "torch_version": "x", "wall_s": 1.0,
                "complete": True}
        data.pop(drop, None)
        (tmp / "ls.json").write_text(json.dumps(data))
    return setup


def _bad_transfer(tmp: Path) -> None:
    (tmp / "transfer.json").write_text(json.dumps({"config": {"accuracy_levels": "high"}, "runs": {"transfer": {
        "test_top1": [1]}}}))


def _fixed_batch_onnx(tmp: Path) -> None:
    from zoo.runners.serialize import to_onnx

    to_onnx(zoo.create("lenet_cifar", weights="default").eval(), tmp / "b2.onnx", input_size=(3, 32, 32), batch=2)


def _constant_output_onnx(tmp: Path) -> None:
    """An ONNX file whose output is one row of 10 scores whatever the batch."""
    import onnx
    from onnx import TensorProto, helper

    scores = helper.make_tensor("scores", TensorProto.FLOAT, [1, 10], [0.0] * 10)
    graph = helper.make_graph([helper.make_node("Constant", [], ["y"], value=scores)], "constant",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp / "constant.onnx"))


def _garbage_openvino(tmp: Path) -> None:
    (tmp / "m.xml").write_text("<?xml version='1.0'?><net name='x' version='11'><layers><layer id='0' type='Nope'/>"
                               "</layers></net>")
    (tmp / "m.bin").write_bytes(b"")


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
    "weights: garbage .pth": Case(EVAL + W + ["g.pth"], 1, "refused for safety|corrupt",
                                  _write("g.pth", b"\x80\x04garbage")),
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
                                        lambda tmp: _cifar_dir(tmp, pickle.dumps(SystemPayload(tmp / "marker")))
                                        and None),
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
    "option: corrupt pt2 artefact": Case(EVAL + ["--backend", "pt2", "--artefact", "model.pt2", "--trust-artefact"], 1,
                                         "not a readable pt2 artefact", _corrupt_artefact(".pt2")),
    "option: corrupt torchscript artefact": Case(EVAL + ["--backend", "torchscript", "--artefact", "model.pt",
                                                             "--trust-artefact"], 1,
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
    "train: state with a payload": Case(TRAIN + ["--out", "run", "--resume"], 1, "refused for safety",
                                        _state_with_payload, needs_data=True),
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
    "export: --batch 0": Case(["export", "-m", "lenet_cifar", "--batch", "0", "--out", "m.onnx"], 1,
                              "positive integer"),
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
    "viz: weights for a timm architecture": Case(["viz", "filters", "-m", "timm/resnet18", "-w", "cifar10"], 1,
                                                 "built from timm with random weights"),  # fuzzer, issue 36
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
    "analyze: one model": Case(["analyze", "landscape", "--models", "vgga", "--out", "ls"], 1,
                               "models must be two names"),
    # -- results that must not be lost ------------------------------------------------------------------
    "eval: --confusion unwritable": Case(EVAL + ["--confusion", "afile/c.png"], 1, "Not a directory|File exists",
                                         _file_as_parent, stdout=r"top-1 .*%"),
    "eval: NaN weights, strict JSON": Case(EVAL + W + ["nan.safetensors", "--json"], 0, "", _lenet("nan.safetensors",
                                                                                                    nan=1)),
}


ART = EVAL + ["--artefact"]
HUGE = "x" * 2_000_000

# Round 3 (issue 36): each class closed at the boundary where its input enters.
CASES.update({
    # 1. code in artefacts: refused unless trusted
    "artefact: pt2 with a pickle payload": Case(ART + ["evil.pt2"], 1, "can run code when loaded.*--trust-artefact",
                                               _payload_pt2),
    "artefact: pt2 payload, --backend pt2": Case(ART + ["evil.pt2", "--backend", "pt2"], 1, "can run code",
                                                 _payload_pt2),
    "artefact: torchscript that prints": Case(ART + ["printing.pt", "--backend", "torchscript", "--json"], 1,
                                              "torchscript artefact, a format that can run code",
                                              _printing_torchscript),
    # 2. writes outside the intended place
    "train: --out a folder of user files": Case(TRAIN + ["--out", "home"], 1, "is not a zoo run", _user_folder),
    "train: --out a folder of user files, --resume": Case(TRAIN + ["--out", "home", "--resume"], 1,
                                                          "is not a zoo run", _user_folder),
    "train: run lock is a FIFO": Case(TRAIN + ["--out", "run", "--resume"], 1, r"\.lock is not a regular file",
                                      lambda tmp: _run_dir()(tmp) or _fifo("run/.lock")(tmp), seconds=10),
    "status: run lock is a FIFO": Case(["status", "run"], 1, r"\.lock is not a regular file",
                                       lambda tmp: _run_dir()(tmp) or _fifo("run/.lock")(tmp), seconds=10),
    "train: run lock is a symlink": Case(TRAIN + ["--out", "run", "--resume"], 1, r"\.lock is a symlink",
                                         _lock_symlink),
    "export: --out /dev/null": Case(["export", "-m", "lenet_cifar", "--out", "/dev/null"], 1,
                                    "it is a device, and zoo only replaces regular files"),
    "export: --out a FIFO": Case(["export", "-m", "lenet_cifar", "--out", "f.onnx"], 1, "it is a FIFO",
                                 _fifo("f.onnx"), seconds=20),
    "viz: --out /dev/null": Case(["viz", "filters", "-m", "lenet_cifar", "--out", "/dev/null"], 1,
                                 "cannot write a figure|only replaces regular files"),
    # 3. unbounded resources
    "artefact: /dev/zero": Case(ART + ["/dev/zero", "--backend", "onnxruntime"], 1, "is a device", seconds=10),
    "artefact: a FIFO": Case(ART + ["fifo.onnx"], 1, "is a FIFO", _fifo("fifo.onnx"), seconds=10),
    "artefact: zip bomb pt2": Case(ART + ["bomb.pt2", "--trust-artefact"], 1, "would unpack to .* refused before",
                                   _bomb_artefact("bomb.pt2"), seconds=20),
    "artefact: zip bomb torchscript": Case(ART + ["bomb.pt", "--backend", "torchscript", "--trust-artefact"], 1,
                                           "would unpack to", _bomb_artefact("bomb.pt"), seconds=20),
    "weights: zip bomb .pth": Case(EVAL + W + ["bomb.pth"], 1, "would unpack to", _bomb_artefact("bomb.pth"),
                                   seconds=20),
    "weights: 3 GB .safetensors": Case(EVAL + W + ["big.safetensors"], 1, "more than the 2,147,483,648 zoo reads",
                                       _sparse("big.safetensors", 3 << 30), seconds=10),
    "weights: header longer than the file": Case(EVAL + W + ["h.safetensors"], 1, "header claims",
                                                 lambda tmp: _safetensors_with_header(tmp / "h.safetensors",
                                                                                      b"{}" + b" " * 8)
                                                 or (tmp / "h.safetensors").write_bytes(
                                                     struct.pack("<Q", 1 << 40) + b"{}"), seconds=10),
    "weights: a FIFO": Case(EVAL + W + ["w.safetensors"], 1, "is a FIFO", _fifo("w.safetensors"), seconds=10),
    "predict: a FIFO": Case(["predict", "-m", "lenet_cifar", "-w", "lenet.safetensors", "p.png"], 1, "is a FIFO",
                            lambda tmp: _fifo("p.png")(tmp) or _lenet_file(tmp) and None, seconds=20),
    # 4-5. images: every Pillow failure one line naming the file
    "predict: decompression bomb": Case(["predict", "-m", "lenet_cifar", "-w", "lenet.safetensors", "bomb.png"], 1,
                                        "cannot read image bomb.png: DecompressionBombError",
                                        lambda tmp: _write("bomb.png", BOMB_PNG)(tmp) or _lenet_file(tmp) and None),
    "predict: text chunk bomb": Case(["predict", "-m", "lenet_cifar", "-w", "lenet.safetensors", "t.png"], 1,
                                     "cannot read image t.png: ValueError",
                                     lambda tmp: _write("t.png", TEXT_BOMB_PNG)(tmp) or _lenet_file(tmp) and None),
    "predict: ICC chunk bomb": Case(["predict", "-m", "lenet_cifar", "-w", "lenet.safetensors", "i.png"], 1,
                                    "cannot read image i.png",
                                    lambda tmp: _write("i.png", ICC_BOMB_PNG)(tmp) or _lenet_file(tmp) and None),
    "predict: float image": Case(["predict", "-m", "lenet_cifar", "-w", "lenet.safetensors", "float.tif"], 1,
                                 "float.tif is a 32-bit float image",
                                 lambda tmp: _float_tiff(tmp) or _lenet_file(tmp) and None),
    "eval: image folder with a bomb": Case(["eval", "-m", "lenet_cifar", "imgs", "-w", "lenet.safetensors",
                                            "--no-progress"], 1, "cannot read image .*bad.png: DecompressionBomb",
                                           lambda tmp: _image_folder(BOMB_PNG)(tmp) or _lenet_file(tmp) and None),
    "eval: image folder with a text bomb": Case(["eval", "-m", "lenet_cifar", "imgs", "-w", "lenet.safetensors",
                                                 "--no-progress"], 1, "cannot read image .*bad.png",
                                                lambda tmp: _image_folder(TEXT_BOMB_PNG)(tmp) or _lenet_file(tmp)
                                                and None),
    "viz: decompression bomb": Case(["viz", "activations", "-m", "lenet_cifar", "--image", "bomb.png", "--out",
                                     "a.png"], 1, "cannot read image bomb.png: DecompressionBomb",
                                    _write("bomb.png", BOMB_PNG)),
    "viz: image is a FIFO": Case(["viz", "activations", "-m", "lenet_cifar", "--image", "v.png", "--out", "a.png"], 1,
                                 "is a FIFO", _fifo("v.png"), seconds=20),
    # 5. tracebacks that became one line
    "weights: float8 tensors": Case(EVAL + W + ["f8.safetensors"], 1, "float type zoo does not load", _float8_state),
    "artefact: output ignores the batch": Case(ART + ["constant.onnx", "-b", "4"], 1,
                                               "does not follow the input", _constant_output_onnx),
    "artefact: openvino that does not parse": Case(  # the reason, not only OpenVINO's "Exception from src/..."
        ART + ["m.xml", "--backend", "openvino"], 1, r"not a readable openvino artefact .*RuntimeError: \w[^:]*: \w",
        _garbage_openvino),
    "train: state.pt epoch is a string": Case(TRAIN + ["--out", "run", "--resume"], 1, "field 'epoch' is '1'",
                                              _state_with(epoch="1"), needs_data=True),
    "train: state.pt epoch out of range": Case(TRAIN + ["--out", "run", "--resume"], 1, "field 'epoch' is 99",
                                               _state_with(epoch=99, history=[]), needs_data=True),
    "train: state.pt history of strings": Case(TRAIN + ["--out", "run", "--resume"], 1, r"history\[0\]",
                                               _state_with(history=["x"]), needs_data=True),
    "train: state.pt model of strings": Case(TRAIN + ["--out", "run", "--resume"], 1,
                                             "field 'model' is not a state dict", _state_with(model={"w": "x"}),
                                             needs_data=True),
    "train: state.pt wrong shapes": Case(TRAIN + ["--out", "run", "--resume"], 1, "its 'model' entry does not fit",
                                         _state_with(model={"fc.weight": torch.zeros(1)}), needs_data=True),
    "status: epochs a string": Case(["status", "run"], 1, "recipe.json cannot be read as a zoo run file",
                                    _run_dir({"epochs": "3"})),
    "status: epochs negative": Case(["status", "run"], 1, "field 'epochs' is -3", _run_dir({"epochs": -3})),
    "status: name a number": Case(["status", "run"], 1, "field 'name' is 7", _run_dir({"name": 7})),
    "status: epoch_s a string": Case(["status", "run"], 1, r"log.jsonl \(line 1\) .*field 'epoch_s' is '2'",
                                     _run_dir(log='{"epoch": 1, "epoch_s": "2"}\n')),
    "status: test_top1 a string": Case(["status", "run"], 1, "field 'test_top1' is 'high'",
                                       _run_dir(log='{"epoch": 1, "epoch_s": 2, "test_top1": "high"}\n')),
    "status: test_s NaN": Case(["status", "run"], 1, "field 'test_s' is nan",
                               _run_dir(log='{"epoch": 1, "epoch_s": 2, "test_s": NaN}\n')),
    "status: result.json metrics a list": Case(["status", "run"], 1, "field 'metrics' is",
                                               _run_dir(log='{"epoch": 1, "epoch_s": 2}\n', result={"metrics": [1]})),
    "status: result.json top1 a string": Case(["status", "run"], 1, "field 'top1' is 'x'",
                                              _run_dir(result={"metrics": {"top1": "x"}})),
    "status: recipe.json is a FIFO": Case(["status", "run"], 1, "is a FIFO|not a zoo training run",
                                          lambda tmp: (tmp / "run").mkdir() or _fifo("run/recipe.json")(tmp),
                                          seconds=10),
    "bench: -b beyond any memory": Case(["bench", "-m", "lenet_cifar", "-b", "100000000", "--backend", "eager"], 1,
                                        r"batch sizes must be in 1\.\.65,536"),
    "analyze: --from-json config a list": Case(["analyze", "landscape", "--from-json", "ls.json"], 1,
                                               "ls.json is not a landscape.json written by zoo: field 'config'",
                                               _landscape(config=[1])),
    "analyze: --from-json bad config value": Case(["analyze", "landscape", "--from-json", "ls.json"], 1,
                                                  "its config", _landscape(config={"steps": "many"})),
    "analyze: --from-json unknown config key": Case(["analyze", "landscape", "--from-json", "ls.json"], 1,
                                                    "its config", _landscape(config={"warp": 9})),
    "analyze: --from-json without config": Case(["analyze", "landscape", "--from-json", "ls.json"], 1,
                                                "ls.json is not a landscape.json", _landscape(drop="config")),
    "analyze: --from-json not JSON": Case(["analyze", "landscape", "--from-json", "ls.json"], 1,
                                          "ls.json cannot be read as", _write("ls.json", b"{oops")),
    "analyze: transfer --from-json bad levels": Case(["analyze", "transfer", "--from-json", "transfer.json"], 1,
                                                     "transfer.json is not a transfer.json", _bad_transfer),
    "analyze: transfer --from-json empty": Case(["analyze", "transfer", "--from-json", "transfer.json"], 1,
                                                "transfer.json is not a transfer.json|cannot be read",
                                                _write("transfer.json", b"{}")),
    "debug: ZOO_DEBUG=false keeps one line": Case(["info", "vgg99"], 1, "unknown model 'vgg99'",
                                                  env={"ZOO_DEBUG": "false"}),
    "debug: ZOO_DEBUG=no keeps one line": Case(["info", "vgg99"], 1, "unknown model", env={"ZOO_DEBUG": "no"}),
    # 6. messages
    "message: a 2 MB model name": Case(["info", HUGE], 1, r"unknown model 'xxx.*\(\d[\d,]* more characters\)$"),
    "message: a 2 MB dataset name": Case(["eval", "-m", "lenet_cifar", HUGE], 1, r"more characters\)$"),
    "message: a 2 MB tag": Case(TRAIN + ["--tag", HUGE, "--out", "r"], 1, "invalid tag"),
})


class Hang(BaseException):
    """Raised by the alarm when a case runs past its bound: a BaseException, so no error boundary can swallow it."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang()


def _run(case: Case, tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
         ) -> tuple[int, str, str]:
    monkeypatch.chdir(tmp)
    prog = "zoo-eval" if case.entry is eval_main else "zoo"
    monkeypatch.setattr(sys, "argv", [prog, *case.argv])
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    code = 0
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, case.seconds)
    try:
        case.entry()
    except SystemExit as e:
        code = int(e.code or 0)
    except Hang:
        pytest.fail(f"the call ran past its {case.seconds:g} s bound (a hang)")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    out, err = capsys.readouterr()
    return code, out, err


def _files(tmp: Path) -> dict[Path, str]:
    """The sha256 of every regular file under ``tmp`` (FIFOs and links are not read)."""
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp.rglob("*")
            if not p.is_symlink() and p.is_file() and p.stat().st_size < (64 << 20)}


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
    contents = _files(tmp_path)
    started = time.monotonic()
    code, out, err = _run(case, tmp_path, monkeypatch, capsys)
    assert time.monotonic() - started < case.seconds
    assert not (tmp_path / "marker").exists(), "a payload ran"
    assert "PAYLOAD RAN" not in out + err, "an artefact's code ran"
    assert "Traceback" not in err + out
    assert code == case.code, f"exit {code}, stderr: {err[-1500:]}"
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if case.code:
        assert len(errors) == 1, err[-3000:]
        assert re.search(case.message, errors[0]), errors[0][:3000]
        assert len(errors[0]) < 1300, f"an error line of {len(errors[0]):,} characters"
        assert not [line for line in err.splitlines() if line.strip() and not line.startswith(("error:", "WARNING",
                                                                                               "INFO"))], err[-3000:]
    else:
        assert not errors, err
    if case.stdout:
        assert re.search(case.stdout, out), out
    stray = [p for p in set(tmp_path.rglob("*")) - before if p.name.startswith(".") and p.name != ".lock"]
    assert not stray, f"temporary files left behind: {stray}"
    after = _files(tmp_path)
    changed = [p for p, digest in contents.items() if after.get(p) != digest]
    assert not changed, f"files there before were changed or removed: {changed}"
    assert not (tmp_path / "elsewhere" / "created-by-the-lock").exists(), "a file was created outside the run"
    if name.startswith("export:"):
        assert not [p for p in tmp_path.glob("*.onnx") if p.is_file()], "a failed export left a file"


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
    assert len(CASES) >= 140
