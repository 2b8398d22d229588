"""MMV's text network: frozen word2vec embeddings -> Linear(300, 2048) -> ReLU -> max over words.

Shape legend: N texts, L tokens, D embedding width (300 for GoogleNews), E = ``out_dim``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import Tensor

from versanet.encoders.base import Tokens
from versanet.encoders.text import FrozenWordTable, WordMaxPoolEncoder, load_embedding_table
from versanet.registry import register
from versanet.text.word2vec import PAD_ID

if TYPE_CHECKING:
    from versanet.weights.layout import NamedParams

__all__ = ["Word2VecTextEncoder", "load_embedding_table", "word2vec_text_state_dict_from_milnce", "word2vec_text_state_dict_from_mmv"]


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
        pool_padding: take the max over ALL ``L`` positions, padding included (the padding id's row
            of the table goes through the Linear and ReLU like a word), as MMV's and MIL-NCE's released
            text towers do; converted checkpoints set it. False (default) leaves padding out.
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
        pool_padding: bool = False,
        modality: str = "text",
    ) -> None:
        super().__init__(modality, embed_dim, out_dim, pad_id)
        self.pool_padding = pool_padding
        self.init_table(embeddings_path, vocab_path, vocab_size, seed)

    # ------------------------------------------------------------------ Encoder
    def forward_tokens(self, x: Tensor) -> Tokens:
        """``[N, L]`` ids -> per-word features ``[N, L, E]`` (mask: not padding) and their max ``[N, E]``
        (over every position when ``pool_padding``)."""
        out = super().forward_tokens(x)
        if self.pool_padding:
            out.pooled = out.tokens.amax(dim=1)
        return out

    def example_input(self, batch_size: int) -> Tensor:
        return torch.randint(1, max(2, self.vocab_size), (batch_size, 6))

    def check_input_spec(self, spec: Mapping[str, Any]) -> None:
        self.check_table_spec(spec)


# ---------------------------------------------------------------------------- published weights
def word2vec_text_state_dict_from_milnce(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """MIL-NCE's ``text_module`` (``word_embd`` [V, 300], ``fc1`` 300 -> 2048) -> :class:`Word2VecTextEncoder` keys.

    Row 0 of ``word_embd`` is the padding id's vector (the port pools over it: ``pool_padding=True``);
    ``fc2`` (2048 -> 512) is the text head, not the encoder's.
    """
    return {"table": state["text_module.word_embd.weight"], "proj.weight": state["text_module.fc1.weight"], "proj.bias": state["text_module.fc1.bias"]}


def word2vec_text_state_dict_from_mmv(params: "NamedParams") -> dict[str, Tensor]:
    """MMV's ``text_module`` (``embed/embeddings`` [V, 300], ``text_conv1``: a width-1 Conv1D 300 -> 2048) -> encoder keys."""
    from versanet.weights.layout import conv1x1_as_linear

    return {
        "table": params.get("text_module/embed", "embeddings"),
        "proj.weight": conv1x1_as_linear(params.get("text_module/text_conv1", "w")),
        "proj.bias": params.get("text_module/text_conv1", "b"),
    }
