"""MCN's text network: frozen word2vec vectors of up to 20 words -> Linear(300, 6144) -> ReLU -> max over the 20 slots.

The same shape as MMV's text network (:class:`~versanet.encoders.mmv.word2vec_text.Word2VecTextEncoder`)
with the reference's one difference kept: the sentence is zero-padded to ``max_words`` word
vectors and the padding takes part in the max, so a padded slot contributes ``ReLU(bias)`` (MCN's
``Sentence_Maxpool`` on its zero-padded ``[20, 300]`` input). A sentence with no known word is 20
zero vectors, i.e. ``ReLU(bias)``. MCN then gates the result with a
:class:`~versanet.heads.gated.GatedEmbeddingUnit` ``6144 -> 6144``, the head into the joint space.

Shape legend: N sentences, L = ``max_words`` slots, D = 300 word-vector width, E = ``out_dim``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from versanet.encoders.base import Tokens
from versanet.encoders.mmv.word2vec_text import Word2VecTextEncoder
from versanet.registry import register
from versanet.text.word2vec import PAD_ID


@register("encoder")
class SentenceMaxPool(Word2VecTextEncoder):
    """Word ids ``[N, L<=max_words]`` -> frozen word vectors, padded to ``max_words`` -> Linear -> ReLU -> max -> ``[N, out_dim]``.

    Args: as :class:`~versanet.encoders.mmv.word2vec_text.Word2VecTextEncoder`, plus ``max_words``
    (20 in MCN): inputs are padded (with ``pad_id``, a zero vector) or cut to this many slots.
    Trainable parameters: ``(embed_dim + 1) * out_dim`` (1,849,344 at 300 -> 6144).
    """

    contract_kwargs = {"embeddings_path": None, "vocab_size": 50, "embed_dim": 8, "out_dim": 16, "max_words": 8}

    def __init__(
        self, embeddings_path: str | None = None, vocab_path: str | None = None, vocab_size: int = 1000, embed_dim: int = 300,
        out_dim: int = 6144, max_words: int = 20, pad_id: int = PAD_ID, seed: int = 0, modality: str = "text",
    ) -> None:
        super().__init__(embeddings_path, vocab_path, vocab_size, embed_dim, out_dim, pad_id, seed, modality)
        self.max_words = max_words

    def forward_tokens(self, x: Tensor) -> Tokens:
        """``[N, L]`` ids -> slot features ``[N, max_words, E]`` (mask: real words) and their max over all slots ``[N, E]``."""
        x = F.pad(x[:, : self.max_words], (0, max(0, self.max_words - x.shape[1])), value=self.pad_id)
        vectors = self.word_vectors(x).masked_fill((x == self.pad_id).unsqueeze(-1), 0.0)  # padding is a zero vector
        h = F.relu(self.proj(vectors))
        return Tokens(h, x != self.pad_id, h.amax(dim=1))
