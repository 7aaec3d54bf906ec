"""Hostile CIFAR data files: a pickle payload in a batch file never runs, through any command that reads data.

The fixtures are CIFAR-10 folders made here: valid batch files of random images (so the format is
right) with one file replaced by a pickle whose ``__reduce__`` would create a marker file (the
stand-in for arbitrary code). Every path that reads CIFAR (the API, ``zoo-eval``, ``zoo eval``,
``zoo train``, ``zoo export --int8`` calibration and ``zoo analyze landscape``) must refuse it with
a one-line error naming the file, and the marker must never appear.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from test_bad_inputs import PRINTING_MODULE, _fixed_batch_onnx, _payload_pt2, _printing_torchscript

import zoo
from conftest import SystemPayload, TouchPayload
from zoo.data.cifar_files import UnsafeDataFileError, read_batch
from zoo.data.datasets import load_split
from zoo.errors import DatasetError, ZooError

FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _batch(n: int, seed: int) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"made by the test", b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(n)]}


def _cifar_root(tmp_path: Path, n: int = 20) -> Path:
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate(FILES):
        (folder / name).write_bytes(pickle.dumps(_batch(n, i), protocol=2))
    meta = {b"label_names": [b"c%d" % i for i in range(10)], b"num_cases_per_batch": n, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return tmp_path / "data"


def _poison(root: Path, name: str, payload: object, *, inside: bool = True) -> None:
    """Replace ``name`` with a pickle that runs ``payload``: inside a valid-looking batch dict, or alone."""
    obj: object = payload
    if inside:
        obj = _batch(20, 99)
        obj[b"filenames"] = [payload]  # type: ignore[index]
    (root / "cifar-10-batches-py" / name).write_bytes(pickle.dumps(obj, protocol=2))


@pytest.fixture(params=[TouchPayload, SystemPayload], ids=["touch", "os.system"])
def payload_cls(request: pytest.FixtureRequest) -> type:
    return request.param


def test_payload_is_real(tmp_path: Path, payload_cls: type) -> None:
    canary = tmp_path / "canary"
    pickle.loads(pickle.dumps(payload_cls(canary)))  # plain unpickling runs it
    assert canary.exists()


def test_clean_fixture_loads_and_matches(tmp_path: Path) -> None:
    root = _cifar_root(tmp_path)
    split = load_split("cifar10", "test", data_dir=root, verify=False)
    want = _batch(20, 5)
    assert split.images.shape == (20, 3, 32, 32)
    assert np.array_equal(split.images.numpy().reshape(20, 3072), want[b"data"])
    assert split.labels.tolist() == want[b"labels"]


@pytest.mark.parametrize("inside", [True, False], ids=["in-batch-dict", "bare"])
@pytest.mark.parametrize("name", ["test_batch", "data_batch_3"])
def test_api_refuses_payload_without_running_it(tmp_path: Path, payload_cls: type, inside: bool, name: str) -> None:
    root = _cifar_root(tmp_path)
    marker = tmp_path / "marker"
    _poison(root, name, payload_cls(marker), inside=inside)
    split = "test" if name == "test_batch" else "train"
    for verify in (True, False):  # --no-verify must not open the door either
        with pytest.raises(UnsafeDataFileError, match=f"{name} is not a plain CIFAR batch file"):
            load_split("cifar10", split, data_dir=root, verify=verify)
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable CIFAR batch file"),
    (b"\x80\x02}q\x00(U\x04data", "not a readable CIFAR batch file"),  # truncated
    (pickle.dumps([1, 2, 3], protocol=2), "holds a list, not a dict"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}), "not a uint8 array"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "not as many labels"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}),
     r"labels are not integers in \[0, 10\)"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), "has no 'labels' entry"),
])
def test_malformed_batch_files_are_one_line_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as info:
        read_batch(path, "labels", 10)
    assert "\n" not in str(info.value)


def _cli(args: list[str], root: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZOO_DATA": str(root)}
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


COMMANDS = {
    "zoo eval": (["eval", "-m", "lenet_cifar", "cifar10"], "test_batch"),
    "zoo eval --no-verify": (["eval", "-m", "lenet_cifar", "cifar10", "--no-verify"], "test_batch"),
    "zoo train": (["train", "-r", "lenet_cifar.cifar10", "--set", "epochs=1", "--out", "run"], "data_batch_1"),
    "zoo export --int8": (["export", "-m", "lenet_cifar", "--int8", "--out", "m.onnx"], "test_batch"),
    "zoo analyze landscape": (["analyze", "landscape", "--steps", "2", "--train-images", "64", "--out", "ls"],
                              "data_batch_1"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_payload(tmp_path: Path, command: str) -> None:
    args, poisoned = COMMANDS[command]
    root = _cifar_root(tmp_path)
    marker = tmp_path / "marker"
    _poison(root, poisoned, SystemPayload(marker))
    proc = _cli(args, root, tmp_path)
    assert not marker.exists(), f"{command}: the payload ran"
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("error: ") and f"{poisoned} is not a plain CIFAR batch file" in lines[-1]


def test_zoo_eval_entry_point_refuses_payload(tmp_path: Path) -> None:
    root = _cifar_root(tmp_path)
    marker = tmp_path / "marker"
    _poison(root, "test_batch", SystemPayload(marker))
    code = ("import sys; from zoo.cli import eval_main; "
            "sys.argv = ['zoo-eval', '-m', 'lenet_cifar', 'cifar10']; eval_main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "ZOO_DATA": str(root)})
    assert not marker.exists()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "test_batch is not a plain CIFAR batch file" in proc.stderr


@pytest.mark.slow  # a `zoo train` process per tag
@pytest.mark.parametrize("tag", ["x/../../../escaped", "../up", "a/b", "..", ".hidden", "", "a" * 200, "tab\tx"])
def test_train_refuses_a_tag_that_is_not_a_plain_name(tmp_path: Path, tag: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "zoo", "train", "-r", "lenet_cifar.cifar10", "--tag", tag,
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: invalid tag")
    assert not (tmp_path / "run").exists()  # refused before any work
    assert not list(tmp_path.rglob("*.safetensors"))


# --------------------------------------------------------------------------------------------------
# Round 3 (issue 36): artefacts, downloads, images, folders and run files zoo is given




def test_pt2_payload_is_real(tmp_path: Path) -> None:
    """The fixture is a real attack: torch.export.load on its own runs the payload."""
    import torch

    _payload_pt2(tmp_path)
    with contextlib.suppress(Exception):
        torch.export.load(tmp_path / "evil.pt2")
    assert (tmp_path / "marker").exists()


def test_untrusted_pt2_never_runs_through_the_api(tmp_path: Path) -> None:
    """The CLI's refusal is in the bad-input matrix; the library refuses the same file by default."""
    from zoo.evaluate import evaluate_model
    from zoo.runners import UntrustedArtefactError, load

    _payload_pt2(tmp_path)
    evil = tmp_path / "evil.pt2"
    with pytest.raises(UntrustedArtefactError, match="can run code"):
        load(evil)
    with pytest.raises(UntrustedArtefactError):
        evaluate_model("lenet_cifar", "cifar10", limit=8, artefact=str(evil))
    assert not (tmp_path / "marker").exists()


