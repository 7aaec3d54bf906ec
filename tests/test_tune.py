"""auto tuned on the machine at hand (zoo.runners.tuned, zoo.benchmark.tune, `zoo bench --tune`) and the peer rows of
`zoo bench --peers`: a fresh cache is tuned by the first large pass and read by the next, a damaged or foreign
entry is ignored with one warning, ZOO_AUTOTUNE=0 turns tuning off, and concurrent writers leave a whole file."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from conftest import require_dataset
from zoo.cli import cli
from zoo.runners import auto, tuned

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZOO_TUNING_DIR", str(tmp_path / "tuning"))
    tuned._warned.clear()
    return tmp_path / "tuning"


def _point(batch: int, **speeds: float) -> dict:
    return {"model": "resnet20", "batch_size": batch, "gflop_per_call": 0.0811 * batch,
            "candidates": {spec.replace("_", "-"): {"images_per_s": v, "setup_s": 0.0} for spec, v in speeds.items()}}


def test_a_tuned_point_is_read_first_and_only_near_its_batch_size(cache: Path) -> None:
    tuned.write_points("resnet20", [_point(256, eager=900.0, fold_bn=100.0)], threads=3)
    assert auto.explain_auto("cpu", 256, 0.0811, model="resnet20", threads=3)[0] == "eager"
    assert "tuned on this machine" in auto.explain_auto("cpu", 200, 0.0811, model="resnet20", threads=3)[1]
    assert tuned.tuned_point("resnet20", 3, 64) is None  # 4x away: the shipped table decides there
    assert tuned.tuned_point("resnet20", 2, 256) is None  # another thread count is another machine key
    assert tuned.tuned_point("resnet56", 3, 256) is None
    assert tuned.tuned_point("timm/resnet18", 3, 256) is None  # not a name a file can have
    tuned.write_points("resnet20", [_point(1, eager=50.0, fold_bn=80.0)], threads=3)  # merged, not replaced
    entry = tuned.read_entry("resnet20", threads=3)
    assert [p["batch_size"] for p in entry["points"]] == [1, 256]
    assert auto.resolve_auto("cpu", 1, 0.0811, model="resnet20", threads=3) == "fold-bn"


@pytest.mark.parametrize("damage", ["garbage", "foreign", "malformed"])
def test_a_damaged_or_foreign_entry_is_ignored_with_one_warning(cache: Path, damage: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    path = tuned.write_points("resnet20", [_point(256, eager=900.0)], threads=3)
    data = json.loads(path.read_text())
    (entry,) = data["entries"].values()
    if damage == "garbage":
        path.write_text("{not json")
    elif damage == "foreign":  # copied from another machine under this machine's key
        entry["machine"]["cpu"] = "Some Other CPU 9000"
        path.write_text(json.dumps(data))
    else:
        entry["points"][0]["candidates"]["eager"]["images_per_s"] = "fast"
        path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="zoo.runners.tuned"):
        for _ in range(3):
            assert tuned.read_entry("resnet20", threads=3) is None
            assert "tuned on this machine" not in auto.explain_auto("cpu", 256, 0.0811, model="resnet20",
                                                                    threads=3)[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert "ignoring" in warnings[0]


@pytest.mark.slow
def test_two_processes_writing_at_once_leave_a_whole_file(cache: Path) -> None:
    code = ("import sys; from zoo.runners import tuned\n"
            "for i in range(40):\n"
            "    b = int(sys.argv[1]) + 2 * i\n"
            "    tuned.write_points('resnet20', [{'model': 'resnet20', 'batch_size': b, 'gflop_per_call': 1.0,"
            " 'candidates': {'eager': {'images_per_s': 1.0, 'setup_s': 0.0}}}], threads=1)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(start)]) for start in (1, 2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    entry = tuned.read_entry("resnet20", threads=1)  # a whole file: parsed and valid, the last writer's
    assert entry is not None and len(entry["points"]) >= 40
    assert not list(cache.glob(".*tmp*")), "a temporary file was left behind"


def _eval(args: list[str], monkeypatch: pytest.MonkeyPatch, mode: str) -> dict:
    monkeypatch.setenv("ZOO_AUTOTUNE", mode)
    result = CliRunner().invoke(cli, ["eval", "-m", "cnn_basic", "cifar10", "--json", "--threads", "1", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_the_first_large_eval_tunes_the_next_reads_and_zero_turns_it_off(
        cache: Path, monkeypatch: pytest.MonkeyPatch, restore_threads: None) -> None:
    small = ["--limit", "300"]
    assert not any("tuned" in n for n in _eval(small, monkeypatch, "")["notes"])  # 300 images: not worth it
    assert not cache.exists()
    first = _eval(small, monkeypatch, "1")  # ZOO_AUTOTUNE=1: as a large pass does without it
    assert any(n.startswith("auto tuned for cnn_basic") for n in first["notes"]), first["notes"]
    assert (cache / "cnn_basic.json").is_file()
    stamp = (cache / "cnn_basic.json").stat().st_mtime_ns
    second = _eval(small, monkeypatch, "1")
    assert not any(n.startswith("auto tuned") for n in second["notes"]), second["notes"]  # read, not timed again
    assert any("tuned on this machine" in n for n in second["notes"]), second["notes"]
    assert (cache / "cnn_basic.json").stat().st_mtime_ns == stamp
    (cache / "cnn_basic.json").unlink()
    off = _eval(small, monkeypatch, "0")
    assert not any("tuned" in n for n in off["notes"]) and not (cache / "cnn_basic.json").exists()


@pytest.mark.slow
def test_bench_tune_stores_and_peers_run_the_onnx_file_with_their_defaults(
        cache: Path, restore_threads: None) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    result = CliRunner().invoke(cli, ["bench", "-m", "cnn_basic", "--tune", "-b", "2", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    (tuning,) = json.loads(result.stdout)
    assert tuning["winners"]["2"] in tuning["points"][0]["candidates"]
    assert len(tuning["points"][0]["candidates"]) >= 4
    result = CliRunner().invoke(cli, ["bench", "-m", "cnn_basic", "--backend", "auto", "--peers", "-b", "2",
                                      "--threads", "1", "--min-time", "0.05", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["backend"]: r for r in json.loads(result.stdout)["rows"]}
    assert rows["auto"]["setting"] == tuning["winners"]["2"]
    assert any("tuned on this machine" in n for n in rows["auto"]["notes"]), rows["auto"]["notes"]
    for peer in ("onnxruntime-defaults", "openvino-defaults"):
        assert rows[peer]["ok"] and rows[peer]["images_per_s"] > 0, rows[peer]
        assert rows[peer]["argmax_agreement"] == 1.0
    assert rows["onnxruntime-defaults"]["max_abs_diff"] < 1e-3  # fp32: the same logits as eager
    assert "with its defaults" in rows["openvino-defaults"]["notes"][0]


def test_auto_int8_weighs_int8_only_for_a_checkpoint_whose_record_allows_it() -> None:
    w = zoo.get_weights("resnet18.cifar10")
    allowed, why = auto.int8_allowed(w.name, w.sha256)
    assert set(allowed) == set(auto.AUTO_INT8_CANDIDATES) and "resnet18.cifar10" in why
    assert auto.int8_allowed(w.name, "0" * 64)[0] == ()  # another file under that name: its record does not apply
    assert auto.int8_allowed(None, None)[0] == ()  # random weights
    fast = {"eager": {"images_per_s": 100.0, "setup_s": 0.0}, "openvino-int8": {"images_per_s": 900.0, "setup_s": 0.0}}
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    assert auto._pick(fast, None) == "eager"  # plain auto never runs int8
    assert auto._pick(fast, None, int8=allowed) == "openvino-int8"
    record = {"sha256": "a" * 64, "images": 10_000, "eager_top1": 90.0,
              "int8": {"openvino-int8": {"top1": 89.5, "change": -0.5}, "onnxruntime-int8": {"top1": 89.9,
                                                                                            "change": -0.1}}}
    with pytest.MonkeyPatch.context() as m:
        m.setattr(auto, "int8_table", lambda path=None: {"x.cifar10": record})
        assert auto.int8_allowed("x.cifar10", "a" * 64)[0] == ("onnxruntime-int8",)  # -0.5 is past 0.3


def test_the_int8_record_is_the_benchmarks_and_covers_every_released_file(tmp_path: Path) -> None:
    """zoo/runners/int8.json is part int8 of benchmarks/results/throughput.json (written by that benchmark), and
    holds every released checkpoint by its current sha256: a replaced checkpoint needs its int8 part re-run."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("zoo_bench_throughput", ROOT / "benchmarks" / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recorded = json.loads((ROOT / "benchmarks" / "results" / "throughput.json").read_text())["parts"]["int8"]
    module.write_int8_table(recorded, tmp_path / "int8.json")
    assert json.loads((tmp_path / "int8.json").read_text()) == json.loads(auto.INT8_TABLE.read_text())
    auto.int8_table.cache_clear()
    for w in zoo.list_weights():
        assert auto.int8_table()[w.name]["sha256"] == w.sha256, w.name


