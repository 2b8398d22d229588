"""MMV's text network: frozen word2vec embeddings -> Linear(300, 2048) -> ReLU -> max over words.

Shape legend: N texts, L tokens, D embedding width (300 for GoogleNews), E = ``out_dim``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from versanet.encoders.text import FrozenWordTable, WordMaxPoolEncoder, load_embedding_table
from versanet.registry import register
from versanet.text.word2vec import PAD_ID

__all__ = ["Word2VecTextEncoder", "load_embedding_table"]


@register("encoder")
class Word2VecTextEncoder(FrozenWordTable, WordMaxPoolEncoder):
    """Frozen word2vec embeddings -> Linear(300, 2048) -> ReLU -> max over words (MMV's text network).

    Input: word ids ``[N, L]`` (0 = padding, ignored by the max; an all-padding row gives zeros).
    The Linear is MMV's ``Conv1d(k=1)``; it is the only trainable part (616,448 parameters at
    300 -> 2048). The embedding table is a frozen, persistent buffer, so checkpoints carry it.

    Where the table comes from: :class:`~versanet.encoders.text.FrozenWordTable`.

    Args:
        embed_dim: width of the word vectors (must match the file's).
        vocab_size: rows of the random table (ignored when the table comes from a file).
    """

    contract_kwargs = {"embeddings_path": None, "vocab_size": 50, "embed_dim": 8, "out_dim": 16}

    def __init__(
        self,
        embeddings_path: str | None = None,
        vocab_path: str | None = None,
        vocab_size: int = 1000,
        embed_dim: int = 300,
        out_dim: int = 2048,
        pad_id: int = PAD_ID,
        seed: int = 0,
        modality: str = "text",
    ) -> None:
        super().__init__(modality, embed_dim, out_dim, pad_id)
        self.init_table(embeddings_path, vocab_path, vocab_size, seed)

    # ------------------------------------------------------------------ Encoder
    def example_input(self, batch_size: int) -> Tensor:
        return torch.randint(1, max(2, self.vocab_size), (batch_size, 6))

    def check_input_spec(self, spec: Mapping[str, Any]) -> None:
        self.check_table_spec(spec)
