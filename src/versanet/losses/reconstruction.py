"""MCN's reconstruction term: decode each modality's joint-space embedding back to its input feature.

For each modality ``m`` a decoder (a registered head, by default
:class:`~versanet.heads.decoders.ReconstructionDecoder`: ``Linear(E, 1024) -> ReLU -> Linear(1024, d_m)
-> ReLU``) maps ``m@space`` ``[B, E]`` to ``[B, d_m]``, compared with the modality's backbone feature
``m`` ``[B, d_m]`` by the mean squared error (a mean over clips and feature dimensions). The term is
the sum over modalities; MCN weighs it by 50:

    L_recon = sum_m mean_{i,d} (dec_m(x_{m,i})_d - f_{m,i,d})^2

In MCN the targets are the video's input features (4096-d), the ResDAVEnet's pooled output (1024-d)
and the sentence max-pool's output (6144-d): what versanet calls each modality's backbone feature.
As in the reference the targets are not detached, so the audio and text networks also receive the
gradient of their reconstruction error.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from versanet.heads import HeadFactory
from versanet.heads.decoders import ReconstructionDecoder
from versanet.objective import ObjectiveTerm, TermInputs
from versanet.registry import register


@register("term")
class ReconstructionTerm(ObjectiveTerm):
    """Sum over ``modalities`` of the MSE between ``decoder(m@space)`` and ``m``'s backbone feature.

    Args:
        space: the joint space the decoders read.
        modalities: the modalities reconstructed.
        decoder: head factory ``(in_dim, out_dim) -> Head`` (default ``ReconstructionDecoder`` with 1024 hidden units).
        detach_targets: stop the gradient into the targets (MCN: False).
        weight: the term's weight (50 in MCN).
    """

    def __init__(
        self,
        space: str,
        modalities: list[str] = ["video", "audio", "text"],  # noqa: B006 - shown as is by --print_config
        decoder: HeadFactory = ReconstructionDecoder,
        detach_targets: bool = False,
        weight: float = 50.0,
        name: str | None = None,
    ) -> None:
        super().__init__(weight, name)
        self.space, self.modalities = space, list(modalities)
        self.decoder_factory = decoder
        self.detach_targets = detach_targets
        self.decoders = nn.ModuleDict()

    def default_name(self) -> str:
        return f"reconstruction@{self.space}"

    def reads(self) -> list[str]:
        return [node for m in self.modalities for node in (f"{m}@{self.space}", m)]

    def build(self, graph: Any, modality_dims: dict[str, int]) -> None:
        width = graph.spaces[self.space]
        self.decoders = nn.ModuleDict({m: self.decoder_factory(width, modality_dims[m]) for m in self.modalities})

    def describe(self) -> str:
        return f"ReconstructionTerm({', '.join(self.modalities)} from {self.space}, MSE)"

    def forward(self, inputs: TermInputs) -> Tensor:
        total = 0.0
        for m in self.modalities:
            target = inputs.emb[m]
            if self.detach_targets:
                target = target.detach()
            total = total + F.mse_loss(self.decoders[m](inputs.emb[f"{m}@{self.space}"]), target)
        return total  # type: ignore[return-value]
