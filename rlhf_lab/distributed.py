"""torchrun / DDP at the edge of the library (the core loops are single-process).

`torchrun --nproc_per_node N -m rlhf_lab.cli sft ...` (or train-rm, ppo) sets
RANK/WORLD_SIZE; `init()` then joins the process group and every stage shards its
data with `shard()`, averages gradients through DistributedDataParallel (`wrap()`),
and prints and writes its run directory from rank 0 only.
Nothing here is imported by the math.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def init(device: torch.device) -> None:
    """Join the torchrun process group if launched by torchrun; a no-op otherwise."""
    if "RANK" not in os.environ or dist.is_initialized():
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def shard(items: list) -> list:
    """This rank's share of a list: every world_size-th item."""
    return items[rank()::world_size()]


def wrap(model: nn.Module) -> nn.Module:
    """DistributedDataParallel around `model` when running under torchrun."""
    if not dist.is_initialized():
        return model
    device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def all_mean(value: float) -> float:
    """Mean of a scalar metric over ranks."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / world_size()
