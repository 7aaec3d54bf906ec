"""Training speed: where a step's time goes, old step vs new step, precisions, and time to accuracy.

Parts (``--parts``, default all; each part's result is kept in ``train_speed.json`` and the .md is
regenerated from the JSON, so re-running one part keeps the others):

``settings``
    One SGD step (forward, cross-entropy, backward, update) on a batch of random inputs, timed in
    four settings: fp32, bf16 autocast, channels_last, bf16 + channels_last.
``steps``
    The trainer's step before this change (``old``: bf16 autocast + channels_last, SGD with
    PyTorch's per-parameter loop, batch 128) against the new one (``new``: the same with the fused
    SGD kernel, ``zoo.train.loop``'s default, at the recipe's batch size), per model, as images/s and as a
    share of the machine's measured bf16 matmul peak (``zoo.benchmark.measure_peak``).
``breakdown``
    The per-operator profile of one new step (torch.profiler, CPU): convolution forward and backward
    (oneDNN computes input and weight gradients in one ``convolution_backward`` call, so the profiler
    cannot split them), BatchNorm, pooling, elementwise, casts and copies, optimizer, other; each as a
    share of the step, and GFLOP/s where the FLOPs are known (from ``torch.utils.flop_counter``).
``tta``
    Time to accuracy: for every run kept in ``docs/runs/`` (released checkpoints and the fast
    recipes), the minutes of training after which the test top-1 first reached each threshold, read
    from the run's ``log.jsonl``.

Settings are interleaved round by round (``--rounds``), so a noisy machine slows them alike; the
median round is reported. Every number names the machine it was measured on.

    python benchmarks/train_speed.py [--parts settings,steps,breakdown,tta] [--models ...] [--rounds 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import zoo
from zoo.train.runs import run_hardware
from zoo.utils.machine import hardware_description

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PARTS = ("settings", "steps", "breakdown", "tta")
SETTINGS = {"fp32": (False, False), "bf16": (True, False), "channels_last": (False, True),
            "bf16+channels_last": (True, True)}
THRESHOLDS = (80.0, 90.0, 93.0, 94.0, 95.0, 99.0)


def _stepper(name: str, bf16: bool, channels_last: bool, batch: int, fused: bool = False,
             compiled: bool = False) -> Callable[[], None]:
    torch.manual_seed(0)
    info = zoo.model_info(name)
    model = zoo.create(name)
    x = torch.randn(batch, *info.input_size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, info.num_classes, (batch,))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, fused=fused or None)
    forward = torch.compile(model) if compiled else model  # the model only, not the whole step

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = forward(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _interleaved(steppers: dict[str, tuple[Callable[[], None], int]], rounds: int, seconds: float
                 ) -> dict[str, list[float]]:
    """images/s per round of each (step, batch), the settings taking turns within every round."""
    for step, _ in steppers.values():  # warm-up
        step()
        step()
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for _ in range(rounds):
        for key, (step, batch) in steppers.items():
            n, t0 = 0, time.perf_counter()
            while True:
                step()
                n += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= seconds and n >= 2:
                    break
            times[key].append(batch * n / elapsed)
    return times


def part_settings(models: list[str], batch: int, rounds: int, seconds: float) -> dict[str, Any]:
    out = {}
    for name in models:
        times = _interleaved({k: (_stepper(name, *v, batch), batch) for k, v in SETTINGS.items()}, rounds, seconds)
        fp32 = statistics.median(times["fp32"])
        out[name] = {k: {"images_per_s": statistics.median(v), "vs_fp32": statistics.median(v) / fp32, "rounds": v}
                     for k, v in times.items()}
    return {"batch_size": batch, "results": out}


def _train_flops(name: str) -> float:
    """FLOPs of one training step per image: forward + backward, counted by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    info = zoo.model_info(name)
    model = zoo.create(name)
    x = torch.randn(2, *info.input_size)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), torch.zeros(2, dtype=torch.long)).backward()
    return counter.get_total_flops() / 2


