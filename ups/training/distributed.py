"""Multi-process data parallelism: ``torchrun`` (or any launcher that sets RANK / WORLD_SIZE) with DDP.

Each rank draws its slice of one global batch (:mod:`ups.data.windows`), so ``world`` ranks with batch ``B`` train
on exactly the windows one process with batch ``B × world`` does; DDP averages the per-rank mean losses' gradients,
which equals the gradient of the global mean. Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group when launched with WORLD_SIZE > 1 (idempotent); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def wrap(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DDP around ``module`` (its trainable parameters) when distributed, else ``module`` itself."""
    if not info.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def all_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """``flag`` and-ed over ranks (so every rank takes the same abort decision); ``device`` must suit the backend."""
    if not info.enabled:
        return flag
    t = torch.tensor([0 if flag else 1], dtype=torch.int64, device=device)
    dist.all_reduce(t)
    return int(t.item()) == 0


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
