"""A negative pool larger than memory: the objective on a whole batch, the networks a micro-batch at a time.

Plain gradient accumulation computes the contrastive loss per micro-batch, so each micro-batch only sees
its own negatives. :class:`~versanet.models.PretrainModule` with ``negatives_accumulation: N`` instead
splits each training batch into N micro-batches and (GradCache, Gao et al. 2021; open_clip's
``--accum-freq``):

1. **cache**: computes every micro-batch's embeddings (backbone features ``"video"`` and joint-space
   nodes ``"video@va"``) without an autograd graph, saving the RNG state before each micro-batch;
2. **objective**: concatenates them into the whole local batch and evaluates the objective once on it
   (the loss gathers the other ranks' embeddings as usual, so the pool is ``world_size * batch``), and
   its gradient with respect to the cached embeddings;
3. **re-run**: forwards each micro-batch again with a graph, from the saved RNG state (the same
   dropout and DropToken draws), and back-propagates its slice of the cached gradient.

Every parameter then gets the gradient of the whole-batch objective (up to floating point) while only
one micro-batch's activations are alive at a time; the cost is one extra forward per micro-batch.

Normalisation layers: each micro-batch is normalised with its own batch statistics in both passes (so
the two passes agree); running statistics are updated once per micro-batch, in the re-run (the cached
pass restores them, :func:`keep_running_stats`). The gradient then equals the whole-batch gradient of
a network that normalises per micro-batch, which is what DDP without SyncBatchNorm does per device.

Helpers here are pure functions of tensors and modules; :meth:`PretrainModule.training_step` drives them.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase


def split_batch(batch: Any, parts: int, batch_size: int) -> list[Any]:
    """Cut a collated batch into ``parts`` consecutive micro-batches along the clip axis.

    Tensors (and lists) whose first dimension is ``batch_size`` are cut (``[B, ...]`` -> ``[b_i, ...]``,
    views, sizes as ``torch.tensor_split``: they differ by at most one); dicts are cut key by key;
    anything else (a scalar, a string) is shared by every micro-batch.
    """
    if parts > batch_size:
        raise ValueError(f"negatives_accumulation: cannot split a batch of {batch_size} clips into {parts} micro-batches")
    bounds = torch.arange(batch_size).tensor_split(parts)
    slices = [slice(int(b[0]), int(b[-1]) + 1) for b in bounds]

    def cut(x: Any, s: slice) -> Any:
        if isinstance(x, dict):
            return {k: cut(v, s) for k, v in x.items()}
        if isinstance(x, Tensor) and x.dim() > 0 and x.shape[0] == batch_size:
            return x[s]
        if isinstance(x, (list, tuple)) and len(x) == batch_size:
            return type(x)(x[s])
        return x

    return [cut(batch, s) for s in slices]


def concat_embeddings(parts: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Micro-batch embeddings -> the whole batch's, key by key (clip-major order is kept: ``[B*K, D]`` stays clip-major)."""
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


@dataclass
class RngState:
    """The CPU RNG state and, on an accelerator, its device RNG state: what dropout and DropToken draw from."""

    cpu: Tensor
    device: torch.device
    accelerator: Tensor | None

    @classmethod
    def capture(cls, device: torch.device) -> RngState:
        accelerator = torch.get_device_module(device.type).get_rng_state(device) if device.type == "cuda" else None
        return cls(torch.get_rng_state(), device, accelerator)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.accelerator is not None:
            torch.get_device_module(self.device.type).set_rng_state(self.accelerator, self.device)


@contextmanager
def keep_running_stats(module: nn.Module) -> Iterator[None]:
    """Restore every normalisation layer's running statistics (BatchNorm, InstanceNorm) when the block ends."""
    saved = [(m, {k: b.clone() for k, b in m.named_buffers(recurse=False) if b is not None})
             for m in module.modules() if isinstance(m, _NormBase) and m.track_running_stats]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in saved:
                for name, value in buffers.items():
                    getattr(m, name).copy_(value)
