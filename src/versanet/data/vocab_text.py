"""A fixed word list as a tokenizer: the text front end of converted checkpoints (MIL-NCE, MMV).

Released text towers come with their own vocabulary (MIL-NCE's ``s3d_dict.npy``, MMV's word list) and
their own rule for turning a sentence into ids, which differs from versanet's
:class:`~versanet.text.word2vec.Word2VecTokenize` (stop words, an ``<unk>`` id). MIL-NCE's rule, the
default here: lowercase, words = ``re.findall(r"[\\w']+", text)``, each known word -> its id, unknown
words DROPPED (not mapped to an id), the first ``max_tokens`` ids kept, 0-padded. dmvr's
``WordTokenizer`` (MMV's data pipeline): delete ASCII punctuation (``delete=DMVR_PUNCTUATION``),
lowercase, split on whitespace (``pattern=r"\\S+"``), unknown words -> the ``<unk>`` id.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import torch
from torch import Tensor

from versanet.data.transforms import CaptionTokens
from versanet.registry import register

DMVR_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


@register("transform")
class VocabularyTokenize(CaptionTokens):
    """K caption candidates -> ids ``[K, max_tokens]`` of a fixed word list (0 pads); the list is the transform's state.

    Word ``words[i]`` has id ``i + first_id`` (MIL-NCE: 1, id 0 being padding). ``unknown="drop"``
    leaves unknown words out (MIL-NCE); ``"id"`` maps them to ``unknown_id``. Checkpoints carry the word
    list, so a converted model tokenizes queries alone.

    Args:
        num_candidates: K captions per clip (1 for retrieval queries).
        max_tokens: ids kept per caption (16 for MIL-NCE and MMV).
        pattern: regex whose matches in the lowercased text are the words.
        first_id: id of the first word of the list.
        unknown: ``"drop"`` or ``"id"``.
        unknown_id: the id of unknown words with ``unknown="id"``.
        lowercase: lowercase before matching.
        delete: characters removed from the text before matching (dmvr: :data:`DMVR_PUNCTUATION`).
        checkpoint: a versanet checkpoint (e.g. a converted one) whose ``text`` transform's word list to use,
            so a benchmark config can name the model's vocabulary without a side file.
    """

    def __init__(
        self,
        num_candidates: int = 1,
        max_tokens: int = 16,
        pattern: str = r"[\w']+",
        first_id: int = 1,
        unknown: Literal["drop", "id"] = "drop",
        unknown_id: int = 1,
        lowercase: bool = True,
        delete: str = "",
        checkpoint: str | None = None,
    ) -> None:
        if unknown not in ("drop", "id"):
            raise ValueError(f"unknown must be 'drop' or 'id', not {unknown!r}")
        self.num_candidates, self.max_tokens = num_candidates, max_tokens
        self.pattern, self.first_id, self.unknown, self.unknown_id, self.lowercase = re.compile(pattern), first_id, unknown, unknown_id, lowercase
        self.delete = str.maketrans("", "", delete)
        self.words: list[str] = []
        self._ids: dict[str, int] = {}
        if checkpoint is not None:
            self.load_state(_checkpoint_text_state(checkpoint))

    def set_words(self, words: list[str]) -> "VocabularyTokenize":
        """Use ``words`` (word i gets id ``i + first_id``; a repeated word keeps its first id)."""
        self.words = [str(w) for w in words]
        self._ids = {}
        for i, w in enumerate(self.words):
            self._ids.setdefault(w, i + self.first_id)
        return self

    def state(self) -> dict[str, Any]:
        return {"words": list(self.words)}

    def load_state(self, state: dict[str, Any]) -> None:
        if "words" in state:
            self.set_words(list(state["words"]))

    def spec(self) -> dict[str, Any]:
        return {"vocab_size": len(self.words) + self.first_id if self.words else None, "pad_id": 0, "max_tokens": self.max_tokens}

    def ids(self, text: str) -> list[int]:
        """The ids of ``text``'s words, unknown ones dropped or mapped, at most ``max_tokens``."""
        if not self.words:
            raise RuntimeError("VocabularyTokenize has no word list: build it with set_words() or load it from a checkpoint")
        text = text.translate(self.delete)
        words = self.pattern.findall(text.lower() if self.lowercase else text)
        if self.unknown == "drop":
            ids = [self._ids[w] for w in words if w in self._ids]
        else:
            ids = [self._ids.get(w, self.unknown_id) for w in words]
        return ids[: self.max_tokens]

    def encode(self, texts: list[str]) -> Tensor:
        """Texts -> ``[len(texts), max_tokens]`` int64, 0-padded."""
        out = torch.zeros(len(texts), self.max_tokens, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = self.ids(str(text))
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


def _checkpoint_text_state(path: str) -> dict[str, Any]:
    """The ``text`` transform state stored in a versanet checkpoint (read weights-only)."""
    from versanet.checkpoint import CheckpointError, safe_load

    data = safe_load(path, "checkpoint")
    entry = data.get("versanet", {}).get("transforms", {}).get("text") if isinstance(data, dict) else None
    if not entry or "words" not in entry.get("state", {}):
        raise CheckpointError(f"{path} stores no text word list (its text transform is not a VocabularyTokenize)")
    return dict(entry["state"])
