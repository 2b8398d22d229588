"""A small 3D CNN over motion maps ``[N, 1, T, H, W]`` -> ``[N, out_dim]``."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from versanet.encoders import FeatureMapEncoder
from versanet.registry import register


@register("encoder")
class MotionCNN(FeatureMapEncoder):
    """Small 3D CNN on frame-difference motion maps ``[N, 1, T, H, W]``, mean-pooled to ``[N, out_dim]``."""

    input_ndim = 4
    contract_kwargs = {"widths": (4, 8), "out_dim": 8}

    def __init__(self, widths: Sequence[int] = (16, 32, 64), out_dim: int = 64, modality: str = "motion") -> None:
        super().__init__(modality, out_dim)
        layers: list[nn.Module] = []
        in_ch = 1
        for width in widths:
            layers += [nn.Conv3d(in_ch, width, 3, stride=(1, 2, 2), padding=1, bias=False), nn.BatchNorm3d(width), nn.ReLU(inplace=True)]
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(in_ch, out_dim)
        self.token_dim = in_ch

    def forward_features(self, x: Tensor) -> Tensor:
        """``[N, 1, T, H, W]`` -> feature map ``[N, C, T, H', W']`` (one token per cell)."""
        return self.features(x)

    def pool(self, features: Tensor) -> Tensor:
        """``[N, C, T, H', W']`` -> ``[N, out_dim]``: mean over the grid, then Linear."""
        return self.proj(features.mean(dim=(2, 3, 4)))

    def example_input(self, batch_size: int) -> Tensor:
        return torch.rand(batch_size, 1, 3, 24, 24)