def test_trust_is_what_lets_a_torchscript_file_run_its_code(tmp_path: Path, capfd: pytest.CaptureFixture[str]
                                                            ) -> None:
    """The refusal is what keeps the file's code out: trusted, the same file prints into the output."""
    from zoo.evaluate import evaluate_model

    _printing_torchscript(tmp_path)
    kwargs = {"limit": 4, "backend": "torchscript", "artefact": str(tmp_path / "printing.pt")}
    with pytest.raises(ZooError, match="can run code"):
        evaluate_model("lenet_cifar", "cifar10", **kwargs)
    assert "PAYLOAD RAN" not in capfd.readouterr().out
    evaluate_model("lenet_cifar", "cifar10", trust_artefact=True, **kwargs)
    assert "PAYLOAD RAN" in capfd.readouterr().out
    assert PRINTING_MODULE  # the module the file was scripted from


@pytest.mark.slow  # an ONNX export: 4-6 s on 2 shared cores
def test_fixed_batch_onnx_is_evaluated_in_chunks(tmp_path: Path) -> None:
    """`zoo export --batch 2` gives a file of batch 2; zoo-eval at -b 5 runs it in chunks, the same predictions."""
    from zoo.evaluate import evaluate_model

    _fixed_batch_onnx(tmp_path)
    r = evaluate_model("lenet_cifar", "cifar10", limit=13, batch_size=5, backend="onnxruntime",
                       artefact=str(tmp_path / "b2.onnx"))
    assert r.num_images == 13 and r.parity["identical"]


