"""MMV's NCE (video-audio) and MIL-NCE (video-text) losses: one formula (docs/method.md, "Losses").

Legend: ``B`` local batch, ``W`` world size, ``G = W*B`` global batch, ``K`` candidates per clip
(clip-major: row ``i*K + k`` is candidate ``k`` of clip ``i``), ``D`` embedding width.

For local clip ``i`` with anchor ``a_i`` (e.g. video) and candidates ``b_{i,k}`` (audio K=1, or
K captions), with ``s(x, y) = <x/|x|, y/|y|> / tau``:

    num_i = LSE_k  s(a_i, b_{i,k})
    den_i = LSE over [ s(a_i, b_{j,k}) for all j in the GLOBAL batch, all k ]
                   ++ [ s(a_j, b_{i,k}) for all j in the global batch, all k ]      (2*G*K terms)
    loss_i = den_i - num_i

The positives sit in the denominator twice, so the floor is ``log 2`` and identical embeddings give
exactly ``log(2G)``. This is not CLIP's per-direction cross-entropy.

Masks (missing modality, e.g. AudioSet clips have no text; clips with fewer than K captions):
masked candidates and masked anchors drop out of every numerator and denominator; a row counts
only if its anchor and at least one candidate are valid. The loss is the mean over valid rows of
the GLOBAL batch: each rank returns ``W * sum_local / n_valid_global`` so that DDP's gradient
averaging reproduces the single-device gradient exactly (and ``mean over ranks`` of the returned
values equals the single-device loss).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from versanet.distributed import all_reduce_sum, gather_no_grad, gather_with_grad, rank, world_size
from versanet.registry import register

_NEG = -1e9  # stands for -inf: keeps an all-masked row finite (it is then dropped anyway)


class ContrastiveLoss(nn.Module):
    """Base class of the losses a graph's terms name: ``(a [B,D], b [B*K,D], masks) -> scalar``."""

    def forward(self, a: Tensor, b: Tensor, a_mask: Tensor | None = None, b_mask: Tensor | None = None) -> Tensor:
        raise NotImplementedError


@register("loss")
class NCELoss(ContrastiveLoss):
    """MMV NCE / MIL-NCE with a single symmetric denominator; negatives from all ranks.

    Args:
        temperature: ``tau`` (0.07 in MMV and VATT).
        learnable_temperature: learn ``log(1/tau)`` instead, clamped to ``[min_temperature, max_temperature]``.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learnable_temperature: bool = False,
        min_temperature: float = 0.01,
        max_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0 < min_temperature <= temperature <= max_temperature:
            raise ValueError(
                f"temperature {temperature} must lie in [min_temperature, max_temperature] = "
                f"[{min_temperature}, {max_temperature}] and be positive"
            )
        self.min_temperature = min_temperature
        self.max_temperature = max_temperature
        log_inv_tau = torch.tensor([math.log(1.0 / temperature)])  # 1-D: FSDP cannot shard a 0-d parameter
        if learnable_temperature:
            self.log_inv_tau = nn.Parameter(log_inv_tau)
        else:
            self.register_buffer("log_inv_tau", log_inv_tau)

    @property
    def temperature(self) -> Tensor:
        """Current ``tau`` (clamped)."""
        inv = self.log_inv_tau.exp().clamp(1.0 / self.max_temperature, 1.0 / self.min_temperature)
        return 1.0 / inv.reshape(())

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        key = prefix + "log_inv_tau"
        if key in state_dict and len(state_dict[key].shape) == 0:  # saved when it was a 0-d tensor
            state_dict[key] = state_dict[key].reshape(1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, a: Tensor, b: Tensor, a_mask: Tensor | None = None, b_mask: Tensor | None = None) -> Tensor:
        """Loss of local anchors ``a: [B, D]`` against candidates ``b: [B*K, D]`` (clip-major).

        ``a_mask: [B]`` and ``b_mask: [B, K]`` (bool, True = present) are optional.
        Returns the scalar described in the module docstring.
        """
        batch = a.shape[0]
        if b.shape[0] % batch:
            raise ValueError(f"candidates {tuple(b.shape)} are not a multiple of the batch {batch}")
        k = b.shape[0] // batch
        a_mask = torch.ones(batch, dtype=torch.bool, device=a.device) if a_mask is None else a_mask.bool()
        b_mask = torch.ones(batch, k, dtype=torch.bool, device=a.device) if b_mask is None else b_mask.bool().reshape(batch, k)

        dtype = torch.promote_types(a.dtype, torch.float32)  # fp16/bf16 -> fp32; fp64 stays
        a = F.normalize(a.to(dtype), dim=-1)
        b = F.normalize(b.to(dtype), dim=-1)
        inv_tau = 1.0 / self.temperature
        a_all, b_all = gather_with_grad(a), gather_with_grad(b)  # [G, D], [G*K, D]
        a_mask_all, b_mask_all = gather_no_grad(a_mask), gather_no_grad(b_mask)  # [G], [G, K]

        # a_i against every candidate in the global batch: [B, G, K]
        a_vs_b = rearrange(a @ b_all.T * inv_tau, "i (j k) -> i j k", k=k)
        a_vs_b = a_vs_b.masked_fill(~b_mask_all[None], _NEG)
        # every anchor in the global batch against b_{i,k}: [B, G, K]
        b_vs_a = rearrange(b @ a_all.T * inv_tau, "(i k) j -> i j k", k=k)
        b_vs_a = b_vs_a.masked_fill(~(a_mask_all[None, :, None] & b_mask[:, None, :]), _NEG)

        offset = rank() * batch
        positives = a_vs_b[torch.arange(batch, device=a.device), offset + torch.arange(batch, device=a.device)]  # [B, K]
        numerator = torch.logsumexp(positives, dim=1)
        denominator = torch.logsumexp(torch.cat([a_vs_b.flatten(1), b_vs_a.flatten(1)], dim=1), dim=1)

        valid = a_mask & b_mask.any(dim=1)
        per_row = (denominator - numerator) * valid
        n_valid = all_reduce_sum(valid.sum().to(per_row.dtype)).clamp(min=1.0)
        return per_row.sum() * world_size() / n_valid


@register("loss")
class MILNCELoss(NCELoss):
    """MIL-NCE (video-text, K captions per clip): the same formula as NCELoss, named for configs."""
