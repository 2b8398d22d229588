"""The one interface every modality backbone implements.

An encoder is the backbone ``f_m: X_m -> R^{out_dim}`` of one modality. Projection heads, losses
and benchmarks only ever see this interface, never a concrete model.

Contract:
- ``modality``: the batch key it reads (``"video"``, ``"audio"``, ``"text"``, or a plugin's).
- ``out_dim``: width of the clip-level (pooled) feature; ``token_dim``: width of its tokens.
- ``input_ndim``: dimensions of ONE sample's input (video ``[C, T, H, W]`` -> 4). The pretraining
  module uses it to recognise a candidate axis: a batch tensor with ``input_ndim + 2`` dims is
  ``[B, K, ...]`` (K candidates per clip, as MIL-NCE text) and is flattened clip-major to ``[B*K, ...]``.
- ``forward_tokens(x: [N, *input]) -> Tokens``: token-level output ``[N, L, token_dim]``, its mask
  ``[N, L]`` and the pooled feature ``[N, out_dim]`` (timm's ``forward_features`` / ``forward_head``
  split, with both results returned together so that nothing is computed twice).
- ``forward(x: [N, *input]) -> [N, out_dim]``: the pooled feature; by default
  ``forward_tokens(x).pooled``. An encoder may override it with a cheaper path that skips the token
  layout; the registry contract tests check the two agree for every registered encoder.
- ``example_input(batch_size)``: a small valid input, used by the registry contract tests.
- ``check_input_spec(spec)``: optional; raise ``ValueError`` when the data's description of this
  modality (from its transform, e.g. ``{"vocab_size": 512}``) does not fit the encoder.
- ``contract_kwargs``: constructor overrides that give a tiny instance for the contract tests.
- ``prepare_downstream()``: optional; turns off what only pretraining does (VATT's DropToken).
  :func:`versanet.checkpoint.load_pretrained`, which every benchmark and fine-tuning module loads
  its network with, calls it on each encoder.
- ``shared_trunk`` / ``attach_trunk(module)``: optional; an encoder whose config names a trunk
  (``trunk: shared``) runs a module that several encoders share (VATT-MA's one Transformer for
  video, audio and text). :class:`~versanet.models.PretrainModule` builds each trunk once from its
  ``trunks:`` argument and hands it to every encoder that names it.

Convolutional backbones derive from :class:`FeatureMapEncoder`: they implement ``forward_features``
(a feature map ``[N, C, *grid]``) and ``pool`` (feature map -> ``[N, out_dim]``), and get
``forward`` and ``forward_tokens`` (one token per grid cell) for free.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Mapping

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


@dataclass
class Tokens:
    """Token-level output of an encoder.

    ``tokens``: ``[N, L, token_dim]``; ``mask``: bool ``[N, L]``, True for a real token (False for
    text padding); ``pooled``: ``[N, out_dim]``, exactly what ``forward`` returns; ``grid``: the layout
    of L when the tokens fill a regular grid (``(T', H', W')`` for video, ``(T', F')`` for a
    spectrogram), None for text or when tokens were dropped (VATT's DropToken).
    """

    tokens: Tensor
    mask: Tensor
    pooled: Tensor
    grid: tuple[int, ...] | None = None


class Encoder(nn.Module, ABC):
    """Base class of every modality backbone: ``[N, *input] -> [N, out_dim]``, tokens ``[N, L, token_dim]``."""

    input_ndim: ClassVar[int]
    contract_kwargs: ClassVar[dict[str, Any]] = {}
    shares_trunk: ClassVar[bool] = False  # True: the encoder runs ``self.trunk``, which may be a shared module

    def __init__(self, modality: str, out_dim: int, token_dim: int | None = None) -> None:
        super().__init__()
        self.modality = modality
        self.out_dim = out_dim
        self.token_dim = out_dim if token_dim is None else token_dim
        self.shared_trunk: str | None = None  # the name of the trunk this encoder runs, when it shares one

    def forward_tokens(self, x: Tensor) -> Tokens:
        """``x: [N, *input]`` -> :class:`Tokens` (``[N, L, token_dim]``, mask ``[N, L]``, pooled ``[N, out_dim]``)."""
        raise NotImplementedError(
            f"encoder {type(self).__name__} gives no token output: implement forward_tokens(x) -> Tokens "
            "(or derive from FeatureMapEncoder) to use it where tokens are needed"
        )

    def forward(self, x: Tensor) -> Tensor:
        """``x: [N, *input]`` -> clip features ``[N, out_dim]``."""
        return self.forward_tokens(x).pooled

    @abstractmethod
    def example_input(self, batch_size: int) -> Tensor:
        """A valid input batch ``[batch_size, *input]`` (small) for tests and shape checks."""

    def check_input_spec(self, spec: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` if the data described by ``spec`` cannot feed this encoder."""

    def prepare_downstream(self) -> None:
        """Turn off pretraining-only behaviour (e.g. VATT's DropToken) before fine-tuning or evaluation; default: nothing."""

    def attach_trunk(self, trunk: nn.Module) -> None:
        """Run ``trunk``, a module shared with other encoders, as ``self.trunk`` (see the module docstring).

        Encoders that can share declare ``shares_trunk = True``, take a ``trunk: str | None`` argument
        (stored as ``self.shared_trunk``), build no trunk of their own when it is set, and call
        ``self.trunk`` in ``forward_tokens``. Override to check the trunk fits (widths).
        """
        if not self.shares_trunk:
            raise TypeError(f"encoder {type(self).__name__} cannot run a shared trunk (its config names trunk {self.shared_trunk!r})")
        self.trunk = trunk

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Parameter count (BN gamma/beta included, running statistics not; a shared tensor counts once)."""
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


class FeatureMapEncoder(Encoder):
    """A backbone with a feature map ``[N, C, *grid]``: implement ``forward_features`` and ``pool``.

    Tokens are the grid cells in row-major order (``[N, prod(grid), C]``, every mask entry True),
    ``token_dim`` is C; ``pool`` maps the feature map to the ``[N, out_dim]`` clip feature.
    """

    @abstractmethod
    def forward_features(self, x: Tensor) -> Tensor:
        """``[N, *input]`` -> feature map ``[N, C, *grid]``."""

    @abstractmethod
    def pool(self, features: Tensor) -> Tensor:
        """Feature map ``[N, C, *grid]`` -> ``[N, out_dim]``."""

    def forward(self, x: Tensor) -> Tensor:
        """``[N, *input]`` -> ``[N, out_dim]``."""
        return self.pool(self.forward_features(x))

    def forward_tokens(self, x: Tensor) -> Tokens:
        """``[N, *input]`` -> one token per feature-map cell ``[N, prod(grid), C]`` and the pooled feature."""
        features = self.forward_features(x)
        return feature_map_tokens(features, self.pool(features))


def feature_map_tokens(features: Tensor, pooled: Tensor) -> Tokens:
    """Feature map ``[N, C, *grid]`` -> :class:`Tokens` ``[N, prod(grid), C]`` (row-major), all valid."""
    grid = tuple(features.shape[2:])
    tokens = rearrange(features, "n c ... -> n (...) c")
    mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    return Tokens(tokens, mask, pooled, grid)


def run_blocks(blocks: Iterable[nn.Module], x: Tensor, grad_checkpointing: bool) -> Tensor:
    """Apply ``blocks`` in order; with ``grad_checkpointing`` (and grad enabled) each is recomputed in backward."""
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False) if grad_checkpointing and torch.is_grad_enabled() else block(x)
    return x
