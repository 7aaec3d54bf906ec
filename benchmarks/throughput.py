"""Inference throughput per backend on this machine: zoo's resnet18, resnet20, vgg19_bn and timm's resnet18.

Every part is one ``zoo.benchmark.bench`` call, so the settings it compares run interleaved (one call of
each per round) and their ratios hold even when a background load comes and goes; the load is
measured and recorded (load average, and the CPU time other processes used during each part, from
``/proc/stat``).

- ``sweep``: the candidates of ``auto`` (``zoo.runners.AUTO_CANDIDATES``), OpenVINO int8 and onnxruntime
  int8 at batch 1, 4, 16, 64, 256 for resnet18, resnet20 and vgg19_bn: where the best setting changes. It
  writes ``zoo/runners/auto.json`` for this machine's CPU class, which is what ``auto`` then stands for here.
- ``main``: every backend but torch.compile at batch 1 and 64, CPU and CUDA (CUDA rows say when there is
  none), OpenVINO (fp32, bf16, int8) and onnxruntime (fp32, int8) among them, ``auto`` as the sweep chose
  it; zoo's resnet18 next to ``timm/resnet18`` (timm's ResNet-18 with the same 32x32 stem).
- ``compile``: torch.compile, fp32 and on top of the best bf16 setting, with a cold inductor cache.
- ``threads``: eager and auto at one thread and at ``--threads``.
- ``parity``: the bf16 settings (torch's and OpenVINO's) and onnxruntime vs eager fp32 on every released
  checkpoint, over its test split.
- ``int8``: every released checkpoint quantised by onnxruntime and by NNCF (OpenVINO), calibrated on 300
  training images, scored on its test split: the top-1 change int8 costs.
- ``e2e``: ``zoo-eval`` end to end (data included) vs the pure model throughput of the same setting.
- ``cuda``: eager, channels_last + bf16 autocast, the same with CUDA graphs and with torch.compile, and auto,
  on CUDA beside the CPU (``cuda/cpu`` ratio); rows say "no CUDA device" on a machine without one.

Results go to ``benchmarks/results/throughput.{json,md,png}``; a part run alone replaces its own
section of the JSON and keeps the others. Every part runs ``--threads`` torch/onnxruntime threads (default:
the usable cores); measure on an otherwise idle machine (the load is recorded either way).

    python benchmarks/throughput.py                 # all parts, about 30 minutes here
    python benchmarks/throughput.py --part main     # one part (each stays under ~10 minutes)
    python benchmarks/throughput.py --part parity --part int8 --weights vgg19_bn.cifar10  # a replaced checkpoint
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import zoo
from zoo import runners as backends
from zoo.benchmark import bench, measure_peak
from zoo.runners import auto as auto_policy
from zoo.utils.fileio import atomic_write_text
from zoo.utils.machine import cpu_class, cpu_description, cpu_has_bf16
from zoo.utils.machine import machine_info as machine

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ["resnet18", "timm/resnet18", "resnet20", "vgg19_bn"]
BEST_BF16 = "fold-bn+channels-last+bf16-cast"
MAIN_BACKENDS = ["eager", "channels-last", "fold-bn", "fold-bn+channels-last", "bf16", "bf16-cast", BEST_BF16,
                 "onnxruntime", "onnxruntime-int8", "openvino", "openvino-bf16", "openvino-int8", "pt2", "torchscript",
                 "auto"]
SWEEP_BACKENDS = [*backends.AUTO_CANDIDATES, "onnxruntime-int8", "openvino-int8"]
SWEEP_MODELS = ["resnet18", "resnet20", "vgg19_bn"]
SWEEP_BATCHES = [1, 4, 16, 64, 256]
AUTO_TABLE = auto_policy.AUTO_TABLE
COMPILE_BACKENDS = ["eager", BEST_BF16, "compile", f"compile+{BEST_BF16}"]
CUDA_BACKENDS = ["eager", "channels-last+bf16", "channels-last+bf16+cuda-graph", "compile+channels-last+bf16", "auto"]
PARTS = ["sweep", "main", "compile", "threads", "parity", "int8", "e2e", "cuda"]  # sweep first: it sets auto


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


class LoadMeter:
    """How many cores other processes kept busy while a part ran (all busy time minus this process's)."""

    def __enter__(self) -> LoadMeter:
        self.busy0, self.total0 = _cpu_jiffies()
        self.own0 = sum(os.times()[:4])
        self.t0 = time.perf_counter()
        self.load0 = os.getloadavg()
        return self

    def __exit__(self, *exc: object) -> None:
        busy1, total1 = _cpu_jiffies()
        tick = os.sysconf("SC_CLK_TCK")
        wall = time.perf_counter() - self.t0
        own = sum(os.times()[:4]) - self.own0
        cores = (total1 - self.total0) / tick / wall  # jiffies of all CPUs per wall second
        self.result = {
            "wall_s": round(wall, 1),
            "cores": round(cores, 2),
            "busy_cores_all": round((busy1 - self.busy0) / tick / wall, 2),
            "busy_cores_this_process": round(own / wall, 2),
            "busy_cores_other_processes": round(max(0.0, (busy1 - self.busy0) / tick - own) / wall, 2),
            "loadavg_start": [round(v, 2) for v in self.load0],
            "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        }


def run_part(part: str, min_time_s: float, data_dir: str | None, threads: int,
             only: list[str] | None = None) -> dict[str, Any]:
    if part == "main":
        kwargs = dict(models=MODELS, devices=["cpu", "cuda"], backends=MAIN_BACKENDS, batch_sizes=[1, 64],
                      threads=[threads])
    elif part == "compile":
        kwargs = dict(models=MODELS, backends=COMPILE_BACKENDS, batch_sizes=[1, 64], threads=[threads])
    elif part == "sweep":  # bf16 only where the CPU runs it natively: emulated, it is never what auto picks
        kwargs = dict(models=SWEEP_MODELS, backends=[b for b in SWEEP_BACKENDS if b not in _skipped_bf16()],
                      batch_sizes=SWEEP_BATCHES, threads=[threads])
    elif part == "threads":
        kwargs = dict(models=["resnet18"], backends=["eager", "auto"], batch_sizes=[1, 64],
                      threads=sorted({1, max(2, threads)}))
    elif part == "parity":
        return parity(data_dir, threads, only)
    elif part == "int8":
        return int8(data_dir, threads, only)
    elif part == "e2e":
        return end_to_end(data_dir, threads, min_time_s)
    elif part == "cuda":  # the CPU rows (for the cuda/cpu ratio) only where there is a GPU to compare
        kwargs = dict(models=SWEEP_MODELS, devices=["cpu", "cuda"] if torch.cuda.is_available() else ["cuda"],
                      backends=CUDA_BACKENDS, batch_sizes=[1, 64, 256], threads=[threads])
    else:
        raise SystemExit(f"unknown part {part!r}")
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="zoo-bench-inductor-") as cache, LoadMeter() as load:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # cold: 'setup s' is what a first compile costs a user
        try:
            report = bench(**kwargs, min_time_s=min_time_s)
        finally:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR")
            if previous is not None:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous
    skipped = {"skipped_bf16": _skipped_bf16()} if part == "sweep" and _skipped_bf16() else {}
    return {**report.to_dict(), "load": load.result, **skipped}


def _skipped_bf16() -> list[str]:
    """The bf16 candidates of the sweep on a CPU without native bf16 (none where it has it)."""
    if cpu_has_bf16():
        return []
    return [b for b in SWEEP_BACKENDS if backends.precision_of(backends.parse_backend(b)) == "bf16"]


def auto_points(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model and batch size of the sweep: GFLOP per call and each auto candidate's images/s and setup time
    (the int8 runners too: ``auto-int8`` weighs them for a checkpoint whose int8 record allows it).

    A candidate counts only where its row is ok and, for an fp32 setting, its logits match eager's within
    1e-3 (random weights: logits of order 1); bf16 settings change logits by design (their effect on released
    checkpoints is part ``parity``).
    """
    points = []
    for model in dict.fromkeys(r["model"] for r in _ok(sweep)):
        for b in sorted({r["batch_size"] for r in _ok(sweep, model=model)}):
            candidates = {}
            for r in _ok(sweep, model=model, batch_size=b):
                if r["backend"] not in (*backends.AUTO_CANDIDATES, *backends.AUTO_INT8_CANDIDATES):
                    continue
                if r["precision"] == "fp32" and (r["max_abs_diff"] or 0) > 1e-3:
                    continue
                candidates[r["backend"]] = {"images_per_s": round(r["images_per_s"], 1),
                                            "setup_s": round((r["prepare_s"] or 0) + (r["first_call_s"] or 0), 2)}
            rows = _ok(sweep, model=model, batch_size=b)
            points.append({"model": model, "batch_size": b,
                           "gflop_per_call": round(rows[0]["gflops_per_image"] * b, 4), "candidates": candidates})
    return points


def write_auto_table(sweep: dict[str, Any], path: Path = AUTO_TABLE) -> None:
    """Record this machine's sweep as what ``auto`` stands for on its CPU class (other classes are kept)."""
    table = json.loads(path.read_text()) if path.exists() else {}
    table.setdefault("about", "What `auto` stands for per CPU class: written by `python benchmarks/throughput.py "
                     "--part sweep`, read by zoo.runners.resolve_auto. See benchmarks/results/throughput.md.")
    m = machine()
    table.setdefault("cpus", {})[cpu_class()] = {
        "machine": cpu_description(sweep['rows'][0]['threads']), "recorded": time.strftime("%Y-%m-%d"),
        "torch": m["torch"], "onnxruntime": m["onnxruntime"], "openvino": m["openvino"],
        "load_other_cores": sweep["load"]["busy_cores_other_processes"], "points": auto_points(sweep)}
    atomic_write_text(path, json.dumps(table, indent=1) + "\n")
    auto_policy.auto_table.cache_clear()


def write_int8_table(part: dict[str, Any], path: Path = auto_policy.INT8_TABLE) -> None:
    """Record part int8's top-1 change per released file (by sha256), which ``auto-int8`` reads to decide
    whether a checkpoint may run in int8 (``zoo.runners.auto.int8_allowed``)."""
    checkpoints = {}
    for c in part["checkpoints"]:
        if c.get("is_sample"):
            continue
        eager = c["eager"]["top1"]
        checkpoints[c["weights"]] = {"sha256": c["sha256"], "images": c["images"], "eager_top1": eager,
                                     "int8": {s: {"top1": c[s]["top1"], "change": round(c[s]["top1"] - eager, 2)}
                                              for s in backends.INT8 if c.get(s) and c[s].get("top1") is not None}}
    table = {"about": "The top-1 change of each released checkpoint in int8 (onnxruntime and OpenVINO, calibrated on "
                      "300 training images, full test split): written by `python benchmarks/throughput.py --part int8` "
                      "(and --markdown-only), read by zoo.runners.auto.int8_allowed for --backend auto-int8.",
             "checkpoints": checkpoints}
    atomic_write_text(path, json.dumps(table, indent=1) + "\n")
    auto_policy.int8_table.cache_clear()


PARITY_SETTINGS = ["eager", BEST_BF16, "openvino-bf16", "onnxruntime"]
INT8_SETTINGS = ["eager", "onnxruntime-int8", "openvino-int8"]


def _score(settings: list[str], data_dir: str | None, threads: int, calibrate: bool,
           only: list[str] | None = None) -> dict[str, Any]:
    """Every released checkpoint (or those named in ``only``) on its test split with each setting: top-1 and the
    images whose class differs from eager fp32's (int8 settings calibrated on 300 training images of the
    checkpoint's dataset)."""
    from zoo.data.datasets import calibration_batch, load_for_eval
    from zoo.scoring import evaluate

    torch.set_num_threads(threads)
    out: dict[str, Any] = {"checkpoints": [], "settings": settings}
    with LoadMeter() as load:
        for weights in zoo.list_weights():
            if only is not None and weights.name not in only:
                continue
            name = weights.name.split(".")[0]
            model = zoo.create(name, weights=weights.name).eval()
            split = load_for_eval(weights.dataset, "test", data_dir=data_dir)
            calibration = calibration_batch(weights.dataset, 300, mean=weights.mean, std=weights.std,
                                            data_dir=data_dir) if calibrate else None
            entry: dict[str, Any] = {"model": name, "weights": weights.name, "sha256": weights.sha256,
                                     "dataset": weights.dataset, "images": len(split), "is_sample": split.is_sample}
            preds = {}
            for spec in settings:
                p = backends.prepare(model, spec, input_size=zoo.model_info(name).input_size, threads=threads,
                                     name=name, calibration=calibration if spec in backends.INT8 else None)
                r = evaluate(p, split, batch_size=256, mean=weights.mean, std=weights.std, return_predictions=True)
                preds[spec] = r.pop("predictions")
                entry[spec] = {"top1": r["top1"], "correct": r["correct"], "loss": r["loss"],
                               "images_per_s": round(r["images_per_s"], 1),
                               "differing_from_eager": int((preds[spec] != preds["eager"]).sum()),
                               "notes": list(p.notes)}
            out["checkpoints"].append(entry)
            print(f"  {weights.name}: " + ", ".join(f"{k} {entry[k]['top1']:.2f}" for k in settings), flush=True)
    out["load"] = load.result
    return out


def parity(data_dir: str | None, threads: int, only: list[str] | None = None) -> dict[str, Any]:
    return _score(PARITY_SETTINGS, data_dir, threads, calibrate=False, only=only)


def int8(data_dir: str | None, threads: int, only: list[str] | None = None) -> dict[str, Any]:
    return _score(INT8_SETTINGS, data_dir, threads, calibrate=True, only=only)


def merge_scores(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A parity/int8 part re-run for some checkpoints (``--weights``): their entries replace the old ones, the
    others are kept, in the order of ``zoo.list_weights()``; the re-run is recorded under ``reruns``."""
    if old is None:
        return new
    if old["settings"] != new["settings"]:
        raise SystemExit(f"--weights: the recorded part compares {old['settings']}, this run {new['settings']}: "
                         "re-run the part for every checkpoint (without --weights)")
    entries = {c["weights"]: c for c in old["checkpoints"]} | {c["weights"]: c for c in new["checkpoints"]}
    order = [w.name for w in zoo.list_weights() if w.name in entries]
    rerun = {"weights": [c["weights"] for c in new["checkpoints"]], "date": time.strftime("%Y-%m-%d"),
             "load": new["load"], **({"rerun_machine": new["measured_on"]} if "measured_on" in new else {})}
    return {**old, "checkpoints": [entries[n] for n in order], "reruns": [*old.get("reruns", []), rerun]}


def end_to_end(data_dir: str | None, threads: int, min_time_s: float, name: str = "resnet18") -> dict[str, Any]:
    """``zoo-eval --model resnet18 cifar10`` (auto, batch 256) end to end vs ``zoo bench`` of the setting it ran."""
    from zoo.evaluate import evaluate_model

    torch.set_num_threads(threads)
    with LoadMeter() as load:
        evaluate_model(name, "cifar10", data_dir=data_dir, progress=False, limit=512)  # warm-up (imports, caches)
        t0 = time.perf_counter()
        r = evaluate_model(name, "cifar10", data_dir=data_dir, progress=False)
        total = time.perf_counter() - t0
        report = bench([name], backends=[r.setting], batch_sizes=[256], threads=[threads], min_time_s=min_time_s)
    pure = report.rows[0].images_per_s
    return {"model": name, "setting": r.setting, "images": r.num_images, "is_sample": r.is_sample,
            "eval_images_per_s": round(r.images_per_s, 1), "eval_wall_s": round(r.wall_s, 2),
            "total_s": round(total, 2),
            "bench_images_per_s": round(pure, 1), "ratio": round(r.images_per_s / pure, 3), "top1": r.top1,
            "load": load.result}


# ------------------------------------------------------------------------------------------------
# Markdown: every statement below is computed from the JSON, so re-running a part keeps it true.


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _rows_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| model | backend | batch | thr | median ms | p90 ms | images/s | GFLOP/s | % peak (median / best) "
             "| x eager | max abs diff | mem MB | setup s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        backend = r["backend"] if r["backend"] == r["setting"] else f"{r['backend']} ({r['setting']})"
        if r["status"] != "ok":
            lines.append(f"| {r['model']} | {backend} | {r['batch_size']} | {_f(r['threads'], 'd')} | "
                         f"{r['status']} |  |  |  |  |  |  |  |  |")
            continue
        share = f"{100 * r['peak_share']:.0f} / {100 * r['peak_share_best']:.0f} ({r['precision']})" \
            if r["peak_share"] is not None else "-"
        setup = (r["prepare_s"] or 0) + (r["first_call_s"] or 0)
        lines.append(f"| {r['model']} | {backend} | {r['batch_size']} | {_f(r['threads'], 'd')} | "
                     f"{r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['images_per_s']:,.1f} | {r['gflop_per_s']:.1f} | "
                     f"{share} | {_f(r['speedup_vs_eager'], '.2f')} | {_f(r['max_abs_diff'], '.1e')} | "
                     f"{_f(r['peak_memory_mb'], '.1f')} | {setup:.1f} |")
    return lines


def _load_words(load: dict[str, Any]) -> str:
    return (f"{load['wall_s']:.0f} s; other processes kept **{load['busy_cores_other_processes']:.2f} of "
            f"{load['cores']:.0f} cores** busy on average (this benchmark {load['busy_cores_this_process']:.2f}); "
            f"load average {load['loadavg_start'][0]:.2f} at the start, {load['loadavg_end'][0]:.2f} at the end")


def _machine_words(m: dict[str, Any]) -> str:
    if m.get("hardware"):  # zoo.utils.machine.cpu_description, recorded since 2026-12-07
        return f"{m['hardware']} ({m['cores']} cores)"
    return f"{m['cpu']}, {m['cores']} cores ({m['cpu_capability']}, native bf16: {m['cpu_bf16']})"


def _part_line(part: dict[str, Any]) -> str:
    peaks = "; ".join(f"{p['fp32']:.0f} fp32 / " + (f"{p['bf16']:.0f} bf16 GFLOP/s" if p.get("bf16") else
                                                     "no bf16 (not native on this CPU)")
                      for p in part.get("peaks", {}).values())
    reruns = "".join(f" Re-measured on {r['date']}{_on(r)} for {', '.join(r['weights'])} (`--weights`): "
                     f"{_load_words(r['load'])}." for r in part.get("reruns", []))
    return _measured_where(part) + _load_words(part["load"]) + (f"; peak used: {peaks}" if peaks else "") + "." + reruns


def _measured_where(part: dict[str, Any]) -> str:
    """'Measured on <date> on <machine>: ' for a part run apart from the file's full run, else ''."""
    return f"Measured on {part['measured_date']}{_on(part)}: " if "measured_on" in part else ""


def _on(record: dict[str, Any]) -> str:
    """' on <machine>' for a part (``measured_on``) or re-run (``rerun_machine``) run apart from the file's full run."""
    m = record.get("measured_on") or record.get("rerun_machine")
    return f" on {_machine_words(m)}" if m else ""


def _ok(part: dict[str, Any] | None, **where: Any) -> list[dict[str, Any]]:
    rows = part["rows"] if part else []
    return [r for r in rows
            if r["status"] == "ok" and r["device"] == "cpu" and all(r[k] == v for k, v in where.items())]


def _threads_words(n: int) -> str:
    return "one thread" if n == 1 else f"{n} threads"


def _targets(parts: dict[str, Any], threads: int) -> list[str]:
    """The issue's three targets for resnet18, over the settings of parts main and compile (each vs its own eager)."""
    rows = [r for name in ("main", "compile") for r in _ok(parts.get(name), model="resnet18", threads=threads)]
    lines = [f"## Targets: resnet18, 32x32 input, CPU, {_threads_words(threads)}", ""]
    # fp32 and bf16 settings: int8 changes the answers and has no measured peak to compare with
    rows = [r for r in rows if r["precision"] in ("fp32", "bf16")]
    b64 = [r for r in rows if r["batch_size"] == 64 and r["backend"] != "auto"]
    b1 = [r for r in rows if r["batch_size"] == 1 and r["backend"] != "auto"]
    if not b64 or not b1:
        return lines + ["resnet18 was not measured.", ""]
    best64, best1 = max(b64, key=lambda r: r["speedup_vs_eager"]), max(b1, key=lambda r: r["speedup_vs_eager"])
    auto = {r["batch_size"]: r for r in _ok(parts.get("main"), model="resnet18", threads=threads, backend="auto")}

    def verdict(value: float, target: float, unit: str = "x") -> str:
        shown = f"{value:.0f}{unit}" if unit == "%" else f"{value:.2f}{unit}"
        if value >= target:
            return f"**met** ({shown} >= {target:g}{unit})"
        return f"**not met**: {shown}, short of {target:g}{unit} by {100 * (1 - value / target):.0f}%"

    share = best64["peak_share"]
    lines += [
        "| target | best setting | measured | verdict | `auto` |",
        "|---|---|---|---|---|",
        f"| best backend >= 2.5x eager fp32 at batch 64 | {best64['setting']} | {best64['images_per_s']:.1f} vs "
        f"{best64['images_per_s'] / best64['speedup_vs_eager']:.1f} images/s | "
        f"{verdict(best64['speedup_vs_eager'], 2.5)} | {auto[64]['speedup_vs_eager']:.2f}x ({auto[64]['setting']}) |"
        if 64 in auto else "",
        f"| >= 70% of the measured peak of its precision, batch 64 | {best64['setting']} | "
        f"{best64['gflop_per_s']:.0f} of {best64['peak_gflop_per_s']:.0f} {best64['precision']} GFLOP/s "
        f"(best call: {100 * best64['peak_share_best']:.0f}%) | {verdict(100 * share, 70, '%')} | "
        f"{100 * auto[64]['peak_share']:.0f}% |" if 64 in auto else "",
        f"| batch-1 latency >= 1.5x better than eager fp32 | {best1['setting']} | {best1['median_ms']:.1f} vs "
        f"{best1['median_ms'] * best1['speedup_vs_eager']:.1f} ms | {verdict(best1['speedup_vs_eager'], 1.5)} | "
        f"{auto[1]['speedup_vs_eager']:.2f}x ({auto[1]['setting']}) |" if 1 in auto else "",
        "",
    ]
    eager64 = next((r for r in _ok(parts.get("main"), model="resnet18", threads=threads, batch_size=64,
                                   backend="eager")), None)
    peaks = next(iter(parts["main"].get("peaks", {}).values()), None)
    if eager64 and peaks and peaks.get("bf16"):
        ratio = peaks["bf16"] / peaks["fp32"]
        ceiling = ratio / eager64["peak_share"]
        q = {r["backend"]: r for r in _ok(parts.get("main"), model="resnet18", threads=threads, batch_size=64)}
        int8_text = ("Static int8 (AVX512-VNNI) is a different trade: " + ", ".join(
            f"{k} {q[k]['speedup_vs_eager']:.2f}x eager" for k in backends.INT8 if k in q)
            + " at batch 64 in part `main`, at the cost of the top-1 changes of part `int8`. ") if q else ""
        lines += [
            f"What bounds the speed-up at batch 64 (ceiling {'above' if ceiling >= 2.5 else 'below'} 2.5x in this "
            f"run): eager fp32 already runs "
            f"at **{100 * eager64['peak_share']:.0f}%** of the fp32 matmul peak (oneDNN's fp32 convolutions are "
            f"good), and the bf16 peak is only **{ratio:.2f}x** the fp32 peak on this CPU (AVX512-BF16 doubles the "
            f"multiply-adds per instruction; there is no AMX). A bf16 setting at 100% of the bf16 peak is "
            f"{ratio:.2f} / {eager64['peak_share']:.2f} = **{ceiling:.2f}x** eager; the best measured is "
            f"{best64['speedup_vs_eager']:.2f}x at {100 * share:.0f}% of the bf16 peak. {int8_text}"
            "Load moves the ratio from run to run through eager's share of the peak (the lower it is, the higher "
            "the ceiling), but interleaving keeps both sides of each ratio under the same conditions.",
            "",
        ]
    return [line for line in lines if line is not None]


def _auto_section(parts: dict[str, Any]) -> list[str]:
    sweep = parts.get("sweep")
    lines = ["## What `auto` stands for, and why", ""]
    if not sweep:
        return lines + ["Part `sweep` was not run: `auto` uses the table recorded in `zoo/runners/auto.json`.", ""]
    points = auto_points(sweep)
    lines += [f"Part `sweep` timed the candidates of `auto` ({', '.join(backends.AUTO_CANDIDATES)}) side by side per "
              "model and batch size, and recorded them in `zoo/runners/auto.json` for this CPU class; `auto` picks the "
              "fastest installed candidate at the measured point nearest in GFLOP per call, an fp32 one when it "
              f"is within {100 * auto_policy.AUTO_TIE:.0f}% of the fastest; `zoo-eval` counts the setup time "
              "(an export) "
              "over the images it will score. CUDA: " + auto_policy.AUTO_CUDA + " (AMP), not measured here; "
              "torch.compile is not a candidate (see the compile section)."
              + (f" Not timed: {', '.join(sweep['skipped_bf16'])}, as this CPU has no native bf16 (emulated, bf16 "
                 "runs many times slower than fp32, and `auto` never picks it here)." if sweep.get("skipped_bf16")
                 else "") + " Images/s per candidate:", ""]
    cands = list(backends.AUTO_CANDIDATES)
    lines += ["| model | batch | GFLOP per call | " + " | ".join(cands) + " | `auto` picks |",
              "|---|---:|---:|" + "---:|" * len(cands) + "---|"]
    for pt in points:
        got = pt["candidates"]
        pick = auto_policy._pick(got, None, bf16=sweep["machine"]["cpu_bf16"])  # the measured machine's
        cells = [f"{got[c]['images_per_s']:,.0f}" if c in got else "-" for c in cands]
        lines.append(f"| {pt['model']} | {pt['batch_size']} | {pt['gflop_per_call']:.2f} | " + " | ".join(cells)
                     + f" | {pick} |")
    setup = {c: max((pt["candidates"][c]["setup_s"] for pt in points if c in pt["candidates"]), default=None)
             for c in cands}
    lines += ["", "Setup (preparation and first call, the most over the sweep): " + ", ".join(
        f"{c} {v:.1f} s" for c, v in setup.items() if v is not None) + ".", ""]
    return lines


def _issue_targets(parts: dict[str, Any], threads: int) -> list[str]:
    """zoo's default path vs OpenVINO bf16 (batch 1 and 64 from part main, 256 from sweep), int8, peak share."""
    main, sweep = parts.get("main"), parts.get("sweep")
    if not main or not sweep:
        return []
    lines = [f"## zoo's default CPU path vs OpenVINO bf16 ({_threads_words(threads)})", "",
             "`auto` rows of part `main` at batch 1 and 64; at batch 256 (part `sweep`) the row of the setting "
             "`auto` now stands for. Both sides of each ratio ran interleaved in one part.", "",
             "| model | batch | `auto` setting | `auto` images/s | OpenVINO bf16 images/s | ratio | target 1.0x |",
             "|---|---:|---|---:|---:|---:|---|"]
    for model in SWEEP_MODELS:
        for b in (1, 64, 256):
            src = main if b in (1, 64) else sweep
            rows = {r["backend"]: r for r in _ok(src, model=model, batch_size=b, threads=threads)}
            ov = rows.get("openvino-bf16")
            if b == 256:
                pick = auto_policy._pick(next((pt["candidates"] for pt in auto_points(sweep)
                                            if pt["model"] == model and pt["batch_size"] == b), {}), None,
                                      bf16=sweep["machine"]["cpu_bf16"])
                auto = rows.get(pick) if pick else None
            else:
                auto = rows.get("auto")
            if not auto or not ov:
                continue
            ratio = auto["images_per_s"] / ov["images_per_s"]
            lines.append(f"| {model} | {b} | {auto['setting']} | {auto['images_per_s']:,.1f} | "
                         f"{ov['images_per_s']:,.1f} | {ratio:.2f}x | {'met' if ratio >= 0.97 else 'not met'} |")
    lines += ["", "(A ratio within 3% of 1.0x counts as met: that is the run-to-run noise of interleaved timing here.)",
              ""]
    q = {r["backend"]: r for r in _ok(main, model="resnet18", batch_size=64, threads=threads)}
    ov = q.get("openvino-bf16")
    if ov:
        cells = [f"{k} {q[k]['images_per_s']:,.1f} images/s = **{q[k]['images_per_s'] / ov['images_per_s']:.2f}x** "
                 f"OpenVINO bf16" for k in backends.INT8 if k in q]
        lines += ["int8 at batch 64 (resnet18, part `main`; target 1.5x OpenVINO bf16): " + "; ".join(cells) + ".", ""]
    auto64 = q.get("auto")
    if auto64 and auto64.get("peak_share"):
        share = 100 * auto64["peak_share"]
        lines += [f"resnet18 at batch 64 on the default path ({auto64['setting']}): {auto64['gflop_per_s']:.0f} "
                  f"GFLOP/s, **{share:.0f}%** of the measured {auto64['precision']} matmul peak "
                  f"({auto64['peak_gflop_per_s']:.0f} GFLOP/s; target 60%: {'met' if share >= 60 else 'not met'}).", ""]
    e2e = parts.get("e2e")
    if e2e:
        lines += [_measured_where(e2e) +
                  f"`zoo-eval --model {e2e['model']} cifar10` end to end (data included, {e2e['images']:,} images"
                  f"{', the embedded sample' if e2e['is_sample'] else ''}, part `e2e`): {e2e['setting']}, "
                  f"{e2e['eval_images_per_s']:,.1f} images/s over the pass vs {e2e['bench_images_per_s']:,.1f} "
                  f"images/s for the model alone at batch 256 (`zoo bench`): **{e2e['ratio']:.2f}x** (target 0.9x: "
                  f"{'met' if e2e['ratio'] >= 0.9 else 'not met'}); {e2e['total_s']:.1f} s in all, preparation "
                  f"included; top-1 {e2e['top1']:.2f}%.", ""]
    return lines


def _compile_section(parts: dict[str, Any]) -> list[str]:
    comp = parts.get("compile")
    if not comp:
        return []
    lines = ["## torch.compile (part `compile`, cold inductor cache)", "", _part_line(comp), "",
             "The 'setup s' column of a compiled row is the compile time of that batch size (a new batch size "
             "compiles again). The inductor cache starts empty for the part, so the first model pays the full "
             "compile; timm/resnet18, compiled right after zoo's resnet18, reuses its cached kernels (same "
             "layers), hence its short setup.", ""]
    lines += _rows_table(_ok(comp)) + [""]
    gains = []
    for model in dict.fromkeys(r["model"] for r in _ok(comp)):
        for b in (1, 64):
            got = {r["backend"]: r for r in _ok(comp, model=model, batch_size=b)}
            plain, compiled = got.get(BEST_BF16), got.get(f"compile+{BEST_BF16}")
            if plain and compiled:
                setup = (compiled["prepare_s"] or 0) + (compiled["first_call_s"] or 0)
                saved = plain["median_ms"] - compiled["median_ms"]
                payoff = f"pays off after {setup / (saved / 1e3) * b:,.0f} images" \
                    if saved > 0.02 * plain["median_ms"] else "never pays off (gain under 2%)"
                gains.append(f"{model} batch {b}: {plain['median_ms'] / compiled['median_ms']:.2f}x, compile "
                             f"{setup:.0f} s, {payoff}")
    if gains:
        lines += ["Compiling the bf16 setting vs the same setting uncompiled: " + "; ".join(gains) + ". "
                  "A CIFAR-10 evaluation is 10,000 images, so `auto` leaves compilation out; for a long-running "
                  "server it can pay off (`--backend compile+" + BEST_BF16 + "`).", ""]
    return lines


def _timm_vs_zoo(main: dict[str, Any]) -> list[str]:
    ok = {(r["backend"], r["batch_size"]): r for r in _ok(main, model="resnet18")}
    timm = {(r["backend"], r["batch_size"]): r for r in _ok(main, model="timm/resnet18")}
    lines = ["## zoo resnet18 vs timm resnet18 (part `main`, interleaved)", "",
             "`timm/resnet18` is `timm.create_model('resnet18', num_classes=10)` with the stem adapted to 32x32 by "
             "`zoo.create` (3x3 stride-1 conv1, no max-pool): the same architecture and FLOPs as zoo's resnet18, "
             "what a user would pick instead.", "",
             "| backend | batch | zoo images/s | timm images/s | zoo / timm |", "|---|---:|---:|---:|---:|"]
    for key, r in ok.items():
        if key in timm:
            t = timm[key]
            lines.append(f"| {key[0]} | {key[1]} | {r['images_per_s']:,.1f} | {t['images_per_s']:,.1f} | "
                         f"{r['images_per_s'] / t['images_per_s']:.2f} |")
    return lines + ["", "Every backend speeds timm's network up by as much as zoo's: the gains come from the "
                    "runtime, not from anything particular to zoo's model code.", ""]


def _recommendation(parts: dict[str, Any]) -> list[str]:
    par = parts.get("parity")
    lines = ["## zoo-eval's default on the CPU", "",
             "`zoo-eval` runs `--backend auto` by default: the setting the sweep measured fastest for a pass over "
             "the dataset, setup time included, and prints the difference from the checkpoint's recorded top-1; "
             "`--backend eager` gives the exact fp32 numbers.", ""]
    if par:
        for spec in par["settings"][1:]:
            changed = ", ".join(f"{c['weights']} {c[spec]['differing_from_eager']}" for c in par["checkpoints"])
            lines.append(f"- Predictions {spec} changes on the released checkpoints (part `parity`, of each test "
                         f"split): {changed}.")
        lines += ["", "bf16 changes logits by up to a few 1e-2, so a checkpoint whose recorded metrics are fp32 "
                  "can see a few images change class near a decision boundary: the released-checkpoint tests "
                  "that require the recorded top-1 exactly pin `--backend eager`.", ""]
    return lines


def _scores_table(part: dict[str, Any], title: str, intro: str) -> list[str]:
    settings = part["settings"]
    lines = [title, "", _part_line(part), "", intro, "",
             "| checkpoint | images | " + " | ".join(f"{s} top-1 (%)" + ("" if s == "eager" else f" | {s} differ")
                                                       for s in settings) + " |",
             "|---|---:|" + "|".join("---:" if s == "eager" else "---:|---:" for s in settings) + "|"]
    for c in part["checkpoints"]:
        cells = [f"{c['eager']['top1']:.2f}"] + [f"{c[s]['top1']:.2f} ({c[s]['top1'] - c['eager']['top1']:+.2f}) | "
                                                 f"{c[s]['differing_from_eager']}" for s in settings[1:]]
        lines.append(f"| {c['weights']} | {c['images']:,}{' (sample)' if c['is_sample'] else ''} | "
                     + " | ".join(cells) + " |")
    if len(settings) > 1:
        worst = {s: min(c[s]["top1"] - c["eager"]["top1"] for c in part["checkpoints"]) for s in settings[1:]}
        cifar = {s: min((c[s]["top1"] - c["eager"]["top1"] for c in part["checkpoints"] if c["dataset"] == "cifar10"),
                        default=0.0) for s in settings[1:]}
        lines += ["", "Largest top-1 loss: " + "; ".join(f"{s} {worst[s]:+.2f} points overall, {cifar[s]:+.2f} on "
                                                        f"CIFAR-10 checkpoints" for s in settings[1:]) + "."]
    return lines + [""]


BUSY = 0.25  # other processes' average busy cores above which a part counts as measured under load


def _load_paragraph(others: list[float], threads: int) -> str:
    if not others:
        return ""
    span = f"{min(others):.2f} to {max(others):.2f} cores busy on average during the parts (from `/proc/stat`)"
    if max(others) < BUSY:
        return (f"**Load.** The machine was otherwise idle: other processes kept {span}. Every part ran "
                f"{_threads_words(threads)}; ratios within one part, whose settings ran interleaved, are the "
                "numbers to compare.")
    return (f"**Load.** Other processes kept {span}, so these numbers were measured under load and absolute "
            "numbers on an idle machine will be higher; only ratios within one part, whose settings ran "
            "interleaved, should be compared.")


def markdown(result: dict[str, Any]) -> str:
    m, parts = result["machine"], result["parts"]
    threads = result.get("threads", 1)
    others = [p["load"]["busy_cores_other_processes"] for p in parts.values() if "load" in p]
    lines = [
        "# Inference throughput per backend (CPU; CUDA rows when a GPU is present)",
        "",
        f"Machine: {_machine_words(m)}, torch "
        f"{m['torch']}, onnxruntime {m['onnxruntime']}, timm {m['timm']}, Python {m['python']}; CUDA: "
        f"{m['cuda'] or 'none'}. Recorded {result['date']} by `python benchmarks/throughput.py` "
        f"(`zoo bench` does each part's work; see the script).",
        "",
        _load_paragraph(others, threads),
        "",
        "Method: fp32 NCHW input, fp32 logits out (casts and layout changes are timed); 2 warm-up calls; then "
        "timed calls interleaved round-robin until the slowest setting has run 2 s, at least 5 calls each. "
        "'setup s' is the preparation (folding, export, compilation) plus the first call. GFLOP/s use the "
        "model's FLOP count (`zoo.model_info`); '% peak' is GFLOP/s over the matmul peak of the row's precision "
        "(`zoo.benchmark.measure_peak`, best call of fp32 and bf16 matmuls), from the median latency and from "
        "the best call (the probe's peak is a best call too); above 100% means the convolutions beat the "
        "matmul probe. 'max abs diff' compares logits with eager fp32 on the same input (random weights, "
        "seed 0). 'mem MB' is the growth of resident memory during one forward pass (activations and "
        "workspace; onnxruntime keeps its arena from the warm-up and reads ~0).",
        "",
    ]
    lines += _issue_targets(parts, threads)
    lines += _targets(parts, threads)
    lines += _auto_section(parts)
    lines += _recommendation(parts)
    main = parts.get("main")
    if main:
        lines += ["## Every backend, batch 1 and 64 (part `main`)", "", _part_line(main), ""]
        for model in dict.fromkeys(r["model"] for r in main["rows"] if r["device"] == "cpu"):
            rows = [r for r in main["rows"] if r["device"] == "cpu" and r["model"] == model]
            lines += [f"### {model} ({rows[0]['gflops_per_image']:.3f} GFLOPs per image)", ""]
            lines += _rows_table(rows) + [""]
        cuda = [r for r in main["rows"] if r["device"] != "cpu"]
        if cuda and {r["status"] for r in cuda} == {"no CUDA device"}:
            lines += [f"CUDA: {len(cuda)} rows, all 'no CUDA device' (this machine has no GPU); the run went on.", ""]
        elif cuda:
            lines += ["### CUDA", ""] + _rows_table(cuda) + [""]
        lines += _timm_vs_zoo(main)
    lines += _compile_section(parts)
    cuda_part = parts.get("cuda")
    if cuda_part:
        gpu = [r for r in cuda_part["rows"] if r["device"] != "cpu"]
        lines += ["## CUDA (part `cuda`)", "", _part_line(cuda_part), ""]
        if gpu and {r["status"] for r in gpu} == {"no CUDA device"}:
            lines += [f"{len(gpu)} rows ({', '.join(CUDA_BACKENDS)}; batch 1, 64, 256), all 'no CUDA device': this "
                      "machine has no GPU, so there is no CUDA measurement here.", ""]
        else:
            lines += _rows_table([{**r, "model": f"{r['model']} ({r['device']})"} for r in cuda_part["rows"]]) + [""]
            ratios = [f"{r['model']} {r['backend']} b{r['batch_size']}: {r['cuda_speedup']:.1f}x"
                      for r in gpu if r.get("cuda_speedup")]
            if ratios:
                lines += ["CUDA vs CPU (same backend and batch): " + "; ".join(ratios) + ".", ""]
    sweep = parts.get("sweep")
    if sweep:
        lines += ["## Batch-size sweep (part `sweep`)", "", _part_line(sweep), ""] + _rows_table(sweep["rows"]) + [""]
    threads = parts.get("threads")
    if threads:
        busy = threads["load"]["busy_cores_other_processes"] >= BUSY
        lines += ["## Thread counts (part `threads`)", "", _part_line(threads), "",
                  "'x eager' is against eager at the same thread count."
                  + (" Under load, an extra OpenMP thread waits at every operator's barrier for a core another "
                     "process holds." if busy else ""), ""]
        lines += _rows_table(threads["rows"]) + [""]
    if parts.get("parity"):
        lines += _scores_table(parts["parity"], "## bf16 and onnxruntime vs eager fp32 on the released checkpoints "
                               "(part `parity`)", "Each checkpoint on its test split, batch 256; 'differ' counts the "
                               "images whose top-1 class is not eager fp32's.")
    if parts.get("int8"):
        lines += _scores_table(parts["int8"], "## int8 on the released checkpoints (part `int8`)",
                               "Static post-training quantisation calibrated on 300 training images of each "
                               "checkpoint's dataset (`zoo.data.calibration_batch`), scored on its test split. "
                               "'differ' counts the images whose top-1 class is not eager fp32's. How each file "
                               "was made (as the runner recorded it, first checkpoint): "
                               + _int8_methods(parts["int8"]))
    return "\n".join(lines) + "\n"


# How the int8 files of a part measured before the runner's notes were recorded (2026-11-28) were made.
_INT8_BEFORE_NOTES = {
    "onnxruntime-int8": "onnxruntime quantize_static, QDQ, per channel, from the unfolded model",
    "openvino-int8": "NNCF performance preset, averaged per-image activation ranges, fast bias correction, "
                     "from the unfolded model (BatchNorms after a pool left to the quantiser)",
}


def _int8_methods(part: dict[str, Any]) -> str:
    first = part["checkpoints"][0]
    methods = [f"{s}: " + ("; ".join(n for n in first[s]["notes"] if "exported by" not in n) if "notes" in first[s]
                           else f"{_INT8_BEFORE_NOTES[s]} (measured before the notes were recorded)")
               for s in part["settings"] if s in backends.INT8]
    return ". ".join(methods) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", action="append", choices=PARTS,
                        help="run only these parts (repeatable; default: all)")
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds of timed calls per batch (slowest)")
    parser.add_argument("--data-dir", help="dataset root for the parity part (default: $ZOO_DATA, then the cache)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch and onnxruntime threads (default: the usable cores)")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md and .png from the .json")
    parser.add_argument("--weights", action="append", metavar="NAME",
                        help="parts parity and int8: re-score only these released checkpoints (repeatable), keeping "
                             "the others' rows (after a checkpoint is replaced)")
    args = parser.parse_args()
    released = {w.name for w in zoo.list_weights()}
    unknown = sorted(set(args.weights or ()) - released)
    if unknown:
        raise SystemExit(f"--weights: no released checkpoint {', '.join(unknown)} (see `zoo list --pretrained`)")
    if args.weights and not (args.part and set(args.part) <= {"parity", "int8"}):
        raise SystemExit("--weights applies to the parts parity and int8 only: name them with --part")
    path = args.out / "throughput.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"parts": {}}
    if args.markdown_only and not path.exists():
        raise SystemExit(f"--markdown-only: {path} does not exist; run the benchmark first")
    if not args.markdown_only:
        here = machine()
        peak = measure_peak("cpu", threads=args.threads, refresh=True)
        # Some parts run over a recorded file: the file's machine, date and peak stay those of its full run,
        # and each part (or re-run) run now records its own machine, which the report names.
        partial = bool(args.part) and "machine" in result
        if not partial:
            result["machine"] = here
            result["date"] = time.strftime("%Y-%m-%d")
            result["threads"] = args.threads
            result["peak"] = {"fp32": peak.fp32, "bf16": peak.bf16, "loadavg": peak.loadavg, "method": peak.method}
        for part in args.part or PARTS:
            t0 = time.perf_counter()
            new = run_part(part, args.min_time, args.data_dir, args.threads, only=args.weights)
            if partial:
                new.update(measured_on=here, measured_date=time.strftime("%Y-%m-%d"))
            if args.weights:
                result["parts"][part] = merge_scores(result["parts"].get(part), new)
            else:
                result["parts"][part] = new
            print(f"part {part}: {time.perf_counter() - t0:.0f} s", flush=True)
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1, default=str) + "\n")
            if part == "sweep":  # what auto stands for from now on, on this CPU class (parts after it use it)
                write_auto_table(result["parts"]["sweep"])
    if result["parts"].get("int8") and args.out == RESULTS:  # what auto-int8 may choose, from the recorded scores
        write_int8_table(result["parts"]["int8"])
    (args.out / "throughput.md").write_text(markdown(result))
    main_part = result["parts"].get("main")
    if main_part:
        from zoo.utils.plots import plot_throughput

        rows = [r for r in main_part["rows"] if r["device"] == "cpu"]
        busy = main_part["load"]["busy_cores_other_processes"] >= BUSY
        plot_throughput(rows, args.out / "throughput.png",
                        title=f"images/s per backend, {result['machine']['cpu']}, "
                              f"{_threads_words(result.get('threads', 1))}{', under load' if busy else ''}")
    print((args.out / "throughput.md").read_text())


if __name__ == "__main__":
    main()
