"""Projection heads of MMV and VATT (docs/method.md, "Joint spaces"). BN: momentum 0.1, eps 1e-5 (PyTorch defaults)."""

from __future__ import annotations

from torch import Tensor, nn

from versanet.heads.base import Head
from versanet.registry import register


@register("head")
class LinearHead(Head):
    """Linear(in, out): MMV's audio -> S_va and text -> S_vat heads."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__(in_dim, out_dim)
        self.proj = nn.Linear(in_dim, out_dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_dim] -> [N, out_dim]``."""
        return self.proj(x)


@register("head")
class LinearBNHead(Head):
    """Linear(in, out) -> BN: the MMV paper's text ("linear heads with BN after each linear layer")."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__(in_dim, out_dim)
        self.proj = nn.Sequential(nn.Linear(in_dim, out_dim, bias=bias), nn.BatchNorm1d(out_dim))

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_dim] -> [N, out_dim]``."""
        return self.proj(x)


@register("head")
class MLPBNHead(Head):
    """Linear -> BN -> ReLU -> Linear(no bias) -> BN: the MMV/VATT video -> S_va head.

    ``first_bias=True`` is MMV's code; VATT drops it (``first_bias=False``).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None, first_bias: bool = True) -> None:
        super().__init__(in_dim, out_dim)
        hidden_dim = hidden_dim or out_dim
        self.proj = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=first_bias),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim, bias=False),
            nn.BatchNorm1d(out_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_dim] -> [N, out_dim]``."""
        return self.proj(x)


@register("head")
class ReLULinearBNHead(Head):
    """ReLU -> Linear -> BN: MMV's fine-to-coarse head S_va -> S_vat (video; audio at eval)."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__(in_dim, out_dim)
        self.proj = nn.Sequential(nn.ReLU(), nn.Linear(in_dim, out_dim, bias=bias), nn.BatchNorm1d(out_dim))

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_dim] -> [N, out_dim]``."""
        return self.proj(x)