def _recipe_batch(name: str) -> int:
    from zoo.train.recipes import RECIPES

    for recipe in RECIPES.values():
        if recipe.model == name and recipe.dataset == zoo.model_info(name).dataset:
            return recipe.batch_size
    return 256


def part_steps(models: list[str], rounds: int, seconds: float, peak: Any,
               compile_models: list[str] | None = None) -> dict[str, Any]:
    out = {}
    for name in models:
        new_batch = _recipe_batch(name)
        steppers = {"old": (_stepper(name, True, True, 128), 128),
                    "new": (_stepper(name, True, True, new_batch, fused=True), new_batch)}
        compile_s = None
        if compile_models and name in compile_models:
            t0 = time.perf_counter()
            step = _stepper(name, True, True, new_batch, fused=True, compiled=True)
            step()  # compilation happens here
            compile_s = time.perf_counter() - t0
            steppers["new+compile"] = (step, new_batch)
        times = _interleaved(steppers, rounds, seconds)
        flops = _train_flops(name)
        row: dict[str, Any] = {"train_gflop_per_image": flops / 1e9}
        for key, (_, batch) in steppers.items():  # old, new and, when asked, new+compile
            ips = statistics.median(times[key])
            row[key] = {"batch_size": batch, "images_per_s": ips, "gflop_per_s": ips * flops / 1e9,
                        "share_of_bf16_peak": ips * flops / 1e9 / peak.bf16 if peak.bf16 else None,
                        "rounds": times[key]}
        row["speedup"] = row["new"]["images_per_s"] / row["old"]["images_per_s"]
        if compile_s is not None:
            row["new+compile"]["compile_s"] = compile_s
        out[name] = row
    return {"peak": {"fp32_gflops": peak.fp32, "bf16_gflops": peak.bf16, "method": peak.method}, "results": out}


