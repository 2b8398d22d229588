"""The one interface every modality backbone implements.

An encoder is the backbone ``f_m: X_m -> R^{out_dim}`` of one modality. Projection heads, losses
and benchmarks only ever see this interface, never a concrete model.

Contract:
- ``modality``: the batch key it reads (``"video"``, ``"audio"``, ``"text"``, or a plugin's).
- ``out_dim``: width of the clip-level feature.
- ``input_ndim``: dimensions of ONE sample's input (video ``[C, T, H, W]`` -> 4). The pretraining
  module uses it to recognise a candidate axis: a batch tensor with ``input_ndim + 2`` dims is
  ``[B, K, ...]`` (K candidates per clip, as MIL-NCE text) and is flattened clip-major to ``[B*K, ...]``.
- ``forward(x: [N, *input]) -> [N, out_dim]``.
- ``example_input(batch_size)``: a small valid input, used by the registry contract tests.
- ``check_input_spec(spec)``: optional; raise ``ValueError`` when the data's description of this
  modality (from its transform, e.g. ``{"vocab_size": 512}``) does not fit the encoder.
- ``contract_kwargs``: constructor overrides that give a tiny instance for the contract tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


class Encoder(nn.Module, ABC):
    """Base class of every modality backbone: ``[N, *input] -> [N, out_dim]``."""

    input_ndim: ClassVar[int]
    contract_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self, modality: str, out_dim: int) -> None:
        super().__init__()
        self.modality = modality
        self.out_dim = out_dim

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """``x: [N, *input]`` -> clip features ``[N, out_dim]``."""

    @abstractmethod
    def example_input(self, batch_size: int) -> Tensor:
        """A valid input batch ``[batch_size, *input]`` (small) for tests and shape checks."""

    def check_input_spec(self, spec: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` if the data described by ``spec`` cannot feed this encoder."""

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Parameter count (BN gamma/beta included, running statistics not)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @torch.no_grad()
    def output_shape(self, batch_size: int = 2) -> torch.Size:
        """Shape of ``forward(example_input(batch_size))``, computed in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return self(self.example_input(batch_size)).shape
        finally:
            self.train(was_training)


def run_blocks(blocks: Iterable[nn.Module], x: Tensor, grad_checkpointing: bool) -> Tensor:
    """Apply ``blocks`` in order; with ``grad_checkpointing`` (and grad enabled) each is recomputed in backward."""
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False) if grad_checkpointing and torch.is_grad_enabled() else block(x)
    return x
