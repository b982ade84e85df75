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
    """Join the torchrun process group if launched by torchrun; a no-op otherwise. Each process
    takes the GPU of its LOCAL_RANK, so a device named by number would put every rank on one."""
    if "RANK" not in os.environ or dist.is_initialized():
        return
    if device.index is not None:
        from rlhf_lab.run import ConfigError     # run.py imports this module
        raise ConfigError(f"--device {device}: under torchrun each process takes the GPU of its LOCAL_RANK; "
                          "pass --device cuda (CUDA_VISIBLE_DEVICES chooses which GPUs torchrun uses)")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


def barrier() -> None:
    """Wait for every rank: the next stage reads what rank 0 has just written."""
    if dist.is_initialized():
        dist.barrier()


def close() -> None:
    """Leave the process group once every rank is done: a torchrun process that exits
    while still in it can abort (SIGABRT) in the backend's teardown."""
    if dist.is_initialized():
        barrier()
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def shard(items: list, what: str) -> list:
    """This rank's share of a list: every world_size-th item. Every rank needs one at least
    (`what` names them in the error): a rank with none would have nothing to train on."""
    if len(items) < world_size():
        from rlhf_lab.run import ConfigError     # run.py imports this module
        raise ConfigError(f"{len(items)} {what} for {world_size()} torchrun processes: each needs one at least; "
                          "give more or start fewer (--nproc_per_node)")
    return items[rank()::world_size()]


def wrap(model: nn.Module) -> nn.Module:
    """DistributedDataParallel around `model` when running under torchrun."""
    if not dist.is_initialized():
        return model
    device = next(model.parameters()).device     # a CPU run on a machine with GPUs takes no device_ids
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def all_mean(metrics: dict[str, float]) -> dict[str, float]:
    """Each scalar metric averaged over ranks, in one all-reduce."""
    if not dist.is_initialized():
        return metrics
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"      # NCCL reduces GPU tensors only
    t = torch.tensor(list(metrics.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(metrics, (t / world_size()).tolist()))
