"""CLI fuzzer: random option combinations and malformed values against every command, counting tracebacks,
hangs, executions and files touched.

Each call runs the real entry point in-process (``zoo.cli.app.main`` / ``eval_main`` with their error
boundary), with tiny models, the embedded samples (``ZOO_DATA`` points at an empty folder) and a
scratch working folder holding hostile inputs (``_hostile``): a pt2 whose sample inputs are a pickle
payload, a TorchScript file that prints, zip bombs, a FIFO, decompression-bomb and CMYK/16-bit/float
images, image folders with link cycles, run folders whose files have wrong types, a folder of user
files and a run whose lock is a symlink. A call "tracebacks" when an exception escapes the boundary or a
traceback reaches stderr; it "hangs" when it runs past ``--call-timeout`` (SIGALRM); it "executes" when
the payload's marker appears or the TorchScript file's output does; it "touches" when a user file
changes or the symlinked lock's target appears. The target is 0 of each. ``--trust-artefact`` is left
out on purpose (like ``--debug``): it exists to run such files. Calls are drawn from a seeded generator
until ``--calls`` or ``--seconds`` runs out, and the result is recorded in
``benchmarks/results/cli_fuzz.{json,md}`` (``--out`` elsewhere, for a short check).

    python benchmarks/cli_fuzz.py [--calls 3000] [--seconds 900] [--seed 0] [--call-timeout 60] [--out DIR]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import io
import json
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

MODELS = ["lenet_cifar", "mlp_60_40_20_bn", "cnn_basic", "resnet21", "", "timm/resnet18", "../etc/passwd", "LENET",
          "lenet_cifar.cifar10", "*"]
DATASETS = ["cifar10", "mnist", "cifar100", "imagenet", "", "CIFAR-10", "circles", "../x"]
INTS = ["1", "2", "0", "7", "-1", "abc", "1e3", "", "99999999999999999999", "3.5", "0x10"]
FLOATS = ["1", "0.5", "0", "-1", "nan", "inf", "-inf", "1e-9", "abc", "", "0.5,0.5", "0.5,0.5,0.5", "1,,2"]
DEVICES = ["cpu", "cuda", "cuda:0", "cuda:abc", "nonsense", "", "mps", "cpu:1"]
PATHS = ["out.png", "afile/x.png", "", ".", "/dev/null", "nodir/sub/x.onnx", "../escape.onnx", "a\x00b", "x" * 300,
         "fifo.onnx", "x" * 100_000]
WEIGHTS = ["default", "cifar10", "lenet_cifar.cifar10", "missing.safetensors", "garbage.pth", "empty.safetensors",
           "resnet20.cifar10", "", "afile", "bomb.pth", "big.safetensors", "fifo.safetensors", "/dev/zero"]
ARTEFACTS = ["b2.onnx", "evil.pt2", "printing.pt", "bomb.pt2", "/dev/zero", "fifo.onnx", "garbage.pth",
             "empty.safetensors", "nodir/x.onnx"]
IMAGES = ["cmyk.jpg", "bomb.png", "textbomb.png", "grey16.png", "float.tif", "fifo.png", "image.png", "imgs_cycle",
          "nodir/x.png"]
IMAGE_FOLDERS = ["imgs_cycle", "imgs_bomb", "imgs16"]
RUN_DIRS = ["run_types", "run_log_types", "run_result_types", "home", "lockrun", "empty", "nodir"]
# --debug is left out on purpose: it exists to show the full traceback.
JUNK = ["--", "-", "--help", "-h", "--json", "--unknown", "=", "-m", "--set", "%s", "\u00e9\u00e8", "-v"]

COMMANDS: dict[str, dict[str, list[str]]] = {
    "eval": {"-m": MODELS, "@dataset": DATASETS + IMAGE_FOLDERS, "-w": WEIGHTS, "--split": ["test", "train", "val", ""],
             "-b": INTS, "--device": DEVICES, "--limit": ["8", "16", "0", "-5", "abc"], "--mean": FLOATS,
             "--std": FLOATS, "--data-dir": ["empty", "afile", "nodir", ""], "--no-verify": [], "--no-sample": [],
             "--confusion": PATHS, "--per-class": [], "--backend": ["eager", "auto", "bf16", "fold-bn", "bogus",
                                                                   "eager+bf16", "", "onnxruntime"],
             "--artefact": ARTEFACTS, "--json": [], "--no-progress": []},
    "train": {"-m": MODELS, "-r": ["mlp_60_40_20_bn.mnist", "lenet_cifar.cifar10", "nope", ""],
              "--set": ["epochs=abc", "lr=-1", "train_limit=-100", "batch_size=0", "x=1", "epochs", "=", "lr=nan",
                        "optimizer=lbfgs", "flip=maybe"],
              "--out": ["run", "afile", "nodir/run", "", "home", "lockrun", "run_types"],
              "--tag": ["ok", "../x", "", "a/b", "..", "x" * 100_000],
              "--max-minutes": FLOATS, "--threads": INTS, "--device": DEVICES, "--resume": [], "--json": [],
              "--no-progress": [], "--save-dtype": ["float16", "int8", ""]},
    "export": {"-m": MODELS, "-w": WEIGHTS, "--format": ["onnx", "pt2", "torchscript", "tflite", ""],
               "--opset": ["1", "7", "18", "999", "abc"], "--batch": ["dynamic", "0", "2", "abc", "-1"],
               "--out": PATHS, "--int8": [], "--calibration": INTS, "--json": []},
    "info": {"@name": MODELS, "--json": []},
    "list": {"@pattern": ["*", "resnet*", "[", "", "?"], "--dataset": DATASETS, "--pretrained": [], "--json": []},
    "recipes": {"@name": ["", "fastnet.cifar10", "nope", "report003"], "--json": []},
    "bench": {"-m": MODELS[:3] + ["resnet21", ""], "--device": ["cpu", "cuda", "nonsense", "cpu,cuda"],
              "--backend": ["eager", "bogus", "eager,auto", "", "fold-bn+bf16"], "-b": ["1", "0", "abc", "1,2", "-1"],
              "--threads": ["1", "0", "abc"], "--min-time": ["0", "-1", "abc"], "--json": []},
    "predict": {"-m": ["lenet_cifar", "mlp_60_40_20_bn", "resnet21"], "@images": IMAGES, "-w": WEIGHTS,
                "--topk": INTS, "-b": INTS, "--backend": ["eager", "auto", "bogus"], "--json": []},
    "status": {"@run": RUN_DIRS, "--json": []},
    "analyze landscape": {"--from-json": ["ls_bad.json", "ls_noconfig.json", "garbage.pth", "nodir/x.json"],
                          "--out": ["ls", "afile", "/dev/null"], "--json": []},
    "viz filters": {"-m": MODELS, "-w": WEIGHTS, "--layer": ["conv1", "nope", ""], "--out": PATHS, "--json": []},
    "viz activations": {"-m": MODELS, "--image": IMAGES,
                        "--sample": ["0", "5", "99999", "-1"], "-w": WEIGHTS, "--out": PATHS, "--json": []},
}


def _pick(rng: random.Random, values: list[str]) -> str:
    """Mostly one of the first two values of a pool (plausible ones), so that calls get past option parsing
    and reach the library; otherwise any value, malformed ones included."""
    return rng.choice(values[:2] if rng.random() < 0.7 else values)


def _draw(rng: random.Random) -> tuple[str, list[str]]:
    command = rng.choice(list(COMMANDS))
    options = COMMANDS[command]
    argv = command.split()
    required = [k for k in options if k in ("-m", "-r", "@dataset", "@images")]  # usually present, as users pass them
    optional = [k for k in options if k not in required]
    chosen = [k for k in required if rng.random() < 0.9]
    chosen += rng.sample(optional, rng.randint(0, min(4, len(optional))))
    rng.shuffle(chosen)
    for key in chosen:
        values = options[key]
        if key.startswith("@"):
            argv.append(_pick(rng, values))
        elif values:
            argv += [key, _pick(rng, values)]
        else:
            argv.append(key)
    if rng.random() < 0.2:
        argv.insert(rng.randint(0, len(argv)), rng.choice(JUNK))
    # keep calls short: tiny evaluations, one-epoch trainings on a few images, quick benchmarks
    if command == "eval" and "--limit" not in argv:
        argv += ["--limit", "32"]
    if command == "train":
        argv += ["--set", "epochs=1", "--set", "train_limit=128", "--no-progress"]
    if command == "bench":
        argv += ["--min-time", "0"]
    if command == "analyze landscape" and "--from-json" not in argv:
        argv += ["--from-json", "ls_bad.json"]  # never a training study: that takes minutes
    return command, argv


def _fixtures(folder: Path) -> None:
    (folder / "afile").write_text("a file, not a folder")
    (folder / "empty").mkdir()
    (folder / "empty.safetensors").write_bytes(b"")
    (folder / "garbage.pth").write_bytes(b"\x80\x04garbage")
    (folder / "image.png").write_text("not an image")
    _hostile(folder)


def _hostile(folder: Path) -> None:
    """The round-3 inputs (issue 36), made with the bad-input matrix's own fixtures."""
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import test_bad_inputs as m

    m._payload_pt2(folder)  # evil.pt2, whose payload would create folder/marker
    m._printing_torchscript(folder)  # printing.pt
    m._fixed_batch_onnx(folder)  # b2.onnx
    m._bomb_artefact("bomb.pt2")(folder)
    m._bomb_artefact("bomb.pth")(folder)
    m._sparse("big.safetensors", 3 << 30)(folder)
    for name in ("fifo.onnx", "fifo.png", "fifo.safetensors"):
        os.mkfifo(folder / name)
    (folder / "bomb.png").write_bytes(m.BOMB_PNG)
    (folder / "textbomb.png").write_bytes(m.TEXT_BOMB_PNG)
    Image.new("RGB", (32, 32), (200, 20, 20)).convert("CMYK").save(folder / "cmyk.jpg")
    Image.new("I;16", (32, 32), 40000).save(folder / "grey16.png")
    m._float_tiff(folder)
    for name, image in (("imgs_cycle", b""), ("imgs_bomb", m.BOMB_PNG), ("imgs16", b"")):
        (folder / name / "cat").mkdir(parents=True)
        Image.new("RGB", (32, 32), (1, 2, 3)).save(folder / name / "cat" / "a.png")
        if image:
            (folder / name / "cat" / "b.png").write_bytes(image)
    (folder / "imgs_cycle" / "cat" / "loop").symlink_to(folder / "imgs_cycle")
    Image.new("I;16", (32, 32), 1000).save(folder / "imgs16" / "cat" / "c.png")
    for name, setup in (("run_types", m._run_dir({"epochs": "3"})), ("run_log_types", m._run_dir(
            log='{"epoch": 1, "epoch_s": "2"}\n')), ("run_result_types", m._run_dir(result={"metrics": [1]}))):
        setup(folder)
        (folder / "run").rename(folder / name)
    m._user_folder(folder)  # home/: the user's files
    m._lock_symlink(folder)  # run/ whose .lock points into elsewhere/
    (folder / "run").rename(folder / "lockrun")
    m._landscape(config={"steps": "many"})(folder)
    (folder / "ls.json").rename(folder / "ls_bad.json")
    m._landscape(drop="config")(folder)
    (folder / "ls.json").rename(folder / "ls_noconfig.json")


