"""What a run ran on, in words: recorded with checkpoints, benchmark results and studies."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

__all__ = ["device_name", "hardware_description"]


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


def hardware_description(device: torch.device | str = "cpu", world_size: int = 1) -> str:
    """``"AMD EPYC 9R14, 2 threads"`` (CPU: torch's thread count), ``"NVIDIA H100 ... x 2 processes"``."""
    device = torch.device(device)
    what = device_name(device)
    if device.type != "cuda":
        what = f"{what}, {torch.get_num_threads()} threads"
    return f"{what} x {world_size} processes" if world_size > 1 else what
