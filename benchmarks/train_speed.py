"""Training throughput per precision and memory format, side by side in one run.

For each model, one SGD training step (forward, cross-entropy, backward, update) on a batch of 128
random inputs of the model's size is timed in four settings: fp32, bf16 autocast, channels_last,
bf16 + channels_last. The settings are interleaved round by round (``--rounds``), so that a noisy
machine slows them alike, and the median round is reported with its ratio to fp32. Results go to
``benchmarks/results/train_speed.{json,md}``, with the time-to-accuracy table of the released
checkpoints (from their registered metadata).

    python benchmarks/train_speed.py [--models lenet_cifar,resnet20,resnet18] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import zoo
from zoo.machine import hardware_description

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = {"fp32": (False, False), "bf16": (True, False), "channels_last": (False, True),
            "bf16+channels_last": (True, True)}


def _stepper(name: str, bf16: bool, channels_last: bool, batch: int):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = zoo.create(name)
    x = torch.randn(batch, *zoo.model_info(name).input_size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, zoo.model_info(name).num_classes, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def measure(name: str, batch: int, rounds: int, seconds: float) -> dict[str, dict[str, float]]:
    steppers = {k: _stepper(name, *v, batch) for k, v in SETTINGS.items()}
    for step in steppers.values():  # warm-up
        step()
        step()
    times: dict[str, list[float]] = {k: [] for k in SETTINGS}
    for _ in range(rounds):
        for key, step in steppers.items():
            n, t0 = 0, time.perf_counter()
            while True:
                step()
                n += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= seconds and n >= 2:
                    break
            times[key].append(batch * n / elapsed)
    fp32 = statistics.median(times["fp32"])
    return {k: {"images_per_s": statistics.median(v), "vs_fp32": statistics.median(v) / fp32,
                "rounds": v} for k, v in times.items()}


def tta_table() -> list[str]:
    rows = ["| weights | top-1 (%) | report | recipe | epochs | wall time | per epoch | hardware |",
            "|---|---:|---:|---|---:|---:|---:|---|"]
    from zoo.recipes import get_recipe

    for w in zoo.list_weights():
        epochs = get_recipe(w.recipe).epochs
        reported = zoo.model_info(w.arch).reported_accuracy
        rows.append(f"| `{w.name}` | {w.metrics.top1:.2f} | {'-' if reported is None else f'{reported:.2f}'} | "
                    f"`{w.recipe}` | {epochs} | {w.train_time_s / 60:.1f} min | {w.train_time_s / epochs:.0f} s | "
                    f"{w.hardware} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet_cifar,resnet20,resnet18")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum time per setting per round")
    args = parser.parse_args()
    results = {name: measure(name, args.batch_size, args.rounds, args.seconds) for name in args.models.split(",")}
    machine = {"hardware": hardware_description("cpu"), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "python": platform.python_version()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_speed.json").write_text(json.dumps({"machine": machine, "batch_size": args.batch_size,
                                                          "results": results}, indent=2) + "\n")
    lines = ["# Training throughput: fp32 vs bf16 autocast vs channels_last", "",
             f"One SGD step on a batch of {args.batch_size} (forward, loss, backward, update), CPU; settings "
             f"interleaved over {args.rounds} rounds, median shown. Machine: {machine['hardware']}, "
             f"torch {machine['torch']}. Produced by `python benchmarks/train_speed.py`.", "",
             "| model | " + " | ".join(SETTINGS) + " |", "|---|" + "---:|" * len(SETTINGS)]
    for name, res in results.items():
        cells = [f"{res[k]['images_per_s']:,.0f} img/s ({res[k]['vs_fp32']:.2f}x)" for k in SETTINGS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Time to accuracy of the released checkpoints", "",
              "Accuracy of the stored file on the full test split; 'report' is the source report's figure; "
              "wall time is the training time recorded with the checkpoint (evaluation excluded). These CPUs "
              "are shared: a run that had other work beside it on the 2 cores took longer than it would alone.",
              "", *tta_table()]
    (RESULTS / "train_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
