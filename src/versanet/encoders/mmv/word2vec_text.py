"""MMV's text network: frozen word2vec embeddings -> Linear(300, 2048) -> ReLU -> max over words.

Shape legend: N texts, L tokens, D embedding width (300 for GoogleNews), E = ``out_dim``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from versanet.encoders.base import Tokens
from versanet.encoders.text import WordMaxPoolEncoder
from versanet.registry import register
from versanet.text.word2vec import PAD_ID, Word2VecSubset, cached_word2vec_subset, read_word_list

if TYPE_CHECKING:
    from versanet.weights.layout import NamedParams

log = logging.getLogger(__name__)


def load_embedding_table(embeddings_path: str | Path, vocab_path: str | Path | None = None) -> Word2VecSubset:
    """The table of a subset cache (``.pt``), or of a word2vec ``.bin``/``.txt`` restricted to ``vocab_path``'s words.

    With a word2vec file, the subset is cached next to the vocabulary file as
    ``<vocab file>.<word2vec stem>.subset.pt``. Ids follow the subset (0 pad, 1 unk, then the found
    words in word2vec file order), which is deterministic: :class:`~versanet.text.word2vec.Word2VecTokenize`
    given the same word2vec file and vocabulary file assigns the same ids.
    """
    path = Path(embeddings_path)
    if path.suffix == ".pt":
        return Word2VecSubset.load(path)
    if vocab_path is None:
        raise ValueError(
            f"Word2VecTextEncoder: {path} is a word2vec file; give vocab_path (one word per line) to pick the words "
            "to load, or point embeddings_path at a subset .pt written by Word2VecTokenize"
        )
    vocab_path = Path(vocab_path)
    stem = path.name
    for suffix in (".gz", ".bin", ".txt", ".vec"):
        stem = stem.removesuffix(suffix)
    cache = vocab_path.with_name(f"{vocab_path.name}.{stem}.subset.pt")
    return cached_word2vec_subset(path, read_word_list(vocab_path), cache)


@register("encoder")
class Word2VecTextEncoder(WordMaxPoolEncoder):
    """Frozen word2vec embeddings -> Linear(300, 2048) -> ReLU -> max over words (MMV's text network).

    Input: word ids ``[N, L]`` (0 = padding, ignored by the max; an all-padding row gives zeros).
    The Linear is MMV's ``Conv1d(k=1)``; it is the only trainable part (616,448 parameters at
    300 -> 2048). The embedding table is a frozen, persistent buffer, so checkpoints carry it.

    Where the table comes from:
    - ``embeddings_path`` = a subset ``.pt`` (what :class:`~versanet.text.word2vec.Word2VecTokenize`
      writes). If it does not exist yet when the model is built (the data module writes it in
      ``prepare_data``, after the model is built), loading waits until ``check_input_spec``,
      which the pretraining module calls after the data is prepared.
    - ``embeddings_path`` = a word2vec ``.bin``/``.txt`` plus ``vocab_path`` (one word per line).
    - ``embeddings_path=None``: the data's table when the data reports one (``spec()["embeddings_path"]``),
      else a random frozen N(0, 1) table of ``vocab_size`` x ``embed_dim`` (seeded; for tests).
    Loading a checkpoint takes the checkpoint's table, whatever its vocabulary size.

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
        self.embeddings_path, self.vocab_path = embeddings_path, vocab_path
        self.vocab_size = vocab_size
        self.table_source = "random"  # "random" | "deferred" | a file path | "checkpoint"
        self.register_buffer("table", torch.zeros(0, embed_dim))
        if embeddings_path is None:
            generator = torch.Generator().manual_seed(seed)
            table = torch.randn(vocab_size, embed_dim, generator=generator)
            table[pad_id] = 0.0
            self._set_table(table, "random")
        elif Path(embeddings_path).suffix == ".pt" and not Path(embeddings_path).exists():
            self.table_source = "deferred"
            log.info("Word2VecTextEncoder: %s does not exist yet; loading it after the data is prepared", embeddings_path)
        else:
            self.load_table(embeddings_path, vocab_path)

    # ------------------------------------------------------------------ the table
    def _set_table(self, table: Tensor, source: str) -> None:
        if table.dim() != 2 or table.shape[1] != self.embed_dim:
            raise ValueError(
                f"Word2VecTextEncoder: {source} holds {table.shape[-1]}-d vectors but embed_dim is {self.embed_dim}; "
                f"set embed_dim: {table.shape[-1]}"
            )
        self.table = table.to(device=self.proj.weight.device, dtype=torch.float32).contiguous()
        self.vocab_size = table.shape[0]
        self.table_source = source

    def load_table(self, embeddings_path: str | Path, vocab_path: str | Path | None = None) -> None:
        """Replace the table by the one in ``embeddings_path`` (see the class docstring)."""
        subset = load_embedding_table(embeddings_path, vocab_path)
        self._set_table(subset.vectors, str(embeddings_path))

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        # the checkpoint's table is the one the model was trained with: take its size, whatever ours is
        saved = state_dict.get(prefix + "table")
        if saved is not None and saved.dim() == 2 and saved.shape[1] == self.embed_dim:
            if saved.shape != self.table.shape:
                self.table = torch.empty(saved.shape, dtype=self.table.dtype, device=self.table.device)
            self.vocab_size = saved.shape[0]
            self.table_source = "checkpoint"  # never replaced by a data module's table afterwards
        super()._load_from_state_dict(state_dict, prefix, *args)

    # ------------------------------------------------------------------ Encoder
    def forward_tokens(self, x: Tensor) -> Tokens:
        """``[N, L]`` ids -> per-word features ``[N, L, E]`` (mask: not padding) and their max ``[N, E]``
        (over every position when ``pool_padding``)."""
        out = super().forward_tokens(x)
        if self.pool_padding:
            out.pooled = out.tokens.amax(dim=1)
        return out

    def word_vectors(self, x: Tensor) -> Tensor:
        """``[N, L]`` word ids -> frozen word2vec vectors ``[N, L, embed_dim]``."""
        if self.table.shape[0] == 0:
            raise RuntimeError(
                f"Word2VecTextEncoder: the embedding table {self.embeddings_path} was never loaded "
                "(it is loaded in check_input_spec once the data module has written it)"
            )
        return F.embedding(x, self.table)

    def example_input(self, batch_size: int) -> Tensor:
        return torch.randint(1, max(2, self.vocab_size), (batch_size, 6))

    def check_input_spec(self, spec: Mapping[str, Any]) -> None:
        data_path = spec.get("embeddings_path")
        if self.table_source == "deferred":
            if not Path(self.embeddings_path).exists():  # type: ignore[arg-type]
                raise FileNotFoundError(
                    f"Word2VecTextEncoder: embeddings file not found: {self.embeddings_path} "
                    f"(the data's word2vec subset is {data_path or 'not reported'})"
                )
            self.load_table(self.embeddings_path, self.vocab_path)  # type: ignore[arg-type]
        elif self.table_source == "random" and data_path:
            log.info("Word2VecTextEncoder: using the data's word2vec table %s", data_path)
            self.load_table(data_path)
        elif self.table_source == "random" and spec:
            log.warning("Word2VecTextEncoder: no word2vec file given; the text network uses a random frozen table")
        dim = spec.get("embed_dim")
        if dim is not None and dim != self.embed_dim:
            raise ValueError(f"the data's word vectors are {dim}-d but Word2VecTextEncoder.embed_dim is {self.embed_dim}")
        vocab = spec.get("vocab_size")
        if vocab is not None:
            from_files = data_path is not None and self.table_source not in ("random", "checkpoint")
            if vocab > self.vocab_size or (from_files and vocab != self.vocab_size):
                raise ValueError(
                    f"the text tokenizer has {vocab} words but Word2VecTextEncoder's table ({self.table_source}) has "
                    f"{self.vocab_size}; point model.encoders.text.init_args.embeddings_path at the data's subset {data_path} "
                    "(or leave it unset to use the data's)"
                )
        pad = spec.get("pad_id")
        if pad is not None and pad != self.pad_id:
            raise ValueError(f"the tokenizer pads with id {pad} but Word2VecTextEncoder.pad_id is {self.pad_id}")


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