@pytest.mark.slow  # an OpenVINO conversion: 10-15 s on 2 shared cores
def test_fixed_batch_openvino_is_evaluated_in_chunks(tmp_path: Path) -> None:
    from zoo.evaluate import evaluate_model
    from zoo.runners.serialize import to_openvino

    to_openvino(zoo.create("lenet_cifar", weights="default").eval(), tmp_path / "b2.xml", input_size=(3, 32, 32),
                batch=2)
    r = evaluate_model("lenet_cifar", "cifar10", limit=13, batch_size=5, backend="openvino",
                       artefact=str(tmp_path / "b2.xml"))
    assert r.num_images == 13 and r.parity["identical"]


def test_the_evaluation_loop_is_one_error_boundary() -> None:
    import torch

    from zoo.data.datasets import load_sample
    from zoo.scoring import evaluate

    calls = []

    def flaky(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        if len(calls) == 3:  # the shape check, then the first batch pass: the second batch fails
            raise RuntimeError("Exception from src/inference/src/cpp/infer_request.cpp:223:\nreal reason: no memory")
        return torch.zeros(len(x), 10)

    with pytest.raises(ZooError, match="failed on batch 2 .*real reason: no memory") as info:
        evaluate(flaky, load_sample("cifar10"), batch_size=100)
    assert "\n" not in str(info.value)


# -- downloads: a server that stalls, drips, never ends or loops -------------------------------------


class _Server:
    """A local HTTP server whose paths misbehave: /stall, /drip, /endless, /huge-length, /loop."""

    def __init__(self) -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/loop":
                    self.send_response(302)
                    self.send_header("Location", "/loop")
                    self.end_headers()
                    return
                self.send_response(200)  # HTTP/1.0: without a length, the body runs until the server closes
                if self.path == "/huge-length":
                    self.send_header("Content-Length", str(10 << 30))
                self.end_headers()
                with contextlib.suppress(OSError):
                    while True:
                        if self.path == "/stall":
                            time.sleep(5)
                        elif self.path == "/drip":
                            self.wfile.write(b"x")
                            self.wfile.flush()
                            time.sleep(0.05)
                        else:
                            self.wfile.write(b"\0" * 65536)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> object:
    s = _Server()
    yield s
    s.close()


@pytest.mark.parametrize("path, message", [
    ("/stall", "timed out"),
    ("/drip", "not done within"),
    ("/endless", "more than the file's"),
    ("/huge-length", "announces"),
    ("/loop", "redirect error that would lead to an infinite loop"),
])
def test_a_misbehaving_download_fails_in_bounded_time_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     server: _Server, path: str, message: str) -> None:
    import dataclasses

    import zoo.weights.hub as zw
    from zoo import registry

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZOO_WEIGHTS_DIR", str(tmp_path / "none"))
    monkeypatch.setattr(zw, "_REPO_WEIGHTS_DIR", None)
    monkeypatch.setattr(zw, "DOWNLOAD_TIMEOUT_S", 0.5)
    monkeypatch.setattr(zw, "DOWNLOAD_DEADLINE_S", 1.5)
    entry = registry.get_entry("lenet_cifar")
    released = registry.get_weights("resnet20.cifar10")
    weights = dataclasses.replace(released, arch="lenet_cifar", tag="mirror", url=f"{server.url}{path}",
                                  file_size=200_000)
    monkeypatch.setitem(registry._REGISTRY, "lenet_cifar", dataclasses.replace(entry, weights=(weights,)))
    started = time.monotonic()
    with pytest.raises(zoo.CheckpointError) as info:
        zoo.weights.resolve("default", "lenet_cifar", progress=False)
    assert time.monotonic() - started < 8
    assert "\n" not in str(info.value) and message in str(info.value), str(info.value)
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(cache.iterdir()), "a partial download was left in the cache"