@pytest.mark.slow
@pytest.mark.full_data
def test_zoo_eval_auto_int8_says_what_the_record_allows_and_calibrates_on_training_images(
        cache: Path, monkeypatch: pytest.MonkeyPatch, restore_threads: None) -> None:
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    require_dataset("cifar10", "train")
    monkeypatch.setenv("ZOO_AUTOTUNE", "1")
    result = CliRunner().invoke(cli, ["eval", "-m", "cnn_basic", "cifar10", "--backend", "auto-int8", "--limit",
                                      "300", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    ran = next(n for n in out["notes"] if n.startswith("auto-int8 ran"))
    assert "recorded int8 top-1 change of cnn_basic.cifar10" in ran, ran
    point = tuned.read_entry("cnn_basic", threads=1)["points"][0]
    assert set(auto.AUTO_INT8_CANDIDATES) <= set(point["candidates"])  # the tuning timed the int8 runners
    if "int8" in out["setting"]:  # calibrated on training images, it scores as the fp32 model does, nearly
        assert "calibrated on 300 training images" in ran
        eager = CliRunner().invoke(cli, ["eval", "-m", "cnn_basic", "cifar10", "--backend", "eager", "--limit", "300",
                                         "--json"])
        assert abs(out["top1"] - json.loads(eager.stdout)["top1"]) <= 2.0
