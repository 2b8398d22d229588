"""The one interface every projection head implements: ``[N, in_dim] -> [N, out_dim]``.

A head ``g_{m->s}`` maps a modality's backbone feature, or its embedding in another joint space,
into a joint space ``s``. Heads are built by the modality graph, which knows both widths, so a
head's config names only its own options: YAML gives ``head: {class_path: MLPBNHead}`` and the
graph calls it with ``(in_dim, out_dim)``. L2 normalisation is the loss's job, not the head's.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn


class Head(nn.Module):
    """Base class of every projection head: ``[N, in_dim] -> [N, out_dim]``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - every subclass overrides
        raise NotImplementedError(f"{type(self).__name__} must implement forward")


HeadFactory = Callable[[int, int], Head]
"""What a config gives for a head: called as ``factory(in_dim, out_dim)`` by the graph."""
