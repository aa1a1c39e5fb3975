"""Distributed helpers that are no-ops in a single process."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 outside DDP)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 outside DDP)."""
    return dist.get_rank() if is_distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sends each rank the gradient of its own slice.

    The gradient of a rank's input is the sum over ranks of the gradients flowing into
    that slice, which is what makes the loss equal to the one computed on the global batch.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads: Tensor) -> Tensor:  # type: ignore[override]
        all_grads = torch.stack(grads)
        dist.all_reduce(all_grads)
        return all_grads[dist.get_rank()]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` (B, ...) from all ranks along dim 0, keeping gradients."""
    if not is_distributed():
        return x
    return torch.cat(_GatherWithGrad.apply(x), dim=0)


@torch.no_grad()
def all_gather_no_grad(x: Tensor, dim: int = 0) -> Tensor:
    """Concatenate ``x`` from all ranks along ``dim`` in rank order, without gradients."""
    if not is_distributed():
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=dim)


@torch.no_grad()
def all_reduce_mean(x: Tensor) -> Tensor:
    """Mean of ``x`` over ranks (a copy; ``x`` itself is left alone)."""
    if not is_distributed():
        return x.clone()
    out = x.clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()


def print_rank_zero(message: str) -> None:
    """Print on global rank 0 only: results the user reads, not log noise."""
    if rank() == 0:
        print(message, flush=True)


def gather_objects(obj: object) -> list[object]:
    """``obj`` from every rank, in rank order (``[obj]`` outside DDP)."""
    if not is_distributed():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