# -- images: converted by mode, never clipped; folders walked safely --------------------------------


def _image_file(tmp_path: Path, name: str, image: object) -> Path:
    path = tmp_path / name
    image.save(path)  # type: ignore[attr-defined]
    return path


def test_cmyk_jpeg_is_converted_not_read_as_rgb(tmp_path: Path) -> None:
    from PIL import Image

    from zoo.data.folders import open_image
    from zoo.data.transforms import ImageTransform

    rgb = Image.new("RGB", (32, 32), (220, 30, 30))
    path = _image_file(tmp_path, "red.jpg", rgb.convert("CMYK"))
    assert Image.open(path).mode == "CMYK"
    pixel = open_image(path).getpixel((5, 5))
    assert pixel[0] > 180 and pixel[1] < 80 and pixel[2] < 80, pixel  # red, not CMY read as RGB
    transform = ImageTransform((3, 32, 32), (0.0,) * 3, (1.0,) * 3)
    direct = transform.pixels(Image.open(path))  # a CMYK PIL image given to the transform itself
    assert direct[0].float().mean() > 180 and direct[1].float().mean() < 80


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from zoo.data.folders import load_image_folder, open_image

    values = np.full((32, 32), 32896, dtype=np.uint16)  # mid grey in 16 bits: 128 in 8
    (tmp_path / "grey" / "a").mkdir(parents=True)
    path = _image_file(tmp_path / "grey" / "a", "mid.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I")
    assert open_image(path).getpixel((0, 0)) == 128
    split = load_image_folder(tmp_path / "grey", "test", input_size=(3, 32, 32), mean=(0.5,) * 3, std=(0.5,) * 3)
    assert int(split.images.float().mean()) == 128


def test_float_image_is_refused_naming_the_file(tmp_path: Path) -> None:
    from PIL import Image

    from zoo.data.folders import open_image

    path = _image_file(tmp_path, "depth.tif", Image.new("F", (4, 4), 0.25))
    with pytest.raises(ZooError, match=f"image {path} is a 32-bit float image"):
        open_image(path)


def test_folder_with_a_link_cycle_and_a_fifo_counts_each_image_once(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    from PIL import Image

    from zoo.data.folders import find_images, load_image_folder

    cat = tmp_path / "imgs" / "cat"
    cat.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (32, 32), (i, 0, 0)).save(cat / f"{i}.png")
    (cat / "again").symlink_to(cat)  # a link to its own folder
    (cat / "up").symlink_to(tmp_path / "imgs")  # a cycle through the parent
    os.mkfifo(cat / "pipe.png")
    started = time.monotonic()
    split = load_image_folder(tmp_path / "imgs", "test", input_size=(3, 32, 32), mean=(0.5,) * 3, std=(0.5,) * 3)
    assert len(split) == 3
    assert len(find_images([str(tmp_path / "imgs")])) == 3
    assert time.monotonic() - started < 10
    assert any("pipe.png: not a regular file" in r.message for r in caplog.records)


