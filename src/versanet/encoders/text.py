"""The shape every word-level text network of MMV and MCN shares: word vectors -> Linear -> ReLU -> max over words.

Subclasses say where the word vectors come from (:meth:`WordMaxPoolEncoder.word_vectors`): a learned
embedding over a sentencepiece vocabulary (:class:`~versanet.encoders.small.EmbeddingTextEncoder`)
or a frozen word2vec table (:class:`~versanet.encoders.mmv.word2vec_text.Word2VecTextEncoder`).

Shape legend: N texts, L tokens, D word-vector width, E = ``out_dim``.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor, nn

from versanet.encoders.base import Encoder, Tokens


class WordMaxPoolEncoder(Encoder):
    """Token ids ``[N, L]`` -> word vectors ``[N, L, D]`` -> Linear(D, E) -> ReLU -> max over words -> ``[N, E]``.

    Padding (``pad_id``) is left out of the max and an all-padding row gives zeros. Tokens are the
    per-word features after the ReLU, ``[N, L, E]``, with the padding masked out.
    """

    input_ndim = 1

    def __init__(self, modality: str, embed_dim: int, out_dim: int, pad_id: int = 0) -> None:
        super().__init__(modality, out_dim)
        self.embed_dim, self.pad_id = embed_dim, pad_id
        self.proj = nn.Linear(embed_dim, out_dim)

    @abstractmethod
    def word_vectors(self, x: Tensor) -> Tensor:
        """Token ids ``[N, L]`` -> word vectors ``[N, L, D]``."""

    def forward_tokens(self, x: Tensor) -> Tokens:
        """``[N, L]`` token ids -> per-word features ``[N, L, E]`` (mask: not padding) and their max ``[N, E]``."""
        h = torch.relu(self.proj(self.word_vectors(x)))  # [N, L, E]
        valid = x != self.pad_id  # [N, L]
        pooled = h.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(dim=1)
        pooled = torch.where(valid.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))
        return Tokens(h, valid, pooled)
