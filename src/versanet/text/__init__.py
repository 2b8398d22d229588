"""Text front ends: word2vec vocabularies and tokenisation (MMV's frozen word2vec text path)."""

from versanet.text.word2vec import (
    PAD_ID,
    STOP_WORDS,
    UNK_ID,
    Word2VecFormatError,
    Word2VecSubset,
    Word2VecTokenize,
    Word2VecTokenizer,
    cached_word2vec_subset,
    load_word2vec,
    load_word2vec_subset,
    read_word_list,
    text_to_words,
)

__all__ = [
    "PAD_ID", "UNK_ID", "STOP_WORDS", "Word2VecFormatError", "Word2VecSubset", "Word2VecTokenize",
    "Word2VecTokenizer", "cached_word2vec_subset", "load_word2vec", "load_word2vec_subset", "read_word_list", "text_to_words",
]
