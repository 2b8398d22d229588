"""Cross-device helpers for contrastive losses: "local loss + gather with gradient".

Every rank scores its local rows against columns gathered from all ranks. The gather must carry
gradients back to the rank that owns each slice, summed over every rank that used it:
``torch.distributed.nn.functional.all_gather`` does exactly that (its backward is a
reduce-scatter). A gather whose backward returns only the local slice of the local gradient (as
in some public CLIP re-implementations) silently drops the other ranks' contributions.
Lightning's ``all_gather(sync_grads=True)`` wraps the same function but returns ``[W, B, ...]``
on several devices and ``[B, ...]`` on one, so we call torch directly and always return ``[W*B, ...]``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def gather_with_grad(x: Tensor) -> Tensor:
    """``[B, ...]`` on each rank -> ``[W*B, ...]`` (rank-major), differentiable w.r.t. every slice.

    All ranks must pass the same shape (use ``drop_last=True`` for training loaders).
    """
    if not is_distributed():
        return x
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(x), dim=0)


@torch.no_grad()
def gather_no_grad(x: Tensor) -> Tensor:
    """``[B, ...]`` -> ``[W*B, ...]`` without gradient (masks, labels, indices)."""
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum of ``x`` over ranks (a copy; no gradient)."""
    if not is_distributed():
        return x.clone()
    out = x.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out
