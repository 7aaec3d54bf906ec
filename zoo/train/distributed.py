"""Data parallel training: the process group's facts, under ``torchrun --nproc_per_node=N`` (gloo on CPU, nccl on
CUDA), and a single process when not launched by it."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn as nn

__all__ = ["Dist", "unwrap"]


class Dist:
    """Process-group facts; a single process when not launched by torchrun."""

    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` under DistributedDataParallel when there are several processes."""
        return nn.parallel.DistributedDataParallel(model) if self.enabled else model

    def all_reduce(self, tensor: torch.Tensor) -> None:
        """Sum ``tensor`` over the processes, in place."""
        if self.enabled:
            dist.all_reduce(tensor)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel (or ``model`` itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
