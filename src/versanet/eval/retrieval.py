"""Retrieval metrics on a query x gallery similarity matrix whose diagonal holds the matches.

torchmetrics' retrieval metrics work on flattened (query, document) pairs and have no median or
mean rank, so for the square "one true match per query" case of zero-shot retrieval we compute
the rank of each true match directly: ``rank_i = 1 + #{j : sim[i, j] > sim[i, i]}`` (1-indexed,
ties resolved in the query's favour, as in MMV's and MIL-NCE's evaluation code).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


def match_ranks(sim: Tensor) -> Tensor:
    """``sim: [Q, Q]`` with the match of query i at column i -> 1-indexed ranks ``[Q]``."""
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"expected a square similarity matrix, got {tuple(sim.shape)}")
    positives = sim.diagonal().unsqueeze(1)
    return (sim > positives).sum(dim=1) + 1


def retrieval_metrics(sim: Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """R@k (as fractions), median and mean rank for queries = rows of ``sim``."""
    ranks = match_ranks(sim.float()).float()
    out = {f"R@{k}": (ranks <= k).float().mean().item() for k in ks}
    out["MedR"] = ranks.quantile(0.5).item()  # numpy's median: mean of the two middle ranks when even
    out["MeanR"] = ranks.mean().item()
    return out


def first_occurrence(index: Tensor) -> Tensor:
    """Bool mask ``[N]`` keeping the first row of each dataset index (DDP samplers pad by repeating samples)."""
    order = torch.argsort(index, stable=True)
    sorted_index = index[order]
    first = torch.ones_like(sorted_index, dtype=torch.bool)
    first[1:] = sorted_index[1:] != sorted_index[:-1]
    keep = torch.zeros_like(first)
    keep[order] = first
    return keep


Fusion = Literal["mean_cosine", "sum_dot"]


def fused_similarity(
    query: dict[str, Tensor], gallery: dict[str, Tensor], present: dict[str, Tensor] | None = None, fusion: Fusion = "mean_cosine",
) -> Tensor:
    """Query x gallery similarity ``[Q, G]`` over one or several gallery modalities (MCN's text -> video+audio).

    ``query[m]``: the query's embedding ``[Q, D_m]`` in the space where it meets gallery modality
    ``m``; ``gallery[m]``: ``[G, D_m]``; ``present[m]``: bool ``[G]`` (None: all present).

    - ``mean_cosine``: the mean, over the gallery modalities a sample has, of the cosine
      similarities (embeddings are L2-normalised here; with one modality: plain cosine similarity).
    - ``sum_dot``: the sum over the modalities a sample has of the raw dot products, MCN's
      evaluation (``text @ (video + audio)^T`` on unnormalised embeddings).
    """
    if fusion not in ("mean_cosine", "sum_dot"):
        raise ValueError(f"fusion must be 'mean_cosine' or 'sum_dot', not {fusion!r}")
    total: Tensor | float = 0.0
    count: Tensor | float = 0.0
    for m, g in gallery.items():
        q = query[m]
        if fusion == "mean_cosine":
            q, g = F.normalize(q, dim=-1), F.normalize(g, dim=-1)
        have = torch.ones(g.shape[0], device=g.device) if present is None or m not in present else present[m].to(g.device).float()
        total = total + (q @ g.T) * have.unsqueeze(0)
        count = count + have.unsqueeze(0)
    if fusion == "sum_dot":
        return total  # type: ignore[return-value]
    return total / torch.clamp(torch.as_tensor(count), min=1.0)
