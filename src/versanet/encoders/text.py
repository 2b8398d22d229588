"""Text-network pieces: the word max-pool shape of MMV and MCN, and the frozen word-vector table they and VATT share.

:class:`WordMaxPoolEncoder`: word vectors -> Linear -> ReLU -> max over words. Subclasses say where
the word vectors come from (:meth:`WordMaxPoolEncoder.word_vectors`): a learned embedding over a
sentencepiece vocabulary (:class:`~versanet.encoders.small.EmbeddingTextEncoder`) or a frozen
word2vec table (:class:`~versanet.encoders.mmv.word2vec_text.Word2VecTextEncoder`).

:class:`FrozenWordTable`: the frozen ``[V, D]`` word2vec table as a persistent buffer (``table``),
from a file, from the data's word2vec subset, or random for tests; MMV's and VATT's text encoders
read their word vectors from it.

Shape legend: N texts, L tokens, D word-vector width, E = ``out_dim``.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from versanet.encoders.base import Encoder, Tokens
from versanet.text.word2vec import Word2VecSubset, cached_word2vec_subset, read_word_list

log = logging.getLogger(__name__)


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
            f"{path} is a word2vec file; give vocab_path (one word per line) to pick the words "
            "to load, or point embeddings_path at a subset .pt written by Word2VecTokenize"
        )
    vocab_path = Path(vocab_path)
    stem = path.name
    for suffix in (".gz", ".bin", ".txt", ".vec"):
        stem = stem.removesuffix(suffix)
    cache = vocab_path.with_name(f"{vocab_path.name}.{stem}.subset.pt")
    return cached_word2vec_subset(path, read_word_list(vocab_path), cache)


class FrozenWordTable(nn.Module):
    """Mixin: a frozen word-vector table ``table [V, embed_dim]`` (persistent buffer), read by :meth:`word_vectors`.

    Where the table comes from (:meth:`init_table`):
    - ``embeddings_path`` = a subset ``.pt`` (what :class:`~versanet.text.word2vec.Word2VecTokenize`
      writes). If it does not exist yet when the model is built (the data module writes it in
      ``prepare_data``, after the model is built), loading waits until :meth:`check_table_spec`,
      which the pretraining module calls (through ``check_input_spec``) after the data is prepared.
    - ``embeddings_path`` = a word2vec ``.bin``/``.txt`` plus ``vocab_path`` (one word per line).
    - ``embeddings_path=None``: the data's table when the data reports one (``spec()["embeddings_path"]``),
      else a random frozen N(0, 1) table of ``vocab_size`` x ``embed_dim`` (seeded; for tests).
    Loading a checkpoint takes the checkpoint's table, whatever its vocabulary size.
    """

    embed_dim: int
    pad_id: int

    def init_table(self, embeddings_path: str | None, vocab_path: str | None, vocab_size: int, seed: int) -> None:
        """Set up ``table`` (call from ``__init__`` after ``embed_dim`` and ``pad_id`` are set)."""
        self.embeddings_path, self.vocab_path = embeddings_path, vocab_path
        self.vocab_size = vocab_size
        self.table_source = "random"  # "random" | "deferred" | a file path | "checkpoint"
        self.register_buffer("table", torch.zeros(0, self.embed_dim))
        if embeddings_path is None:
            generator = torch.Generator().manual_seed(seed)
            table = torch.randn(vocab_size, self.embed_dim, generator=generator)
            table[self.pad_id] = 0.0
            self._set_table(table, "random")
        elif Path(embeddings_path).suffix == ".pt" and not Path(embeddings_path).exists():
            self.table_source = "deferred"
            log.info("%s: %s does not exist yet; loading it after the data is prepared", type(self).__name__, embeddings_path)
        else:
            self.load_table(embeddings_path, vocab_path)

    def _set_table(self, table: Tensor, source: str) -> None:
        if table.dim() != 2 or table.shape[1] != self.embed_dim:
            raise ValueError(
                f"{type(self).__name__}: {source} holds {table.shape[-1]}-d vectors but embed_dim is {self.embed_dim}; "
                f"set embed_dim: {table.shape[-1]}"
            )
        self.table = table.to(device=self.table.device, dtype=torch.float32).contiguous()
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

    def word_vectors(self, x: Tensor) -> Tensor:
        """``[N, L]`` word ids -> frozen word vectors ``[N, L, embed_dim]``."""
        if self.table.shape[0] == 0:
            raise RuntimeError(
                f"{type(self).__name__}: the embedding table {self.embeddings_path} was never loaded "
                "(it is loaded in check_input_spec once the data module has written it)"
            )
        return F.embedding(x, self.table)

    def check_table_spec(self, spec: Mapping[str, Any]) -> None:
        """Load a deferred table or take the data's, and check width, vocabulary size and padding id against ``spec``."""
        name = type(self).__name__
        data_path = spec.get("embeddings_path")
        if self.table_source == "deferred":
            if not Path(self.embeddings_path).exists():  # type: ignore[arg-type]
                raise FileNotFoundError(
                    f"{name}: embeddings file not found: {self.embeddings_path} "
                    f"(the data's word2vec subset is {data_path or 'not reported'})"
                )
            self.load_table(self.embeddings_path, self.vocab_path)  # type: ignore[arg-type]
        elif self.table_source == "random" and data_path:
            log.info("%s: using the data's word2vec table %s", name, data_path)
            self.load_table(data_path)
        elif self.table_source == "random" and spec:
            log.warning("%s: no word2vec file given; the text network uses a random frozen table", name)
        dim = spec.get("embed_dim")
        if dim is not None and dim != self.embed_dim:
            raise ValueError(f"the data's word vectors are {dim}-d but {name}.embed_dim is {self.embed_dim}")
        vocab = spec.get("vocab_size")
        if vocab is not None:
            from_files = data_path is not None and self.table_source not in ("random", "checkpoint")
            if vocab > self.vocab_size or (from_files and vocab != self.vocab_size):
                raise ValueError(
                    f"the text tokenizer has {vocab} words but {name}'s table ({self.table_source}) has "
                    f"{self.vocab_size}; point model.encoders.text.init_args.embeddings_path at the data's subset {data_path} "
                    "(or leave it unset to use the data's)"
                )
        pad = spec.get("pad_id")
        if pad is not None and pad != self.pad_id:
            raise ValueError(f"the tokenizer pads with id {pad} but {name}.pad_id is {self.pad_id}")
