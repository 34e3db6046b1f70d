"""Several processes on one machine or several (``torchrun``): DistributedDataParallel for the trainer.

``unetgui train`` runs unchanged under ``torchrun --nproc-per-node N [--nnodes ...]``: :func:`init_from_env`
joins the process group torchrun describes in the environment (NCCL when the device is a CUDA GPU, gloo on
CPUs). Each rank draws its own patches (its own seed), DDP averages the gradients, the ranks agree on the
elapsed time at every step (so the learning rate, the time budget and early stopping are the same
everywhere), validation slices are shared out and their counts summed, and rank 0 alone prints and writes
the model. Without torchrun (``WORLD_SIZE`` unset or 1) every function here is a no-op, and the app never
uses them. docs/engine.md shows how to launch on one machine and on a SLURM cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def world() -> tuple[int, int]:
    """(rank, number of processes); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: str = "auto") -> tuple[int, int]:
    """Join the process group torchrun set up (``WORLD_SIZE`` > 1), once; (rank, size)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or not dist.is_available():
        return 0, 1
    if not dist.is_initialized():
        cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return world()


def _tensor_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def agree_max(values: list[float]) -> list[float]:
    """The element-wise maximum of ``values`` over all ranks (the values themselves on one process)."""
    if world()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_tensor_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.cpu().tolist()


def sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over all ranks (on the CPU, whatever the backend)."""
    if world()[1] == 1:
        return t
    moved = t.to(_tensor_device())
    dist.all_reduce(moved, op=dist.ReduceOp.SUM)
    return moved.cpu()


def rank_zero_first(fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0, then on the other ranks (e.g. filling a cache on disk that the others then read)."""
    rank, size = world()
    if size == 1:
        return fn()
    if rank == 0:
        try:
            return fn()
        finally:  # also when it fails: the other ranks then fail on their own, instead of waiting forever
            dist.barrier()
    dist.barrier()
    return fn()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model DDP trains (the model itself on one process)."""
    if world()[1] == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