def _user_files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (folder / "home").iterdir()}


class _Hang(BaseException):
    """A call past its time bound: a BaseException, so the CLI's error boundary cannot swallow it."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang()


def _call(argv: list[str], timeout: float = 60.0) -> tuple[int, str, str | None]:
    from zoo.cli import eval_main, main

    entry, prog = (main, "zoo")
    if argv and argv[0] == "eval" and random.random() < 0.3:
        entry, prog, argv = eval_main, "zoo-eval", argv[1:]
    out, err = io.StringIO(), io.StringIO()
    escaped = None
    code = 0
    saved = sys.argv
    sys.argv = [prog, *argv]
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            entry()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except _Hang:
        code = -2
    except BaseException:  # an exception escaped the error boundary: exactly what the fuzzer looks for
        escaped = traceback.format_exc()
        code = -1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.argv = saved
    text = err.getvalue() + ("\nPAYLOAD RAN" if "PAYLOAD RAN" in out.getvalue() else "")
    if escaped is None and "Traceback (most recent call last)" in text:
        escaped = text
    return code, text, escaped


def _outcome(folder: Path, code: int, text: str, escaped: str | None, user_files: dict[str, str]) -> list[str]:
    """What went wrong in one call: "traceback", "hang", "execution", "touched" (the target: nothing)."""
    found = []
    if escaped is not None:
        found.append("traceback")
    if code == -2:
        found.append("hang")
    if (folder / "marker").exists() or "PAYLOAD RAN" in text:
        found.append("execution")
        (folder / "marker").unlink(missing_ok=True)
    if _user_files(folder) != user_files or (folder / "elsewhere" / "created-by-the-lock").exists():
        found.append("touched")
    return found


def _campaign(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import torch

    threads = torch.get_num_threads()
    rng = random.Random(args.seed)
    counts: collections.Counter[str] = collections.Counter()
    codes: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    problems: collections.Counter[str] = collections.Counter()
    examples: list[dict[str, Any]] = []
    user_files = _user_files(folder)
    start = time.monotonic()
    n = 0
    while n < args.calls and time.monotonic() - start < args.seconds:
        command, argv = _draw(rng)
        code, text, escaped = _call(argv, args.call_timeout)
        torch.set_num_threads(threads)
        counts[command] += 1
        codes[command][code] += 1
        for kind in _outcome(folder, code, text, escaped, user_files):
            problems[kind] += 1
            examples.append({"kind": kind, "argv": [a[:200] for a in argv], "detail": (escaped or text)[-3000:]})
        n += 1
        if n % 100 == 0:
            print(f"{n} calls, {dict(problems)}, {time.monotonic() - start:.0f} s", file=sys.stderr)
    return {"calls": sum(counts.values()), "seconds": round(time.monotonic() - start, 1),
            "per_command": {c: {"calls": counts[c], "exit_codes": dict(sorted(codes[c].items()))} for c in counts},
            **{kind: problems[kind] for kind in ("traceback", "hang", "execution", "touched")},
            "examples": examples[:20]}


def _report(result: dict[str, Any], args: argparse.Namespace, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cli_fuzz.json").write_text(json.dumps(result, indent=2) + "\n")
    command = f"python benchmarks/cli_fuzz.py --calls {args.calls} --seed {args.seed}"
    lines = ["# CLI fuzzing", "", f"Produced by `{command}` on {result['date']} ({result['machine']}): "
             f"{result['calls']:,} random calls in {result['seconds']:,.0f} s: **{result['traceback']} tracebacks, "
             f"{result['hang']} hangs (calls past {args.call_timeout:g} s), "
             f"{result['execution']} executions of a file's code, {result['touched']} user files touched** "
             "(target 0 each).", "",
             "| command | calls | exit codes (code: count; -2 a hang) |", "|---|---:|---|"]
    for c, row in sorted(result["per_command"].items()):
        lines.append(f"| `zoo {c}` | {row['calls']:,} | " + ", ".join(f"{k}: {v}" for k, v in row["exit_codes"].items())
                     + " |")
    if result["examples"]:
        lines += ["", "## Problems", ""] + [f"- {e['kind']}: `{' '.join(e['argv'])}`" for e in result["examples"]]
    text = "\n".join(lines) + "\n"
    (out / "cli_fuzz.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--call-timeout", type=float, default=60.0, help="seconds before a call counts as a hang")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for cli_fuzz.json and cli_fuzz.md")
    args = parser.parse_args()
    from zoo.utils.machine import hardware_description

    home = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="zoo-fuzz-") as tmp:
        folder = Path(tmp)
        _fixtures(folder)
        os.environ["ZOO_DATA"] = str(folder / "empty")  # the embedded samples: fast, and no real data needed
        os.environ.pop("ZOO_DEBUG", None)
        os.chdir(folder)
        try:
            result = _campaign(args, folder)
        finally:
            os.chdir(home)
    result = {**result, "seed": args.seed, "machine": hardware_description("cpu"), "date": time.strftime("%Y-%m-%d")}
    print(_report(result, args, args.out))
    sys.exit(1 if any(result[k] for k in ("traceback", "hang", "execution", "touched")) else 0)


if __name__ == "__main__":
    main()
