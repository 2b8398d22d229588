"""VATT's learnable positional embeddings: factorised tables, LayerNorm, and resampling to new grids.

Video adds ``e_t + e_h + e_w`` (one table per axis: 8, 14 and 14 buckets at 32x224x224 with 4x16x16
tubelets), audio and VATT-MA's text one temporal table (1200 buckets for 3.2 s at 48 kHz / 128;
16 for text). The summed embedding goes through a LayerNorm (eps 1e-6) *before* it is added to the
tokens, then dropout follows (VATT's ``SpatioTemporalEmbeddings`` / ``TemporalEmbeddings``).

Resampling (VATT's ``ExpandableEmbedding``): when an axis has a different number of tokens than its
table has buckets (fine-tuning at 320 px, 16 frames, a longer waveform, an image tiled along time),
the table is resampled along that axis by polyharmonic spline interpolation of order 3
(``phi(r) = r^3`` plus a linear term, TF Addons' ``interpolate_spline``) from bucket positions
``i / n`` to ``j / m``. The resampled table is ``W @ table`` with a fixed ``[m, n]`` matrix ``W``
(the interpolant is linear in the values), computed once per ``(n, m)`` in float64 and cached, so
gradients flow to the stored table. Same size: the table itself, exactly. The spline reproduces
linear functions exactly, also where ``j / m`` lies past ``(n - 1) / n`` (mild extrapolation).

Why not timm's ``resample_abs_pos_embed``: it resamples a 2-D grid of a non-factorised table with
``F.interpolate`` (bicubic, on pixel centres), which gives different numbers from VATT's 1-D
polyharmonic spline on ``i / n`` positions; converted VATT checkpoints fine-tuned at a new
resolution need VATT's.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from versanet.encoders.vatt.transformer import LAYER_NORM_EPS

_EPS = 1e-10  # TF Addons clamps squared distances to this before phi


@lru_cache(maxsize=64)
def _spline_matrix_cpu(n: int, m: int) -> Tensor:
    c = torch.arange(n, dtype=torch.float64) / n  # bucket positions of the table
    q = torch.arange(m, dtype=torch.float64) / m  # positions of the wanted buckets
    phi = lambda r2: r2.clamp(min=_EPS).pow(1.5)  # noqa: E731 - order 3: r^3 of the squared distance r^2
    a = phi((c[:, None] - c[None, :]) ** 2)
    b = torch.stack([c, torch.ones_like(c)], dim=1)  # [n, 2]: linear term and bias
    lhs = torch.zeros(n + 2, n + 2, dtype=torch.float64)
    lhs[:n, :n], lhs[:n, n:], lhs[n:, :n] = a, b, b.T
    solve = torch.linalg.inv(lhs)[:, :n]  # (w, v) = solve @ values
    query = torch.cat([phi((q[:, None] - c[None, :]) ** 2), torch.stack([q, torch.ones_like(q)], dim=1)], dim=1)  # [m, n + 2]
    return query @ solve  # [m, n]


_MATRICES: dict[tuple[int, int, torch.device, torch.dtype], Tensor] = {}


def spline_resample_matrix(n: int, m: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """The ``[m, n]`` matrix that resamples an ``n``-bucket table to ``m`` buckets (order-3 polyharmonic spline)."""
    if n < 1 or m < 1:
        raise ValueError(f"cannot resample a positional table of {n} buckets to {m}")
    key = (n, m, torch.device(device or "cpu"), dtype)
    if key not in _MATRICES:
        _MATRICES[key] = _spline_matrix_cpu(n, m).to(device=key[2], dtype=dtype)
    return _MATRICES[key]


def resample_table(table: Tensor, length: int) -> Tensor:
    """``[n, D]`` -> ``[length, D]``: the table itself when ``length == n``, else its spline resampling."""
    n = table.shape[0]
    if length == n:
        return table
    return spline_resample_matrix(n, length, table.device, table.dtype) @ table


class ExpandableEmbedding(nn.Module):
    """A positional table ``weight [max_buckets, D]`` read at any length (resampled when it differs)."""

    def __init__(self, max_buckets: int, dim: int) -> None:
        super().__init__()
        self.max_buckets = max_buckets
        self.weight = nn.Parameter(torch.empty(max_buckets, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.weight.shape[1] ** -0.5  # VATT: truncated normal, stddev hidden_size ** -0.5
        nn.init.trunc_normal_(self.weight, std=std, a=-2 * std, b=2 * std)

    def forward(self, length: int) -> Tensor:
        """The embeddings of positions ``0..length-1``: ``[length, D]``."""
        return resample_table(self.weight, length)


class TemporalEmbeddings(nn.Module):
    """1-D positional embedding: ``x + LN(e_t)`` then dropout; ``x [N, L, D]`` (audio, VATT-MA text)."""

    def __init__(self, dim: int, max_temporal_buckets: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.temporal_position_embeddings = ExpandableEmbedding(max_temporal_buckets, dim)
        self.layernorm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout)

    @property
    def buckets(self) -> tuple[int]:
        return (self.temporal_position_embeddings.max_buckets,)

    def embeddings(self, grid: tuple[int]) -> Tensor:
        """``LN(e_t)`` on a grid ``(L,)``: ``[L, D]``."""
        (length,) = grid
        return self.layernorm(self.temporal_position_embeddings(length))

    def forward(self, x: Tensor, grid: tuple[int] | None = None) -> Tensor:
        """``[N, L, D]`` -> ``[N, L, D]`` (``grid``, if given, is ``(L,)``)."""
        return self.dropout(x + self.embeddings((x.shape[1],)))


class SpatioTemporalEmbeddings(nn.Module):
    """Factorised 3-D positional embedding: ``x + LN(e_t + e_h + e_w)`` then dropout; tokens in (t, h, w) order."""

    def __init__(self, dim: int, max_buckets: tuple[int, int, int] = (8, 14, 14), dropout: float = 0.1) -> None:
        super().__init__()
        t, h, w = max_buckets
        self.temporal_position_embeddings = ExpandableEmbedding(t, dim)
        self.vertical_position_embeddings = ExpandableEmbedding(h, dim)
        self.horizontal_position_embeddings = ExpandableEmbedding(w, dim)
        self.layernorm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout)

    @property
    def buckets(self) -> tuple[int, int, int]:
        tables = (self.temporal_position_embeddings, self.vertical_position_embeddings, self.horizontal_position_embeddings)
        return tuple(table.max_buckets for table in tables)  # type: ignore[return-value]

    def embeddings(self, grid: tuple[int, int, int]) -> Tensor:
        """``LN(e_t + e_h + e_w)`` on a ``(t, h, w)`` grid, flattened in (t, h, w) order: ``[t*h*w, D]``."""
        t, h, w = grid
        e = (
            self.temporal_position_embeddings(t)[:, None, None]
            + self.vertical_position_embeddings(h)[None, :, None]
            + self.horizontal_position_embeddings(w)[None, None, :]
        )
        return self.layernorm(e.flatten(0, 2))

    def forward(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """``[N, t*h*w, D]`` -> ``[N, t*h*w, D]``."""
        return self.dropout(x + self.embeddings(grid))
