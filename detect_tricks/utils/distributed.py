"""Process-group set-up for `torchrun` jobs, and the few collectives the engine needs.

One process per device: `torchrun --nproc_per_node=N` sets RANK, WORLD_SIZE and
LOCAL_RANK; without them the job is a single process and every helper here is a no-op.
The backend is NCCL on CUDA and gloo on CPU (how the tests run two processes here).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from detect_tricks.core.errors import UsageError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job and which device it drives."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # noqa: RUF009 - immutable

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and shows progress."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """`auto` picks this process's GPU when CUDA is available, else the CPU."""
    if choice not in ("auto", "cpu", "cuda"):
        raise UsageError(f"the device must be auto, cpu or cuda, got {choice!r}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "the device is 'cuda' but no CUDA device is available here (use cpu or auto)"
        )
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device_choice: str) -> DistContext:
    """Join the torchrun process group if there is one; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_choice, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistContext(rank, world_size, local_rank, device)


@contextmanager
def distributed_job(device_choice: str) -> Iterator[DistContext]:
    """Join the process group for the body of a job, then leave it cleanly.

    A job that ends normally frees the DDP wrappers first (they sit in reference cycles
    through their own hooks, so only the cyclic GC frees them, and left to interpreter
    exit their gloo group is torn down mid-finalization: rank 1 of a finished torchrun
    job died with SIGABRT, "terminate called without an active exception"), then waits
    at a barrier so no process closes its connections while a peer still uses them.
    After an error the barrier is skipped: the peers may never reach it.
    """
    ctx = init_distributed(device_choice)
    finished = False
    try:
        yield ctx
        finished = True
    finally:
        if dist.is_initialized():
            gc.collect()
            if finished:
                dist.barrier()
            dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The element-wise sum of `values` over all processes."""
    if not ctx.is_distributed:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_reduce_mean(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The element-wise mean of `values` over all processes."""
    return all_reduce_sum(values, ctx) / ctx.world_size


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every process's `obj`, in rank order (picklable objects, e.g. detections)."""
    if not ctx.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's `obj` on every process."""
    if not ctx.is_distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
