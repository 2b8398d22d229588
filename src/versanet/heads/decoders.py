"""Reconstruction decoders: a joint-space embedding back to a modality's input feature (MCN).

MCN reconstructs each modality's feature from its joint-space embedding with
``Linear(E, 1024) -> ReLU -> Linear(1024, d_m) -> ReLU`` (the final ReLU is the reference's, so the
decoder can only produce non-negative values), trained with the mean squared error (see
:class:`~versanet.losses.reconstruction.ReconstructionTerm`). A decoder is a head from the joint
space (``in_dim = E``) to the feature's width (``out_dim = d_m``).
"""

from __future__ import annotations

from torch import Tensor, nn

from versanet.heads.base import Head
from versanet.registry import register


@register("head")
class ReconstructionDecoder(Head):
    """``Linear(in, hidden) -> ReLU -> Linear(hidden, out) -> ReLU``: ``[N, in_dim] -> [N, out_dim]``.

    Args:
        hidden_dim: MCN's ``recon_size`` (1024 in its released command; its code's default is 768).
        final_relu: keep the reference's ReLU on the output.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 1024, final_relu: bool = True) -> None:
        super().__init__(in_dim, out_dim)
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
        if final_relu:
            layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_dim] -> [N, out_dim]``."""
        return self.net(x)
