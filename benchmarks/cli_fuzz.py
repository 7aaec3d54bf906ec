"""CLI fuzzer: random option combinations and malformed values against every command, counting tracebacks.

Each call runs the real entry point in-process (``zoo.cli.main`` / ``eval_main`` with their error
boundary), with tiny models, the embedded samples (``ZOO_DATA`` points at an empty folder) and a
scratch working folder. A call "tracebacks" when an exception escapes the boundary or a traceback
reaches stderr; the target is 0. Calls are drawn from a seeded generator until ``--calls`` or
``--seconds`` runs out, and the result is recorded in ``benchmarks/results/cli_fuzz.{json,md}``.

    python benchmarks/cli_fuzz.py [--calls 3000] [--seconds 900] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import random
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
PATHS = ["out.png", "afile/x.png", "", ".", "/dev/null", "nodir/sub/x.onnx", "../escape.onnx", "a\x00b", "x" * 300]
WEIGHTS = ["default", "cifar10", "lenet_cifar.cifar10", "missing.safetensors", "garbage.pth", "empty.safetensors",
           "resnet20.cifar10", "", "afile"]
# --debug is left out on purpose: it exists to show the full traceback.
JUNK = ["--", "-", "--help", "-h", "--json", "--unknown", "=", "-m", "--set", "%s", "\u00e9\u00e8", "-v"]

COMMANDS: dict[str, dict[str, list[str]]] = {
    "eval": {"-m": MODELS, "@dataset": DATASETS, "-w": WEIGHTS, "--split": ["test", "train", "val", ""],
             "-b": INTS, "--device": DEVICES, "--limit": ["8", "16", "0", "-5", "abc"], "--mean": FLOATS,
             "--std": FLOATS, "--data-dir": ["empty", "afile", "nodir", ""], "--no-verify": [], "--no-sample": [],
             "--confusion": PATHS, "--per-class": [], "--backend": ["eager", "auto", "bf16", "fold-bn", "bogus",
                                                                   "eager+bf16", "", "onnxruntime"],
             "--artefact": ["garbage.pth", "empty.safetensors", "nodir/x.onnx"], "--json": [], "--no-progress": []},
    "train": {"-m": MODELS, "-r": ["mlp_60_40_20_bn.mnist", "lenet_cifar.cifar10", "nope", ""],
              "--set": ["epochs=abc", "lr=-1", "train_limit=-100", "batch_size=0", "x=1", "epochs", "=", "lr=nan",
                        "optimizer=lbfgs", "flip=maybe"],
              "--out": ["run", "afile", "nodir/run", ""], "--tag": ["ok", "../x", "", "a/b", ".."],
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
    "viz filters": {"-m": MODELS, "-w": WEIGHTS, "--layer": ["conv1", "nope", ""], "--out": PATHS, "--json": []},
    "viz activations": {"-m": MODELS, "--image": ["image.png", "garbage.pth", "nodir/x.png"],
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
    required = [k for k in options if k in ("-m", "-r", "@dataset")]  # usually present, as users pass them
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
    return command, argv


def _fixtures(folder: Path) -> None:
    (folder / "afile").write_text("a file, not a folder")
    (folder / "empty").mkdir()
    (folder / "empty.safetensors").write_bytes(b"")
    (folder / "garbage.pth").write_bytes(b"\x80\x04garbage")
    (folder / "image.png").write_text("not an image")


def _call(argv: list[str]) -> tuple[int, str, str | None]:
    from zoo.cli import eval_main, main

    entry, prog = (main, "zoo")
    if argv and argv[0] == "eval" and random.random() < 0.3:
        entry, prog, argv = eval_main, "zoo-eval", argv[1:]
    out, err = io.StringIO(), io.StringIO()
    escaped = None
    code = 0
    saved = sys.argv
    sys.argv = [prog, *argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            entry()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # an exception escaped the error boundary: exactly what the fuzzer looks for
        escaped = traceback.format_exc()
        code = -1
    finally:
        sys.argv = saved
    text = err.getvalue()
    if escaped is None and "Traceback (most recent call last)" in text:
        escaped = text
    return code, text, escaped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    from zoo.machine import hardware_description

    threads = torch.get_num_threads()
    rng = random.Random(args.seed)
    counts: collections.Counter[str] = collections.Counter()
    codes: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    tracebacks: list[dict[str, Any]] = []
    start = time.monotonic()
    home = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="zoo-fuzz-") as tmp:
        folder = Path(tmp)
        _fixtures(folder)
        os.environ["ZOO_DATA"] = str(folder / "empty")  # the embedded samples: fast, and no real data needed
        os.environ.pop("ZOO_DEBUG", None)
        os.chdir(folder)
        try:
            n = 0
            while n < args.calls and time.monotonic() - start < args.seconds:
                command, argv = _draw(rng)
                code, _, escaped = _call(argv)
                torch.set_num_threads(threads)
                counts[command] += 1
                codes[command][code] += 1
                if escaped is not None:
                    tracebacks.append({"argv": argv, "traceback": escaped[-3000:]})
                n += 1
                if n % 100 == 0:
                    print(f"{n} calls, {len(tracebacks)} tracebacks, {time.monotonic() - start:.0f} s", file=sys.stderr)
        finally:
            os.chdir(home)
    result = {"calls": sum(counts.values()), "seconds": round(time.monotonic() - start, 1), "seed": args.seed,
              "machine": hardware_description("cpu"), "date": time.strftime("%Y-%m-%d"),
              "per_command": {c: {"calls": counts[c], "exit_codes": dict(sorted(codes[c].items()))} for c in counts},
              "tracebacks": len(tracebacks), "examples": tracebacks[:20]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_fuzz.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# CLI fuzzing", "", f"Produced by `python benchmarks/cli_fuzz.py --calls {args.calls} --seed {args.seed}` "
             f"on {result['date']} ({result['machine']}): {result['calls']:,} random calls in {result['seconds']:,.0f} s, "
             f"**{result['tracebacks']} tracebacks** (target 0).", "",
             "| command | calls | exit codes (code: count) |", "|---|---:|---|"]
    for c in sorted(counts):
        lines.append(f"| `zoo {c}` | {counts[c]:,} | " + ", ".join(f"{k}: {v}" for k, v in sorted(codes[c].items())) + " |")
    if tracebacks:
        lines += ["", "## Tracebacks", ""] + [f"- `{' '.join(t['argv'])}`" for t in tracebacks[:20]]
    (RESULTS / "cli_fuzz.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    sys.exit(1 if tracebacks else 0)


if __name__ == "__main__":
    main()
