"""MCN's masked margin softmax (MMS): raw dot products, a margin on the positives, both directions.

Legend: ``B`` local batch, ``W`` world size, ``G = W*B`` global batch, ``D`` embedding width.

For embeddings ``a: [G, D]`` and ``b: [G, D]`` (row i of each is the same clip), MCN's reference
computes the similarity matrix ``S = a b^T`` (no L2 normalisation, no temperature), subtracts the
margin from the positives, ``S <- S - margin * I`` (margin 0.001), and sums the cross-entropy of
the rows and of the columns, each a mean over the batch:

    MMS(S) = 1/G sum_i [LSE_j S'_ij - S'_ii] + 1/G sum_j [LSE_i S'_ij - S'_jj]

It is symmetric in ``a`` and ``b`` (``MMS(a b^T) = MMS(b a^T)``). MCN's pretraining sums it over the
three pairs: ``MMS(t v^T) + MMS(a t^T) + MMS(a v^T)``.

Across devices each rank scores its local rows of ``a`` against ``b`` gathered from every rank (with
gradient), and its local rows of ``b`` against gathered ``a``: the rows and columns of ``S`` it
owns. It returns ``W * (its row terms / n_rows_global + its column terms / n_columns_global)``, so DDP's gradient
averaging gives exactly the single-device gradient of the global-batch loss, and the mean of the
returned values over ranks equals the single-device loss.

Masks (a clip without audio, say): a masked clip's entries leave every denominator, its own row and
column terms are dropped, and the means run over the valid clips. K > 1 candidates per clip
(not in MCN) generalise it MIL-style, see :meth:`MaskedMarginSoftmax.forward`.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from versanet.distributed import all_reduce_sum, gather_no_grad, gather_with_grad, rank, world_size
from versanet.losses.nce import ContrastiveLoss
from versanet.registry import register

_NEG = -1e9  # a masked logit; keeps an all-masked row finite (it is dropped anyway)


@register("loss")
class MaskedMarginSoftmax(ContrastiveLoss):
    """MCN's MMS loss on raw dot products, both directions, negatives from all ranks (see the module docstring).

    Args:
        margin: subtracted from every positive logit (0.001 in MCN and AVLnet).
    """

    def __init__(self, margin: float = 0.001) -> None:
        super().__init__()
        self.margin = float(margin)

    def forward(self, a: Tensor, b: Tensor, a_mask: Tensor | None = None, b_mask: Tensor | None = None) -> Tensor:
        """``a: [B, D]``, ``b: [B*K, D]`` (clip-major; MCN has K = 1) -> scalar; ``a_mask [B]``, ``b_mask [B, K]`` bool.

        With K > 1 candidates per clip, a row's positive term is the log-sum-exp over its K
        candidates (MIL), and each candidate's column is scored against every anchor; with K = 1
        this is exactly MCN's MMS.
        """
        batch = a.shape[0]
        if b.shape[0] % batch:
            raise ValueError(f"candidates {tuple(b.shape)} are not a multiple of the batch {batch}")
        k = b.shape[0] // batch
        dev = a.device
        a_valid = torch.ones(batch, dtype=torch.bool, device=dev) if a_mask is None else a_mask.bool().reshape(batch)
        b_valid = torch.ones(batch, k, dtype=torch.bool, device=dev) if b_mask is None else b_mask.bool().reshape(batch, k)
        b_valid = b_valid & a_valid[:, None]  # a clip without its anchor leaves the loss entirely
        row_valid = b_valid.any(dim=1)  # [B]
        dtype = torch.promote_types(a.dtype, torch.float32)
        a, b = a.to(dtype), b.to(dtype)
        a_all, b_all = gather_with_grad(a), gather_with_grad(b)  # [G, D], [G*K, D]
        a_valid_all, b_valid_all = gather_no_grad(row_valid), gather_no_grad(b_valid)  # [G], [G, K]
        local = torch.arange(batch, device=dev)
        own = rank() * batch + local  # global index of each local clip

        # local rows of S: anchor i against every candidate [B, G, K]; positives (i, own_i, :)
        rows = rearrange(a @ b_all.T, "i (j k) -> i j k", k=k)
        rows = rows.index_put((local, own), rows[local, own] - self.margin).masked_fill(~b_valid_all[None], _NEG)
        positives = rows[local, own].masked_fill(~b_valid, _NEG)  # [B, K]
        row_loss = (torch.logsumexp(rows.flatten(1), dim=1) - torch.logsumexp(positives, dim=1)) * row_valid

        # local columns of S: candidate (i, k) against every anchor [B*K, G]; positive: anchor own_i
        cols = b @ a_all.T
        owner = own.repeat_interleave(k)
        flat = torch.arange(batch * k, device=dev)
        cols = cols.index_put((flat, owner), cols[flat, owner] - self.margin).masked_fill(~a_valid_all[None], _NEG)
        col_loss = (torch.logsumexp(cols, dim=1) - cols[flat, owner]) * b_valid.flatten()

        n_rows = all_reduce_sum(row_valid.sum().to(dtype)).clamp(min=1.0)
        n_cols = all_reduce_sum(b_valid.sum().to(dtype)).clamp(min=1.0)
        return (row_loss.sum() / n_rows + col_loss.sum() / n_cols) * world_size()
