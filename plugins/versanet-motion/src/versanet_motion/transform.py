"""Decoded frames -> frame-difference motion ``[1, T-1, size, size]`` in [0, 1]."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchvision.transforms import v2

from versanet.data.transforms import ModalityTransform, RawClip
from versanet.registry import register


@register("transform")
class MotionTransform(ModalityTransform):
    """Absolute differences of consecutive grey frames, resized to ``size`` (centre crop): ``[1, T-1, size, size]``."""

    needs = frozenset({"frames"})

    def __init__(self, size: int = 48, gain: float = 4.0) -> None:
        self.size, self.gain = size, gain
        self.resize = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])

    def spec(self) -> dict[str, Any]:
        return {"size": self.size}

    def __call__(self, clip: RawClip) -> tuple[Tensor, Tensor]:
        """-> motion ``[1, T-1, size, size]``, mask ``[1]`` (True: motion is always computable from frames)."""
        frames = torch.from_numpy(clip.frames).float().div(255)  # [T, H, W, 3]
        grey = frames.mean(dim=-1)  # [T, H, W]
        motion = (grey[1:] - grey[:-1]).abs().mul(self.gain).clamp(0, 1)  # [T-1, H, W]
        return self.resize(motion).unsqueeze(0), torch.ones(1, dtype=torch.bool)
