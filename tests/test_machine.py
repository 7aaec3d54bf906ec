"""What zoo says a run ran on: one function writes it (``zoo.utils.machine.hardware_description``), one pattern
reads it (``zoo.utils.hardware``), older records are read into that form, and every released checkpoint's card
matches the pattern."""

from __future__ import annotations

import pytest

import zoo
from zoo.utils import machine
from zoo.utils.hardware import HARDWARE_PATTERN, recorded_hardware
from zoo.utils.machine import cpu_name, hardware_description


def _cpuinfo(values: dict[str, str]):
    return lambda key: values.get(key)


@pytest.mark.parametrize(("info", "expected"), [
    ({"model name": "AMD EPYC", "vendor_id": "AuthenticAMD", "cpu family": "25", "model": "17"},
     "AMD EPYC Zen 4 (family 25 model 17)"),
    ({"model name": "AMD EPYC", "vendor_id": "AuthenticAMD", "cpu family": "25", "model": "1"},
     "AMD EPYC Zen 3 (family 25 model 1)"),
    ({"model name": "AMD EPYC", "vendor_id": "AuthenticAMD", "cpu family": "23", "model": "1"},
     "AMD EPYC Zen 1/Zen+ (family 23 model 1)"),
    ({"model name": "AMD EPYC 9654 96-Core Processor", "vendor_id": "AuthenticAMD", "cpu family": "25",
      "model": "17"}, "AMD EPYC 9654 96-Core Processor"),  # the name says which CPU it is
    ({"model name": "Intel Xeon Processor", "vendor_id": "GenuineIntel", "cpu family": "6", "model": "143"},
     "Intel Xeon Processor (family 6 model 143)"),
])
def test_a_generic_cpu_name_gains_its_microarchitecture_and_numbers(monkeypatch: pytest.MonkeyPatch,
                                                                    info: dict[str, str], expected: str) -> None:
    monkeypatch.setattr(machine, "_cpuinfo", _cpuinfo(info))
    monkeypatch.setattr(machine, "device_name", lambda device="cpu": info["model name"])
    assert cpu_name() == expected


def test_what_this_machine_writes_matches_the_pattern() -> None:
    for text in (hardware_description(precision="bf16"), hardware_description(precision="fp32", world_size=2)):
        m = HARDWARE_PATTERN.fullmatch(text)
        assert m is not None, text
        assert m["cls"] == machine.cpu_class() and m["threads"] and m["precision"] in ("bf16", "fp32")
    assert HARDWARE_PATTERN.fullmatch("AMD EPYC, 2 threads") is None  # neither class nor precision: refused
    assert HARDWARE_PATTERN.fullmatch("AMD EPYC (avx2), 2 threads, fp32") is None  # the old form


@pytest.mark.parametrize("w", zoo.list_weights(), ids=lambda w: w.name)
def test_every_released_card_names_its_cpu_class_and_precision_or_says_not_recorded(w) -> None:
    for part in w.hardware.split(" + "):  # a run resumed on another machine
        m = HARDWARE_PATTERN.fullmatch(part)
        assert m is not None, f"{w.name}: {w.hardware!r} is not what zoo.utils.machine.hardware_description writes"
        if "NVIDIA" not in m["name"]:
            assert m["cls"] and m["threads"], w.hardware  # a CPU: its class (or "class not recorded") and threads


@pytest.mark.parametrize(("old", "precision", "expected"), [
    ("AMD EPYC, 2 threads", "bf16", "AMD EPYC, class not recorded, 2 threads, bf16"),
    ("AMD EPYC (avx2), 2 threads", "fp32", "AMD EPYC, avx2, 2 threads, fp32"),
    ("AMD EPYC, 1 threads", None, "AMD EPYC, class not recorded, 1 thread, precision not recorded"),
    ("NVIDIA H200", "bf16", "NVIDIA H200, bf16"),
    ("AMD EPYC (avx2), 2 threads + AMD EPYC (avx512-bf16), 2 threads", "fp32",
     "AMD EPYC, avx2, 2 threads, fp32 + AMD EPYC, avx512-bf16, 2 threads, fp32"),
    ("AMD EPYC Zen 4 (family 25 model 17), avx512-bf16, 2 threads, bf16", "fp32",
     "AMD EPYC Zen 4 (family 25 model 17), avx512-bf16, 2 threads, bf16"),  # already in the form: kept
    (None, "bf16", "not recorded"),
])
def test_older_records_are_read_into_the_form_without_guessing(old: str | None, precision: str | None,
                                                               expected: str) -> None:
    assert recorded_hardware(old, precision) == expected
    if old:
        assert all(HARDWARE_PATTERN.fullmatch(p) for p in expected.split(" + ")), expected


def test_zoo_status_reads_an_older_run_into_the_form() -> None:
    """docs/runs/resnet56.cifar10 was logged before runs named their CPU class: zoo status says so, with the
    precision its recipe.json records, in the form the cards use."""
    from pathlib import Path

    from zoo.train.runs import run_status

    run = Path(__file__).resolve().parents[1] / "docs" / "runs" / "resnet56.cifar10"
    assert run_status(run).hardware == "AMD EPYC, class not recorded, 2 threads, bf16"
