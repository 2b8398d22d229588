"""The one learning-rate schedule versanet uses: linear warm-up, then cosine decay, stepped per optimizer step.

Pretraining (MMV, VATT, MCN) and fine-tuning all use it, through torch's ``LambdaLR``.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int = 0, final_lr_ratio: float = 0.0) -> float:
    """The multiplier of the peak learning rate at ``step`` (0-indexed).

    ``1/w + (1 - 1/w) * step / w`` during warm-up of ``w`` steps (torch's ``LinearLR`` from ``1/w``: the
    first step trains at ``lr / w``, step ``w`` at the peak), then
    ``r + (1 - r) * (1 + cos(pi * p)) / 2`` with ``p`` going 0 -> 1 from the end of warm-up to ``total_steps``,
    and ``r`` = ``final_lr_ratio`` after that. ``warmup_steps`` is capped at ``total_steps - 1``.
    """
    total = max(int(total_steps), 1)
    warmup = max(min(int(warmup_steps), total - 1), 0)
    if step < warmup:
        return 1.0 / warmup + (1.0 - 1.0 / warmup) * step / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return final_lr_ratio + (1.0 - final_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, final_lr_ratio: float = 0.0) -> LambdaLR:
    """:func:`warmup_cosine_factor` as a scheduler; every parameter group scales its own ``lr`` (multipliers keep their ratio)."""
    return LambdaLR(optimizer, lambda step: warmup_cosine_factor(step, total_steps, warmup_steps, final_lr_ratio))
