"""zoo.benchmark and zoo.runners: rows with consistent numbers, absent devices and backends, BN folding, peak cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import zoo
import zoo.utils.measure
from zoo import benchmark
from zoo import runners as backends
from zoo.cli import cli
from zoo.runners import auto

FAST = dict(warmup=1, min_time_s=0.0, min_repeats=3, max_repeats=3, threads=[1])


@pytest.fixture
def fake_probe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[torch.dtype]:
    """The matmul probe replaced by fixed numbers (100 GFLOP/s fp32, 200 bf16); the cache in tmp_path."""
    calls: list[torch.dtype] = []

    def probe(device: torch.device, dtype: torch.dtype, seconds: float) -> float:
        calls.append(dtype)
        return 200.0 if dtype == torch.bfloat16 else 100.0

    monkeypatch.setattr(zoo.utils.measure, "_probe", probe)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return calls


def test_two_backends_give_positive_consistent_numbers(fake_probe: list[torch.dtype]) -> None:
    r = benchmark.bench(["lenet_cifar_bn"], backends=["eager", "fold-bn+channels-last"], batch_sizes=[1, 4], **FAST)
    assert [(x.backend, x.batch_size) for x in r.rows] == [("eager", 1), ("fold-bn+channels-last", 1),
                                                          ("eager", 4), ("fold-bn+channels-last", 4)]
    gflops = zoo.model_info("lenet_cifar_bn").gflops
    for x in r.rows:
        assert x.ok and x.device == "cpu" and x.threads == 1 and x.precision == "fp32" and x.repeats == 3
        assert 0 < x.best_ms <= x.median_ms <= x.p90_ms
        assert x.images_per_s == pytest.approx(x.batch_size / (x.median_ms / 1e3), rel=1e-3, abs=0.006)  # 2 decimals
        assert x.gflop_per_s == pytest.approx(gflops * x.images_per_s, rel=1e-3, abs=0.006)
        assert x.peak_gflop_per_s == 100.0 and x.peak_share == pytest.approx(x.gflop_per_s / 100.0, rel=1e-3)
        assert x.max_abs_diff is not None and x.max_abs_diff < 1e-4 and x.argmax_agreement == 1.0
        assert x.peak_memory_mb is None or x.peak_memory_mb >= 0
    assert all(x.speedup_vs_eager == 1.0 for x in r.rows if x.backend == "eager")
    folded = [x for x in r.rows if x.backend != "eager"]
    assert all(x.setting == "fold-bn+channels-last" and "folded 4 of 4 BatchNorm layers" in x.notes for x in folded)
    assert r.to_dict()["rows"][0]["ok"] is True and r.machine["torch"] == torch.__version__


def test_cuda_rows_are_marked_absent_and_the_run_goes_on(monkeypatch: pytest.MonkeyPatch,
                                                         fake_probe: list[torch.dtype]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = benchmark.bench(["resnet20"], devices=["cpu", "cuda"], backends=["eager", "auto"], batch_sizes=[2], **FAST)
    cuda = [x for x in r.rows if x.device == "cuda"]
    cpu = [x for x in r.rows if x.device == "cpu"]
    assert len(cuda) == 2 and all(x.status == "no CUDA device" and x.images_per_s is None for x in cuda)
    assert len(cpu) == 2 and all(x.ok and x.images_per_s > 0 for x in cpu)
    assert all(x.cuda_speedup is None for x in r.rows)


def test_missing_backend_is_marked_not_installed(monkeypatch: pytest.MonkeyPatch,
                                                 fake_probe: list[torch.dtype]) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    r = benchmark.bench(["resnet20"], backends=["onnxruntime", "eager", "auto"], batch_sizes=[1], **FAST)
    by = {x.backend: x for x in r.rows}
    assert by["onnxruntime"].status == "not installed: onnxruntime" and by["onnxruntime"].median_ms is None
    assert by["eager"].ok and by["auto"].ok
    assert by["auto"].setting != "onnxruntime"  # auto falls back to what is installed
    assert backends.resolve_auto("cpu", 1, gflops=0.01) != "onnxruntime"


def _random_statistics(net: nn.Module) -> nn.Module:
    for m in net.modules():  # statistics far from the identity, so a wrong fold shows
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


def _conv_bn_net() -> nn.Module:
    torch.manual_seed(0)
    return _random_statistics(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4), nn.BatchNorm1d(4)))


def _conv_pool_bn_net() -> nn.Module:  # FastNet's order: the BatchNorm after the pool
    torch.manual_seed(0)
    return _random_statistics(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(8), nn.GELU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 4)))


@pytest.mark.parametrize("make", [_conv_bn_net, _conv_pool_bn_net, lambda: zoo.create("resnet20").eval(),
                                  lambda: _random_statistics(zoo.create("fastnet_mnist"))],
                         ids=["conv_bn", "conv_pool_bn", "resnet20", "fastnet_mnist"])
def test_fold_batchnorm_matches_eager_and_removes_batchnorm(make) -> None:  # type: ignore[no-untyped-def]
    model = make()
    x = torch.randn(5, *next(model.parameters()).shape[1:2], 32, 32)
    folded = backends.fold_batchnorm(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())  # the original is kept
    with torch.no_grad():
        assert (folded(x) - model(x)).abs().max().item() <= 1e-5


def test_a_model_folded_across_a_pool_runs_right_in_openvino_fp32(tmp_path: Path) -> None:
    # OpenVINO's CPU plugin moves an activation after conv -> max-pool into the conv (max(gelu(z)) in
    # place of gelu(max(z))); to_openvino moves each such conv's bias after its pool, so it can't.
    ov = pytest.importorskip("openvino")
    from zoo.runners.serialize import to_openvino

    model = _conv_pool_bn_net()
    folded = backends.fold_batchnorm(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    to_openvino(folded, tmp_path / "f.xml", input_size=(3, 32, 32))
    compiled = ov.Core().compile_model(str(tmp_path / "f.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    assert (torch.from_numpy(compiled(x.numpy())[0]) - expected).abs().max().item() <= 1e-4


def test_a_batchnorm_with_a_negative_scale_stays_after_its_pool() -> None:
    model = _conv_pool_bn_net()
    model[2].weight.data[3] = -0.7  # max(-x) is not -max(x): moving this norm before the pool would be wrong
    x = torch.randn(5, 3, 32, 32)
    folded = backends.fold_batchnorm(model)
    norms = [m for m in folded.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 1 and torch.equal(norms[0].weight, model[2].weight)  # the other one folded
    with torch.no_grad():
        assert (folded(x) - model(x)).abs().max().item() <= 1e-5


def test_peak_probe_is_cached_per_machine_threads_and_torch(fake_probe: list[torch.dtype], tmp_path: Path) -> None:
    first = benchmark.measure_peak("cpu", threads=1)
    probes = len(fake_probe)
    assert probes >= 1 and first.fp32 == 100.0
    again = benchmark.measure_peak("cpu", threads=1)
    assert len(fake_probe) == probes and again == first  # read from the cache, not measured
    cache = tmp_path / "zoo" / "peak.json"
    assert benchmark.peak_cache_path() == cache
    stored = json.loads(cache.read_text())
    assert list(stored) == [first.key] and "1 thread |" in first.key and torch.__version__ in first.key
    benchmark.measure_peak("cpu", threads=1, refresh=True)
    assert len(fake_probe) == 2 * probes
    benchmark.measure_peak("cpu", threads=2)
    assert len(json.loads(cache.read_text())) == 2


def test_parse_backend_orders_modifiers_and_rejects_bad_combinations() -> None:
    assert backends.parse_backend("bf16-cast+channels-last+fold-bn") == ("fold-bn", "channels-last", "bf16-cast")
    assert backends.parse_backend("eager") == ("eager",)
    for spec in ("onnxruntime+bf16", "bf16+bf16-cast", "warp-speed", ""):
        with pytest.raises(zoo.InvalidArgumentError):
            backends.parse_backend(spec)
    for device in ("cpu", "cuda"):
        for b in (1, 256):
            backends.parse_backend(backends.resolve_auto(device, b, gflops=0.1))


def _table(cls: str) -> dict[str, object]:
    """A measured table like zoo/auto.json's: small calls fastest on onnxruntime, large ones on openvino-bf16."""
    def point(gflop: float, **ips: float) -> dict[str, object]:
        return {"model": "m", "batch_size": 1, "gflop_per_call": gflop,
                "candidates": {k.replace("_", "-"): {"images_per_s": v, "setup_s": 0.0 if k == "eager" else 5.0}
                               for k, v in ips.items()}}

    return {cls: {"machine": "test CPU, 2 threads", "recorded": "2026-11-28", "points": [
        point(0.1, eager=100.0, onnxruntime=300.0, openvino=200.0),
        point(1.0, eager=100.0, onnxruntime=101.0, openvino=104.0),  # fp32 settings within 5% of each other
        point(10.0, eager=100.0, openvino=200.0, openvino_bf16=205.0),  # bf16 within 5% of fp32
        point(60.0, eager=100.0, onnxruntime=120.0, openvino_bf16=400.0),
    ]}}


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.utils.machine import cpu_class

    monkeypatch.setattr(auto, "auto_table", lambda path=None: _table(cpu_class()))
    monkeypatch.setattr(auto, "cpu_has_bf16", lambda: True)


