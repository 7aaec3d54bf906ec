"""Evaluation throughput on the CIFAR-10 test set: torchvision DataLoader vs zoo's in-memory fast path.

For each workload (data only, a small model ``lenet_cifar``, a large one ``resnet18`` on the first
``--resnet-images`` images) it times full passes (best of ``--repeats``), CPU, eval mode,
``torch.no_grad``, batch 256:

- ``DataLoader(workers=0)`` / ``DataLoader(workers=2)``: torchvision ``CIFAR10`` with
  ``Compose([ToTensor(), Normalize(mean, std)])``, i.e. one PIL image per sample, collated per batch;
- ``zoo fast path``: ``zoo.data.datasets.batches`` over the split held as one uint8 tensor.

Worker start-up is inside the timed pass (it is what an evaluation pays). Each model runs one warm-up
batch first. The logits of both paths are compared, so the speed-up is not bought with other inputs.
Results go to ``benchmarks/results/data_pipeline.{json,md}``.

    python benchmarks/data_pipeline.py --data-dir ../shared/datasets
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import CIFAR10

import zoo
from zoo.data.datasets import Split, batches, load_split

RESULTS = Path(__file__).resolve().parent / "results"


class CIFAR10Local(CIFAR10):
    """torchvision's CIFAR10 without its per-file md5 check (the shared copy is repacked; zoo has
    already verified its content fingerprint in ``load_split``)."""

    def _check_integrity(self) -> bool:
        return True


def machine() -> dict[str, object]:
    """zoo's machine description (CPU, cores, threads, versions, load), plus torchvision's version."""
    from zoo.utils.machine import machine_info as zoo_machine

    return {**zoo_machine(), "torchvision": torchvision.__version__}


def pipelines(split: Split, root: str, n: int, batch_size: int) -> dict[str, Callable[[], Iterator]]:
    """name -> a function returning a fresh iterator of (x, y) over the first n test images."""
    spec = split.dataset
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(spec.mean, spec.std)])
    dataset = Subset(CIFAR10Local(root, train=False, transform=tf), range(n))
    head = dataclasses.replace(split, images=split.images[:n], labels=split.labels[:n])

    def loader(workers: int) -> Iterator:
        return iter(DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers))

    return {
        "DataLoader(workers=0)": lambda: loader(0),
        "DataLoader(workers=2)": lambda: loader(2),
        "zoo fast path": lambda: batches(head, batch_size),
    }


def timed_pass(model: torch.nn.Module | None, it: Iterable) -> tuple[float, int, torch.Tensor | None]:
    """Seconds for one pass, images seen, and the logits of the first batch."""
    first = None
    n = 0
    start = time.perf_counter()
    with torch.no_grad():
        for x, _ in it:
            if model is not None:
                out = model(x)
                first = out if first is None else first
            n += x.shape[0]
    return time.perf_counter() - start, n, first


def run(args: argparse.Namespace) -> dict[str, object]:
    split = load_split("cifar10", "test", data_dir=args.data_dir)
    root = str(split.root)
    workloads = [("data only", None, len(split)), ("lenet_cifar", "lenet_cifar", len(split)),
                 ("resnet18", "resnet18", args.resnet_images)]
    rows = []
    for label, model_name, n in workloads:
        model = zoo.create(model_name).eval() if model_name else None
        makers = pipelines(split, root, n, args.batch_size)
        if model is not None:
            with torch.no_grad():
                model(next(makers["zoo fast path"]())[0])  # warm-up
        logits = {}
        for name, make in makers.items():
            passes = [timed_pass(model, make()) for _ in range(args.repeats)]
            seconds = min(p[0] for p in passes)
            _, seen, logits[name] = passes[0]
            rows.append({"workload": label, "images": seen, "pipeline": name, "seconds": round(seconds, 3),
                         "images_per_s": round(seen / seconds, 1)})
            print(f"{label:>12} | {name:<22} | {seen:6d} images | {seconds:7.2f} s | {seen / seconds:9.0f} img/s",
                  flush=True)
        if model is not None:
            diff = (logits["zoo fast path"] - logits["DataLoader(workers=0)"]).abs().max().item()
            rows[-1]["max_abs_logit_diff_vs_dataloader"] = diff
        base = next(r for r in rows if r["workload"] == label and r["pipeline"] == "DataLoader(workers=0)")
        for r in rows:
            if r["workload"] == label:
                r["speedup_vs_dataloader_w0"] = round(r["images_per_s"] / base["images_per_s"], 2)
    return {"benchmark": "data_pipeline", "dataset": "cifar10 test", "batch_size": args.batch_size,
            "repeats": args.repeats,
            "verification": split.verification, "machine": machine(), "rows": rows}


def markdown(result: dict[str, object]) -> str:
    m = result["machine"]
    lines = [
        "# Evaluation data pipeline: torchvision DataLoader vs zoo fast path",
        "",
        f"CIFAR-10 test set ({result['verification']}), batch {result['batch_size']}, CPU, eval mode, "
        f"`torch.no_grad`, best of {result['repeats']} timed passes each (DataLoader worker start-up included), "
        "one warm-up batch per model.",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), torch {m['torch']} "
        f"({m['torch_threads']} threads), torchvision {m['torchvision']}, Python {m['python']}.",
        "Produced by `python benchmarks/data_pipeline.py`.",
        "",
        "| workload | images | pipeline | images/s | vs DataLoader(workers=0) |",
        "|---|---:|---|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['workload']} | {r['images']} | {r['pipeline']} | {r['images_per_s']:,.0f} | "
                     f"{r['speedup_vs_dataloader_w0']:.2f}x |")
    diffs = [f"{r['workload']}: {r['max_abs_logit_diff_vs_dataloader']:.1e}"
             for r in result["rows"] if "max_abs_logit_diff_vs_dataloader" in r]
    lines += ["", f"Max |logit difference| fast path vs DataLoader on the first batch: {', '.join(diffs)}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="dataset root (default: ZOO_DATA, then the cache folder)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--resnet-images", type=int, default=2000, help="images for resnet18 (it is slow on CPU)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per cell; the fastest is kept")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_pipeline.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (args.out / "data_pipeline.md").write_text(table)
    print("\n" + table)


if __name__ == "__main__":
    main()
