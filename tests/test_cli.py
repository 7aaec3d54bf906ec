"""The CLI: one command per API call, --json everywhere, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from zoo.cli import cli


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_list_json_has_all_models_with_matching_counts() -> None:
    code, out = _run("list", "--json")
    assert code == 0
    models = json.loads(out)
    assert len(models) >= 30
    assert all(m["params"] > 0 and m["gflops"] > 0 for m in models)  # recorded figures (test_models checks them)
    code, out = _run("list", "--pretrained", "--json")
    pretrained = {m["name"]: m for m in json.loads(out)}
    assert code == 0 and pretrained["resnet20"]["top1"] == pretrained["resnet20"]["weights"][0]["top1"] > 90
    assert all(m["weights"] for m in pretrained.values())
    code, out = _run("list", "--pretrained")
    assert code == 0 and "resnet20.cifar10" in out and "top-1" in out
    code, out = _run("info", "resnet20.cifar10", "--json")
    assert code == 0 and json.loads(out)["metrics"]["top1"] == pretrained["resnet20"]["top1"]


def test_list_table_and_pattern() -> None:
    code, out = _run("list", "vgg1?_bn")
    assert code == 0
    assert "vgg11_bn" in out and "vgg19_bn" in out and "resnet" not in out


def test_info_json() -> None:
    code, out = _run("info", "vgg19_bn", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["params"] == 20_365_002 and info["params_match"]
    assert sum(layer["params"] for layer in info["layers"]) == 20_365_002


def test_info_text_shows_report_discrepancy() -> None:
    code, out = _run("info", "cnn3_fc1000")
    assert code == 0
    assert "1,191,170 counted" in out and "1,088,418" in out


def test_unknown_model_is_one_line_error_without_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "zoo", "info", "resnet21"], capture_output=True, text=True)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown model 'resnet21'; did you mean:")
    assert "resnet20" in lines[0]
    assert "Traceback" not in proc.stderr


def test_zoo_eval_shows_warnings_and_takes_debug(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """zoo-eval configures logging like zoo: the sample-fallback warning reaches stderr; --debug is accepted."""
    code = "import sys; from zoo.cli import eval_main; sys.argv = sys.argv[1:]; eval_main()"
    proc = subprocess.run([sys.executable, "-c", code, "zoo-eval", "-m", "lenet_cifar", "cifar10", "--limit", "8",
                           "--no-progress", "--data-dir", str(tmp_path), "--debug"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" in proc.stderr and "embedded" in proc.stderr


def test_usage_errors_are_one_line_with_exit_code_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "zoo", "eval", "-m", "lenet_cifar", "cifar10", "--batch-size", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: ")


def test_weights_commands(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import zoo

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    code, out = _run("weights", "list", "resnet20.*", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["name"] for r in rows] == ["resnet20.cifar10"]
    assert rows[0]["top1"] == zoo.get_weights("resnet20.cifar10").metrics.top1 and rows[0]["where"] == "weights_dir"
    code, out = _run("weights", "download", "resnet2?.*", "--to", str(tmp_path / "usb"), "--no-progress", "--json")
    assert code == 0 and json.loads(out) == [{"name": "resnet20.cifar10", "path": str(
        tmp_path / "usb" / zoo.get_weights("resnet20.cifar10").file_name)}]
    code, out = _run("weights", "path", "resnet20.cifar10")
    assert code == 0 and out.strip().endswith(zoo.get_weights("resnet20.cifar10").file_name)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / ("e" * 64 + ".safetensors")).write_bytes(b"damaged")
    result = subprocess.run([sys.executable, "-m", "zoo", "weights", "verify"], capture_output=True, text=True,
                            env={**os.environ, "ZOO_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 1 and "CORRUPT" in result.stdout and result.stderr.count("\n") == 1
    result = subprocess.run([sys.executable, "-m", "zoo", "weights", "download"], capture_output=True, text=True)
    assert result.returncode == 2 and "--all" in result.stderr


def test_help_of_bench_and_eval_names_every_backend() -> None:
    """The help text is written out (the CLI imports no torch for --help); it must not fall behind BACKENDS."""
    from zoo.runners import BACKENDS, EXPORTED

    bench_help = "".join(_run("bench", "--help")[1].split())  # click may wrap a name at its hyphen
    eval_help = "".join(_run("eval", "--help")[1].split())
    assert [b for b in BACKENDS if b not in bench_help] == []
    assert [b for b in EXPORTED if b not in eval_help] == []


@pytest.mark.usefixtures("restore_threads")
def test_train_stopped_by_budget_says_how_to_resume_and_time_left(tmp_path: Path) -> None:
    from zoo.train.runs import format_duration

    run = tmp_path / "run"
    args = ["train", "-m", "mlp_tanh_circles", "-r", "fast_onecycle", "--dataset", "circles", "--set", "epochs=3",
            "--set", "batch_size=20", "--threads", "1", "--no-progress", "--out", str(run)]
    budget = ["--max-minutes", "1e-6"]
    code, out = _run(*args, *budget)
    assert code == 0 and "stopped after epoch 1 of 3" in out and f"--resume --out {run}" in out
    assert "left at this pace" in out
    code, out = _run(*args, *budget, "--resume", "--json")  # one more epoch; the estimate is in the JSON too
    result = json.loads(out)
    assert code == 0 and not result["finished"] and len(result["history"]) == 2 and result["remaining_s"] > 0
    code, out = _run(*args, "--resume", "--json")
    assert code == 0 and json.loads(out)["finished"] and json.loads(out)["remaining_s"] == 0.0
    assert [format_duration(s) for s in (4.4, 102.4, 600, 5400, 36000)] == ["4 s", "1 min 42 s", "10 min", "1.5 h",
                                                                          "10.0 h"]


@pytest.mark.usefixtures("restore_threads")
def test_status_tells_where_a_run_stands_and_its_command_continues_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import shlex

    from safetensors.torch import load_file

    from zoo.train.runs import lock_run

    run = tmp_path / "runs" / "r1"
    code, out = _run("train", "-m", "mlp_tanh_circles", "-r", "fast_onecycle", "--dataset", "circles", "--set",
                     "epochs=3", "--set", "batch_size=20", "--set", "lr=0.0125", "--tag", "mine", "--save-dtype",
                     "float16", "--threads", "1", "--no-progress", "--out", str(run), "--max-minutes", "1e-6")
    assert code == 0 and "stopped after epoch 1 of 3" in out
    code, out = _run("status", str(run))
    assert code == 0 and f"{run}: stopped after epoch 1 of 3 (recipe fast_onecycle: mlp_tanh_circles on circles)" in out
    assert "left at this pace" in out and "test top-1: " in out
    command = next(line for line in out.splitlines() if line.startswith("  continue: "))
    words = shlex.split(command.removeprefix("  continue: ").removesuffix(" [--max-minutes N]"))
    assert words[:4] == ["zoo", "train", "-r", "fast_onecycle"] and "lr=0.0125" in words
    assert words[words.index("--tag") + 1] == "mine" and words[words.index("--save-dtype") + 1] == "float16"
    code, out = _run(*words[1:], "--threads", "1", "--no-progress")  # exactly what status said, run
    assert code == 0 and "stored file on the full test split" in out, out
    code, out = _run("status", "--json", str(run))
    status = json.loads(out)[0]
    result = json.loads((run / "result.json").read_text())
    assert (status["state"], status["epochs_done"], status["resume_command"]) == ("finished", 3, "")
    assert status["final_top1"] == result["metrics"]["top1"] and status["checkpoint"] == result["checkpoint"]
    assert status["remaining_s"] == 0.0 and status["train_s"] > 0 and status["eval_s"] > 0
    # the resume kept the first call's tag and storage dtype (recorded in run.json)
    assert Path(status["checkpoint"]).name.startswith("mlp_tanh_circles.mine-")
    assert {t.dtype for t in load_file(status["checkpoint"]).values() if t.is_floating_point()} == {torch.float16}
    monkeypatch.chdir(tmp_path)  # no directory named: the runs under ./runs, zoo train's default --out
    assert [s["path"] for s in json.loads(_run("status", "--json")[1])] == [os.path.join("runs", "r1")]
    handle = lock_run(run)  # a trainer holds the folder
    try:
        assert json.loads(_run("status", "--json", str(run))[1])[0]["state"] == "running"
    finally:
        handle.close()