def test_auto_picks_the_fastest_measured_setting_at_the_nearest_point(measured: None) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    assert backends.resolve_auto("cpu", 1, gflops=0.08) == "onnxruntime"  # nearest point: 0.1 GFLOP
    assert backends.resolve_auto("cpu", 4, gflops=0.25) == "openvino"  # 1.0 GFLOP: the fastest, all fp32
    assert backends.resolve_auto("cpu", 10, gflops=1.0) == "openvino"  # bf16 faster by under 5%: fp32 wins
    assert backends.resolve_auto("cpu", 64, gflops=1.1) == "openvino-bf16"  # 70 GFLOP per call: nearest is 60
    assert backends.resolve_auto("cpu", 64, gflops=None) == "openvino-bf16"  # unknown: the largest call
    # a pass over few images pays the 5 s export: eager (no setup) wins there, the export wins over many
    assert backends.resolve_auto("cpu", 64, gflops=1.1, images=100) == "eager"
    assert backends.resolve_auto("cpu", 64, gflops=1.1, images=10_000) == "openvino-bf16"
    assert backends.resolve_auto("cuda", 1, gflops=0.08) == auto.AUTO_CUDA
    assert "measured on test CPU" in backends.auto_rule()["cpu"]


def test_a_report_picks_with_the_measured_machines_bf16_not_this_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # throughput.md is re-rendered anywhere (--markdown-only): its `auto` column must not change with the CPU.
    pytest.importorskip("openvino")
    got = {"eager": {"images_per_s": 100.0}, "openvino-bf16": {"images_per_s": 400.0}}
    for here in (True, False):
        monkeypatch.setattr(auto, "cpu_has_bf16", lambda here=here: here)
        assert auto._pick(got, None, bf16=True) == "openvino-bf16"
        assert auto._pick(got, None, bf16=False) == "eager"
        assert auto._pick(got, None) == ("openvino-bf16" if here else "eager")