def test_stale_temporaries_are_only_zoos_own(tmp_path: Path) -> None:
    from zoo.train.runs import remove_stale_temporaries

    zoo_made = [".state.0123456789ab.tmp.pt", ".log.abcdef012345.tmp.jsonl", ".lenet_cifar.cifar10.safetensors"]
    users = [".notes.tmp.txt", ".draft.tmp", "model.safetensors", ".hidden", ".x.0123456789ab.tmp.pt.keep"]
    for name in zoo_made + users:
        (tmp_path / name).write_text("x")
    remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(users)


def test_train_into_a_folder_of_user_files_touches_nothing(tmp_path: Path) -> None:
    from zoo.train.loop import train
    from zoo.train.recipes import resolve_recipe

    home = tmp_path / "home"
    home.mkdir()
    files = {".a.0123456789ab.tmp.txt": "draft", ".b.safetensors": "photo", "notes.txt": "notes"}
    for name, text in files.items():
        (home / name).write_text(text)
    with pytest.raises(ZooError, match="is not a zoo run"):
        train(resolve_recipe("lenet_cifar.cifar10", {"epochs": 1}), out_dir=home, progress=False)
    assert {p.name: p.read_text() for p in home.iterdir()} == files


def test_a_damaged_peak_cache_is_measured_again_and_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import torch

    import zoo.utils.measure as zb

    monkeypatch.setattr(zb, "_probe", lambda device, dtype, seconds: 123.0)
    cache = tmp_path / "peak.json"
    key = zb._peak_key(torch.device("cpu"), torch.get_num_threads())
    for damaged in ("5", "[1, 2]", "{not json", json.dumps({key: {"fp32": "fast"}}),
                    json.dumps({key: {"device": key, "fp32": -1.0, "bf16": None, "method": "", "loadavg": None,
                                      "measured": ""}})):
        cache.write_text(damaged)
        peak = zb.measure_peak("cpu", cache=cache)
        assert peak.fp32 == 123.0
        assert json.loads(cache.read_text())[key]["fp32"] == 123.0


def test_openvino_reason_and_long_messages_stay_one_line() -> None:
    from zoo.errors import one_line, summarize

    error = RuntimeError("Exception from src/inference/src/cpp/core.cpp:112:\nException from src/inference/src/dev/"
                         "plugin.cpp:53:\nCheck 'false' failed at src/frontends/common/src/frontend.cpp:54:\n"
                         "FrontEnd API failed with GeneralFailure:\nCannot create Nope layer id:0")
    assert summarize(error) == "FrontEnd API failed with GeneralFailure: Cannot create Nope layer id:0"
    line = one_line("unknown model '" + "x" * 5_000_000 + "'\nsecond line")
    assert "\n" not in line and len(line) < 1100 and line.endswith("more characters)")


def _endless_loop_onnx(path: Path) -> Path:
    """An ONNX graph whose Loop runs 2**62 times: a hostile file that would never return."""
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)], "endless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor("trips", TensorProto.INT64, [], [2**62]),
         helper.make_tensor("cond", TensorProto.BOOL, [], [True])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_an_onnx_graph_that_never_ends_is_stopped_at_the_call_deadline(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.runners.exported

    monkeypatch.setattr(zoo.runners.exported, "CALL_DEADLINE_S", 1.0)
    runner = zoo.runners.load(_endless_loop_onnx(tmp_path / "loop.onnx"), "onnxruntime")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            runner(torch.zeros(2, 1))
        except BaseException as e:  # noqa: BLE001  (handed to the test's thread)
            errors.append(e)

    worker = threading.Thread(target=call, daemon=True)  # a hang must fail the test, not stall the suite
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the endless graph was not stopped"
    assert len(errors) == 1 and isinstance(errors[0], zoo.ZooError)
    assert "ran past 1 s and was stopped" in str(errors[0])
