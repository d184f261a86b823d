"""torch.distributed for training: the process group from torchrun's environment, and how a
global batch is shared among ranks and accumulation steps.

``gpner train`` under ``torchrun --nproc_per_node N`` (or ``accelerate launch``, which sets the
same variables) joins the group that ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT`` describe: NCCL on GPUs, gloo on CPUs. Without them it is one process.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from gpner.training.config import TrainConfig


def setup() -> tuple[int, int, torch.device]:
    """(rank, world size, device) of this process, joining the process group when torchrun
    started it. CUDA ranks use the GPU of their ``LOCAL_RANK``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda and world > 1 else torch.device(
        "cuda" if cuda else "cpu")
    if world <= 1:
        return 0, 1, device
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def refuse_under_ddp(cfg: TrainConfig) -> None:
    """Regularisers that DistributedDataParallel does not run correctly as written, refused
    with the reason (each works in one process, with or without ``accumulate``)."""
    why = {"rdrop": "it runs two forward passes before one backward, which DDP's gradient "
                    "reducer does not allow",
           "fgm": "it runs a second backward pass on perturbed embeddings, and DDP would average "
                  "the two passes' gradients separately",
           "pgd": "it runs several backward passes per step, each of which DDP would reduce",
           "vat": "it calls torch.autograd.grad, which DDP's reducer does not support",
           "grad_penalty": "it calls torch.autograd.grad (create_graph), which DDP's reducer "
                           "does not support"}
    on = [name for name in why if getattr(cfg, name)]
    if on:
        raise ValueError(f"{on[0]}={getattr(cfg, on[0])} cannot run under torchrun yet: "
                         f"{why[on[0]]}. Train in one process (with accumulate=K for a larger "
                         "batch), or without it")


def backend() -> str | None:
    return dist.get_backend() if dist.is_available() and dist.is_initialized() else None


def share(batch: Sequence[int], rank: int, world: int, accumulate: int) -> list[list[int]]:
    """This rank's micro-batches of one global batch (indices sorted by length): every
    ``world * accumulate``-th index from its offset, so each share has similar lengths.
    A share may be empty when the global batch is smaller than ``world * accumulate``."""
    parts = world * accumulate
    return [list(batch[rank * accumulate + m::parts]) for m in range(accumulate)]


def all_true(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` holds on every rank (one process: ``flag``)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def gather(items: list[Any], rank: int, world: int) -> list[Any]:
    """Every rank's ``items`` (rank r holding the r-th, (r + world)-th, ... of a list),
    interleaved back into the original order, on every rank."""
    if world <= 1:
        return items
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, items)
    out: list[Any] = []
    for k in range(max(len(p) for p in parts)):
        out.extend(p[k] for p in parts if k < len(p))
    return out


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