def test_auto_skips_what_is_not_installed_or_not_native(measured: None, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    assert backends.resolve_auto("cpu", 64, gflops=1.1) == "onnxruntime"
    monkeypatch.setattr(auto, "cpu_has_bf16", lambda: False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert backends.resolve_auto("cpu", 64, gflops=1.1) == "eager"


def test_auto_falls_back_to_a_rule_on_a_cpu_class_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(auto, "auto_table", lambda path=None: _table("some-other-cpu"))
    assert backends.resolve_auto("cpu", 1, gflops=0.08) == "onnxruntime"  # resnet20, one image
    large = backends.resolve_auto("cpu", 64, gflops=1.1)  # resnet18, batch 64
    assert "fold-bn" in large and ("bf16-cast" in large) == auto.cpu_has_bf16()
    assert "not measured for" in backends.auto_rule()["cpu"]


def test_recorded_auto_table_names_only_candidates() -> None:
    """zoo/auto.json is written by benchmarks/throughput.py; whatever it holds must be usable by resolve_auto."""
    auto.auto_table.cache_clear()
    table = auto.auto_table()
    if not table:
        pytest.skip("no zoo/auto.json recorded yet")
    for cls, measured in table.items():
        assert measured["machine"] and measured["recorded"] and measured["points"], cls
        for point in measured["points"]:
            assert point["gflop_per_call"] > 0 and point["candidates"]
            for spec, c in point["candidates"].items():
                assert spec in (*backends.AUTO_CANDIDATES, *backends.AUTO_INT8_CANDIDATES), spec
                assert c["images_per_s"] > 0 and c["setup_s"] >= 0
    backends.parse_backend(backends.resolve_auto("cpu", 64, gflops=1.1))


def test_prepare_bf16_runner_returns_fp32_logits_close_to_eager() -> None:
    model = _conv_bn_net()
    x = torch.randn(4, 3, 32, 32)
    p = backends.prepare(model, "fold-bn+channels-last+bf16-cast", input_size=(3, 32, 32))
    with torch.no_grad():
        out, ref = p(x), model(x)
    assert p.precision == "bf16" and out.dtype == torch.float32 and out.shape == ref.shape
    assert (out - ref).abs().max().item() < 0.1


def test_cli_bench_json_parses_and_plots(fake_probe: list[torch.dtype], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    png = tmp_path / "bench.png"
    result = CliRunner().invoke(cli, ["bench", "-m", "lenet_cifar_bn", "--device", "cpu,cuda", "--backend",
                                      "eager,fold-bn", "-b", "2", "--threads", "1", "--min-time", "0", "--json",
                                      "--plot", str(png)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {r["device"] for r in data["rows"]} == {"cpu", "cuda"}
    assert all(r["images_per_s"] > 0 for r in data["rows"] if r["device"] == "cpu")
    assert all(r["status"] == "no CUDA device" for r in data["rows"] if r["device"] == "cuda")
    assert data["peaks"] and data["machine"]["loadavg"] is not None
    assert png.stat().st_size > 1000


def test_cuda_graph_is_cuda_only_and_marked_so_on_the_cpu(fake_probe: list[torch.dtype]) -> None:
    with pytest.raises(zoo.InvalidArgumentError, match="cuda-graph needs a CUDA device"):
        backends.prepare(_conv_bn_net(), "channels-last+bf16+cuda-graph", input_size=(3, 32, 32))
    r = benchmark.bench(["resnet20"], backends=["eager", "cuda-graph"], batch_sizes=[2], **FAST)
    assert {x.backend: x.status for x in r.rows} == {"eager": "ok", "cuda-graph": "CUDA only (CUDA graphs)"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_replays_the_eager_result_per_batch_shape() -> None:
    model = _conv_bn_net().cuda()
    p = backends.prepare(model, "cuda-graph", input_size=(3, 32, 32), device="cuda")
    for n in (2, 5, 2):  # a new shape captures a new graph; a known one replays
        x = torch.randn(n, 3, 32, 32, device="cuda")
        with torch.no_grad():
            assert (p(x) - model(x)).abs().max().item() < 1e-4


def _throughput_script() -> object:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"
    spec = importlib.util.spec_from_file_location("zoo_bench_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recorded_scores_are_of_the_released_checkpoints() -> None:
    """benchmarks/results/throughput.json's parity and int8 tables hold every released checkpoint, each scored
    from the file released now (a replaced checkpoint is re-scored with --weights)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "throughput.json"
    if not path.exists():
        pytest.skip("no benchmarks/results/throughput.json recorded yet")
    released = {w.name: w for w in zoo.list_weights()}
    for name, part in json.loads(path.read_text())["parts"].items():
        if name not in ("parity", "int8"):
            continue
        assert sorted(c["weights"] for c in part["checkpoints"]) == sorted(released), name
        for c in part["checkpoints"]:
            w = released[c["weights"]]
            assert (c["eager"]["top1"], c["images"]) == (w.metrics.top1, w.metrics.num_images), (name, w.name)
            assert c.get("sha256", w.sha256) == w.sha256, (name, w.name)
            if name == "int8":  # every released checkpoint keeps its accuracy in int8, with either quantiser
                for spec in ("onnxruntime-int8", "openvino-int8"):
                    assert abs(c[spec]["top1"] - c["eager"]["top1"]) <= 0.5, (w.name, spec, c[spec]["top1"])


def test_a_rerun_for_some_checkpoints_keeps_the_other_rows() -> None:
    throughput = _throughput_script()
    names = [w.name for w in zoo.list_weights()][:3]
    load = {"wall_s": 1.0, "cores": 2, "busy_cores_other_processes": 0.0, "busy_cores_this_process": 1.0,
            "loadavg_start": [0.0], "loadavg_end": [0.0]}
    old = {"settings": ["eager"], "load": load,
           "checkpoints": [{"weights": n, "eager": {"top1": 1.0}} for n in reversed(names)]}
    new = {"settings": ["eager"], "load": {**load, "wall_s": 9.0},
           "checkpoints": [{"weights": names[1], "eager": {"top1": 2.0}}]}
    merged = throughput.merge_scores(old, new)
    assert [c["weights"] for c in merged["checkpoints"]] == names  # the registry's order
    assert [c["eager"]["top1"] for c in merged["checkpoints"]] == [1.0, 2.0, 1.0]
    assert merged["load"] == load and merged["reruns"][0]["weights"] == [names[1]]
    assert f"for {names[1]} (`--weights`): 9 s" in throughput._part_line(merged)
    # A re-run on another machine than the file's full run names it; the part keeps its own.
    other = {"cpu": "AMD EPYC", "cores": 2, "cpu_capability": "AVX2", "cpu_bf16": False}
    moved = throughput.merge_scores(old, {**new, "measured_on": other, "measured_date": "2026-11-30"})
    assert "measured_on" not in moved and moved["reruns"][0]["rerun_machine"] == other
    assert (f"Re-measured on {moved['reruns'][0]['date']} on AMD EPYC, 2 cores (AVX2, native bf16: False) for "
            f"{names[1]} (`--weights`): 9 s") in throughput._part_line(moved)
    assert throughput._part_line({**new, "measured_on": other, "measured_date": "2026-11-30"}).startswith(
        "Measured on 2026-11-30 on AMD EPYC, 2 cores (AVX2, native bf16: False): 9 s")
    with pytest.raises(SystemExit, match="without --weights"):  # other settings: no half-and-half table
        throughput.merge_scores(old, {**new, "settings": ["eager", "onnxruntime"]})
