"""The machine: what a run ran on, in words (recorded with checkpoints, benchmark results and studies; the form
and its pattern are ``zoo.utils.hardware``'s), and the device a ``--device`` option names (``resolve_device``)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidArgumentError

__all__ = ["resolve_device", "machine_info", "device_name", "hardware_description", "cpu_description", "cpu_name",
           "cpu_family_model", "cpu_class", "cpu_flags", "cpu_has_bf16"]


def device_name(device: torch.device | str = "cpu") -> str:
    """The GPU's name, or the CPU's model name from /proc/cpuinfo (else what ``platform`` knows)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    what = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return what


# AMD's (CPU family, first model, last model + 1) -> microarchitecture; a virtual machine often names the CPU
# only "AMD EPYC", for CPUs several times apart in training speed
_AMD_CORES = ((23, 0x00, 0x30, "Zen 1/Zen+"), (23, 0x30, 0x100, "Zen 2"), (25, 0x10, 0x20, "Zen 4"),
              (25, 0x60, 0x80, "Zen 4"), (25, 0xA0, 0xB0, "Zen 4"), (25, 0x00, 0x100, "Zen 3"),
              (26, 0x00, 0x100, "Zen 5"))



def _cpuinfo(key: str) -> str | None:
    """The first /proc/cpuinfo value of ``key`` (None where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return None


def cpu_family_model() -> tuple[int, int] | None:
    """The CPU's (family, model) numbers from /proc/cpuinfo, or None."""
    family, model = _cpuinfo("cpu family"), _cpuinfo("model")
    return (int(family), int(model)) if family and model and family.isdigit() and model.isdigit() else None


def cpu_name() -> str:
    """The CPU's model name, with its microarchitecture and family/model numbers where the name alone does not
    say which CPU it is (no model number in it): ``"AMD EPYC Zen 4 (family 25 model 17)"``."""
    name = device_name("cpu")
    numbers = cpu_family_model()
    if numbers is None or re.search(r"\d{3,}", name):
        return name
    family, model = numbers
    if _cpuinfo("vendor_id") == "AuthenticAMD":
        core = next((c for f, lo, hi, c in _AMD_CORES if f == family and lo <= model < hi), None)
        name = f"{name} {core}" if core else name
    return f"{name} (family {family} model {model})"


def cpu_description(threads: int | None = None, precision: str | None = None) -> str:
    """``"AMD EPYC Zen 4 (family 25 model 17), avx512-bf16, 2 threads, bf16"``: the CPU (``cpu_name``), the class
    that decides its speed (``cpu_class``), ``threads`` (default: torch's thread count) and, for a training
    run, the ``precision`` it trained in."""
    threads = threads or torch.get_num_threads()
    text = f"{cpu_name()}, {cpu_class()}, {threads} thread{'s' if threads != 1 else ''}"
    return f"{text}, {precision}" if precision else text


def hardware_description(device: torch.device | str = "cpu", world_size: int = 1, precision: str | None = None) -> str:
    """What a run ran on: the CPU (``cpu_description``) or ``"NVIDIA H100 ..."``, ``" x 2 processes"`` for a
    data-parallel run, then the training ``precision`` when given."""
    device = torch.device(device)
    what = device_name(device) if device.type == "cuda" else cpu_description()
    what = f"{what} x {world_size} processes" if world_size > 1 else what
    return f"{what}, {precision}" if precision else what


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_class() -> str:
    """The kind of CPU that decides which inference kernels are fastest: ``amx-bf16`` (Intel Xeon with AMX),
    ``avx512-bf16`` (e.g. AMD Zen 4), ``avx512``, ``avx2``, else the machine architecture (``aarch64``...)."""
    flags = cpu_flags()
    for flag, name in (("amx_bf16", "amx-bf16"), ("avx512_bf16", "avx512-bf16"), ("avx512f", "avx512"),
                       ("avx2", "avx2")):
        if flag in flags:
            return name
    return platform.machine() or "unknown"


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX); without it bf16 is emulated and
    many times slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_device(device: str | torch.device) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; a CUDA request on a machine without CUDA raises."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidArgumentError(f"invalid device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"--device {device}: no CUDA device is available on this machine; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"unsupported device {device!r}; use cpu or cuda")
    return dev


def machine_info() -> dict[str, Any]:
    """The machine a benchmark ran on, with its load (1/5/15-minute load average) at the time of the call."""
    info: dict[str, Any] = {
        "cpu": device_name("cpu"),
        "hardware": cpu_description(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": cpu_has_bf16(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    for name in ("onnxruntime", "timm", "openvino", "nncf"):  # read from the installed metadata, not imported
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = None
    return info
