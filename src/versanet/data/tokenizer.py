"""Sentencepiece vocabularies trained on a caption corpus (used when no word2vec file is given)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import sentencepiece as spm


def train_sentencepiece(texts: list[str], model_path: str | Path, vocab_size: int, model_type: str = "unigram") -> Path:
    """Train on ``texts`` and write ``model_path`` (id 0 = pad, 1 = unk, no bos/eos).

    ``vocab_size`` is an upper bound: a small corpus gets fewer pieces instead of an error.
    The file is written atomically (temp file + rename) so parallel readers never see half a model.
    """
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError(f"cannot train a tokenizer for {model_path}: the caption corpus is empty")
    model_path = Path(model_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=buffer,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        model_type=model_type,
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        character_coverage=1.0,
        minloglevel=2,
        num_threads=1,
    )
    tmp = model_path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(model_path)
    return model_path


def load_sentencepiece(model_path: str | Path) -> spm.SentencePieceProcessor:
    """Load a model written by :func:`train_sentencepiece` (clear error when the file is missing)."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"sentencepiece model not found: {model_path} (train one with `versanet tokenizer train`)")
    return spm.SentencePieceProcessor(model_file=str(model_path))
