"""MCN's gated embedding units (Miech et al.'s context gating, as MCN and AVLnet use them).

A gated embedding unit maps ``x [N, in_dim]`` to ``y = fc(x)`` and gates it with itself:
``y * sigmoid(fc2(y))`` (``F.glu`` of ``[y, fc2(y)]``), with no normalisation afterwards (MCN's
``Gated_Embedding_Unit``; the HowTo100M code's version L2-normalises, MCN's does not).
MCN's heads into its 6144-d joint space:

- video (4096-d 2D+3D features): :class:`GatedEmbeddingUnit` ``(4096 -> 6144)``;
- audio (ResDAVEnet, 1024-d): :class:`GatedLinearHead`: a unit ``1024 -> 1024`` (gating in the lower
  width, for mixed-precision stability) then ``Linear(1024, 6144)``;
- text (sentence max-pool, 6144-d): :class:`GatedEmbeddingUnit` ``(6144 -> 6144)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from versanet.heads.base import Head
from versanet.registry import register


class ContextGating(nn.Module):
    """``y -> y * sigmoid(fc(y))`` over ``[N, dim]`` (the reference computes it as ``glu(cat(y, fc(y)))``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, y: Tensor) -> Tensor:
        return F.glu(torch.cat((y, self.fc(y)), dim=1), dim=1)


@register("head")
class GatedEmbeddingUnit(Head):
    """``Linear(in, out)`` then context gating: ``[N, in_dim] -> [N, out_dim]``.

    Parameters: ``(in + 1) * out + (out + 1) * out`` (62,926,848 for 4096 -> 6144).
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(in_dim, out_dim)
        self.fc = nn.Linear(in_dim, out_dim)
        self.cg = ContextGating(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_dim] -> [N, out_dim]``."""
        return self.cg(self.fc(x))


@register("head")
class GatedLinearHead(Head):
    """A gated embedding unit ``in -> gate_dim`` then ``Linear(gate_dim, out)``: MCN's audio head.

    Args:
        gate_dim: width of the gated unit (default ``in_dim``: MCN's 1024 -> 1024).
    """

    def __init__(self, in_dim: int, out_dim: int, gate_dim: int | None = None) -> None:
        super().__init__(in_dim, out_dim)
        gate_dim = gate_dim or in_dim
        self.gate = GatedEmbeddingUnit(in_dim, gate_dim)
        self.proj = nn.Linear(gate_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_dim] -> [N, out_dim]``."""
        return self.proj(self.gate(x))
