"""Pre-extracted features as a modality's input: the identity backbone MCN's video branch uses.

MCN does not train a video network: its video input is the concatenation of a 2D CNN's and a 3D
CNN's features (2 x 2048 = 4096), read from disk (:mod:`versanet.data.features`). The "encoder" passes
them through unchanged, so the graph's heads, the objective terms (reconstruction targets) and every
benchmark see them as the modality's backbone feature.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor

from versanet.encoders.base import Encoder, Tokens
from versanet.registry import register


@register("encoder")
class PrecomputedFeatures(Encoder):
    """``[N, dim]`` features -> themselves (no parameters). Tokens: one per clip.

    Args:
        dim: feature width (4096 for MCN's 2D + 3D video features).
    """

    input_ndim = 1
    contract_kwargs = {"dim": 12}
    parameter_free: ClassVar[bool] = True  # the registry contract tests expect no parameters

    def __init__(self, dim: int = 4096, modality: str = "video") -> None:
        super().__init__(modality, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, dim] -> [N, dim]``."""
        if x.dim() != 2 or x.shape[1] != self.out_dim:
            raise ValueError(f"PrecomputedFeatures({self.out_dim}) expects features [N, {self.out_dim}], got {tuple(x.shape)}")
        return x.float()

    def forward_tokens(self, x: Tensor) -> Tokens:
        pooled = self.forward(x)
        return Tokens(pooled.unsqueeze(1), torch.ones(x.shape[0], 1, dtype=torch.bool, device=x.device), pooled)

    def example_input(self, batch_size: int) -> Tensor:
        return torch.randn(batch_size, self.out_dim)

    def check_input_spec(self, spec: Mapping[str, Any]) -> None:
        dim = spec.get("dim")
        if dim is not None and dim != self.out_dim:
            raise ValueError(f"the data's {self.modality} features are {dim}-d but PrecomputedFeatures.dim is {self.out_dim}")