CATEGORIES = (  # (category, substrings of aten op names), first match wins
    ("conv backward", ("convolution_backward",)),
    ("conv forward", ("mkldnn_convolution", "convolution", "conv2d")),
    ("matmul", ("addmm", "aten::mm", "bmm", "linear")),
    ("batchnorm", ("batch_norm",)),
    ("pooling", ("pool",)),
    ("optimizer", ("sgd", "_foreach", "fused")),
    ("casts and copies", ("_to_copy", "copy_", "clone", "contiguous")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
    ("elementwise", ("relu", "gelu", "threshold", "add", "mul", "div", "sub", "where", "fill_", "zero_")),
)


def _category(op: str) -> str:
    low = op.lower()
    for category, keys in CATEGORIES:
        if any(k in low for k in keys):
            return category
    return "other"


def part_breakdown(models: list[str], steps: int) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    out = {}
    for name in models:
        batch = _recipe_batch(name)
        step = _stepper(name, True, True, batch, fused=True)
        step()
        step()
        with FlopCounterMode(display=False) as counter:
            step()
        by_op = {str(k): v for k, v in counter.get_flop_counts().get("Global", {}).items()}
        conv_fwd = sum(v for k, v in by_op.items() if "convolution" in k and "backward" not in k)
        conv_bwd = sum(v for k, v in by_op.items() if "convolution_backward" in k)
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
        wall = (time.perf_counter() - t0) / steps
        shares: dict[str, float] = {}
        for event in prof.key_averages():
            if event.key.startswith("aten::") or "Optimizer" in event.key:
                if "Optimizer" in event.key:
                    continue  # its aten ops are counted on their own
                cat = _category(event.key)
                shares[cat] = shares.get(cat, 0.0) + event.self_cpu_time_total / 1e6 / steps
        total = sum(shares.values())
        rows = {cat: {"seconds": s, "share": s / total} for cat, s in sorted(shares.items(), key=lambda kv: -kv[1])}
        for cat, flops in (("conv forward", conv_fwd), ("conv backward", conv_bwd)):
            if cat in rows and flops:
                rows[cat]["gflop_per_s"] = flops / rows[cat]["seconds"] / 1e9
        out[name] = {"batch_size": batch, "step_s": wall, "profiled_s": total, "categories": rows}
    return {"results": out}


def part_tta() -> dict[str, Any]:
    """Minutes of training until the test top-1 first reached each threshold, per run kept in docs/runs/."""
    rows = []
    for log in sorted((ROOT / "docs" / "runs").glob("*/log.jsonl")):
        history = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        recipe = json.loads((log.parent / "recipe.json").read_text())
        result_path = log.parent / "result.json"
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
        tested = [row["test_top1"] for row in history if row.get("test_top1") is not None]
        minutes, reached = 0.0, {}
        for row in history:
            minutes += row["epoch_s"] / 60
            for t in THRESHOLDS:
                if row.get("test_top1") is not None and row["test_top1"] >= t and str(t) not in reached:
                    reached[str(t)] = round(minutes, 2)
        rows.append({"run": log.parent.name, "recipe": recipe["name"], "model": recipe["model"],
                     "dataset": recipe["dataset"], "epochs_done": len(history), "epochs": recipe["epochs"],
                     "minutes": round(minutes, 2), "last_test_top1": tested[-1] if tested else None,
                     "final_top1": result.get("metrics", {}).get("top1"),
                     "hardware": result.get("hardware") or run_hardware(history),  # in progress: its log lines
                     "reached": reached})
    return {"thresholds": list(THRESHOLDS), "results": rows}


def render(data: dict[str, Any]) -> str:
    machine = data.get("machine", {})
    lines = ["# Training speed", "", "Produced by `python benchmarks/train_speed.py`; every table below is generated "
             "from `train_speed.json`. Each part names the machine it ran on.", ""]
    if "steps" in data:
        part = data["steps"]
        peak = part["peak"]
        lines += ["## Old step vs new step", "",
                  f"Machine: {part['machine']}. `old`: the trainer's step before (bf16 autocast + channels_last, "
                  "SGD's per-parameter loop, batch 128); `new`: the step `zoo train` runs now (the same with the fused "
                  "SGD kernel, at the model's recipe batch size). Share of peak: GFLOP/s of the step (forward + "
                  f"backward FLOPs) over the measured bf16 matmul peak, {peak['bf16_gflops']:,.0f} GFLOP/s "
                  f"(fp32 {peak['fp32_gflops']:,.0f}).", "",
                  "| model | train GFLOP/img | old img/s | new img/s (batch) | new / old | old % of peak | "
                  "new % of peak |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in part["results"].items():
            old, new = r["old"], r["new"]
            lines.append(f"| {name} | {r['train_gflop_per_image']:.3f} | {old['images_per_s']:,.0f} | "
                         f"{new['images_per_s']:,.0f} ({new['batch_size']}) | {r['speedup']:.2f}x | "
                         f"{100 * old['share_of_bf16_peak']:.0f}% | {100 * new['share_of_bf16_peak']:.0f}% |")
        compiled = {n: r["new+compile"] for n, r in part["results"].items() if "new+compile" in r}
        if compiled:
            lines += ["", "`torch.compile` of the model only (the optimizer step and loss stay eager), same batch as "
                      "`new`; compilation time is not in the throughput:", "",
                      "| model | new img/s | new+compile img/s | ratio | compile time |", "|---|---:|---:|---:|---:|"]
            for n, c in compiled.items():
                base = part["results"][n]["new"]["images_per_s"]
                lines.append(f"| {n} | {base:,.0f} | {c['images_per_s']:,.0f} | {c['images_per_s'] / base:.2f}x | "
                             f"{c['compile_s']:.0f} s |")
        lines.append("")
    if "breakdown" in data:
        part = data["breakdown"]
        lines += ["## Where a training step's time goes", "",
                  f"Machine: {part['machine']}. One new step (bf16 autocast, channels_last, fused SGD) under "
                  "torch.profiler, self CPU time per operator category, averaged over the profiled steps. oneDNN "
                  "computes a convolution's input and weight gradients in one call, so they are one row.", ""]
        for name, r in part["results"].items():
            lines += [f"**{name}** (batch {r['batch_size']}, {r['step_s'] * 1000:,.0f} ms per step)", "",
                      "| category | ms | share | GFLOP/s |", "|---|---:|---:|---:|"]
            for cat, c in r["categories"].items():
                gf = f"{c['gflop_per_s']:,.0f}" if "gflop_per_s" in c else ""
                lines.append(f"| {cat} | {c['seconds'] * 1000:,.1f} | {100 * c['share']:.1f}% | {gf} |")
            lines.append("")
    if "settings" in data:
        part = data["settings"]
        lines += ["## Precision and memory format", "",
                  f"Machine: {part['machine']}. One SGD step on a batch of {part['batch_size']}; median of the "
                  "interleaved rounds, ratio to fp32.", "",
                  "| model | " + " | ".join(SETTINGS) + " |", "|---|" + "---:|" * len(SETTINGS)]
        for name, res in part["results"].items():
            cells = [f"{res[k]['images_per_s']:,.0f} img/s ({res[k]['vs_fp32']:.2f}x)" for k in SETTINGS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    if "tta" in data:
        part = data["tta"]
        thresholds = part["thresholds"]
        lines += ["## Time to accuracy", "",
                  "Minutes of training (the sum of the logged epoch times; evaluation excluded) after which the "
                  "test top-1 first reached each threshold, from each run's `docs/runs/<run>/log.jsonl`; "
                  "'-' where it never did. 'final' is the stored file's top-1 on the full test split (a run still "
                  "training shows its last test top-1 so far). Runs that "
                  "shared the 2 cores with other work took longer than they would alone.", "",
                  "| run | recipe | epochs | minutes | " + " | ".join(f"{t:g}%" for t in thresholds) +
                  " | final top-1 | hardware |", "|---|---|---:|---:|" + "---:|" * len(thresholds) + "---:|---|"]
        for r in part["results"]:
            cells = [f"{r['reached'][str(t)]:.1f}" if str(t) in r["reached"] else "-" for t in thresholds]
            done = r["epochs_done"]
            epochs = f"{done}" if done == r["epochs"] else f"{done} of {r['epochs']}"
            final = (f"{r['final_top1']:.2f}" if r["final_top1"] is not None else
                     f"(training; {r['last_test_top1']:.2f} so far)" if r["last_test_top1"] is not None
                     else "(training)")
            lines.append(f"| `{r['run']}` | `{r['recipe']}` | {epochs} | {r['minutes']:.1f} | " + " | ".join(cells) +
                         f" | {final} | {r['hardware']} |")
        lines.append("")
    if machine:
        lines += [f"torch {machine.get('torch')}, Python {machine.get('python')}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of: {', '.join(PARTS)}")
    parser.add_argument("--models", default="fastnet,resnet20,resnet18,vgg19_bn")
    parser.add_argument("--batch-size", type=int, default=128, help="batch of the settings part")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum time per setting per round")
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of train_speed.json/.md (default: "
                        "benchmarks/results; another CPU class's record goes beside it, e.g. benchmarks/results/avx2)")
    parser.add_argument("--compile", default="", help="models whose steps part also times torch.compile of the "
                        "model (comma-separated; compilation takes minutes on 2 cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts: {', '.join(unknown)}")
    models = args.models.split(",")
    path = args.out / "train_speed.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data = {k: v for k, v in data.items() if k in (*PARTS, "machine")}
    hardware = hardware_description("cpu")
    stamp = {"machine": hardware, "date": time.strftime("%Y-%m-%d")}
    if "settings" in parts:
        data["settings"] = {**stamp, **part_settings(models, args.batch_size, args.rounds, args.seconds)}
    if "steps" in parts:
        from zoo.benchmark import measure_peak

        compile_models = [m for m in args.compile.split(",") if m] if args.compile else []
        data["steps"] = {**stamp, **part_steps(models, args.rounds, args.seconds, measure_peak("cpu"), compile_models)}
    if "breakdown" in parts:
        data["breakdown"] = {**stamp, **part_breakdown(models, args.profile_steps)}
    if "tta" in parts:
        data["tta"] = part_tta()
    data["machine"] = {"torch": torch.__version__, "python": platform.python_version()}
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    text = render(data)
    (args.out / "train_speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
