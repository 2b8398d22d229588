"""word2vec vocabularies for MMV's text network: streaming loader, subset cache, tokenizer, data transform.

MMV (docs/method.md, "Backbones") embeds captions with the frozen 300-d GoogleNews word2vec vectors. That file
holds 3M words (3.6 GB), of which a caption corpus uses a few tens of thousands, so versanet never
loads it whole:

- :func:`load_word2vec` streams a word2vec file (binary ``.bin`` or text format, optionally
  gzipped) and keeps only the vectors of the requested words. The binary file is read one word at
  a time through a 256 KB window (``_CHUNK_BYTES``): each word is cut out at its space, unwanted
  vectors are skipped without being decoded (with a ``seek`` when they reach past the window), and
  the scan stops as soon as every requested word was found. Memory stays at one window.
- :func:`cached_word2vec_subset` writes what it loaded to a small ``.pt`` (a
  :class:`Word2VecSubset`: word list + ``[V, dim]`` float32 table) and reuses it on the next run as
  long as the word2vec file (name, size, mtime) and the requested word set are unchanged.
- :class:`Word2VecTokenizer` turns text into ids of that vocabulary; :class:`Word2VecTokenize` is
  the data transform (``prepare`` builds the cache from the training captions, ``setup`` loads it).

Vocabulary layout: id 0 = padding (``<pad>``, a zero vector), id 1 = unknown word (``<unk>``:
a zero vector by default, or the mean of the loaded vectors with ``unk="mean"``), then the found
words in the order they appear in the word2vec file (GoogleNews is sorted by frequency).

Matching is case-insensitive by default (``lowercase=True``): captions are lowercased, and a file
word matches in its lowercased form, the first occurrence winning (for GoogleNews, the most
frequent casing, e.g. "dog" before "Dog" and "DOG").
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import torch
from torch import Tensor

from versanet.data.transforms import CaptionTokens, Corpus, normalise_text
from versanet.registry import register

log = logging.getLogger(__name__)

PAD_ID = 0
UNK_ID = 1
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
SUBSET_FORMAT = "versanet.word2vec_subset"
_MAX_WORD_BYTES = 4096
_CHUNK_BYTES = 1 << 18  # binary files are read through a window of this size

# English function words (after the lowercasing and punctuation stripping of ``normalise_text``).
# MMV's paper removes stop words before the 16-token cut. Direction and position words (up, down,
# over, under, above, below, off, out, left, right, ...) are deliberately NOT in the list: in
# instructional captions (and in the toy world) they carry the meaning.
STOP_WORDS: frozenset[str] = frozenset(
    """
    a an the and or but nor so yet if then else than that this these those there here
    i me my myself we us our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves one
    what which who whom whose when where why how
    am is are was were be been being have has had having do does did doing done
    will would shall should can could may might must ought
    of at by for with about against between into through during before after to from
    as until while because just also too very only own same such both each few more most
    other some any all no not
    again further once
    i'm i've i'll i'd you're you've you'll you'd he's she's it's we're we've we'll we'd
    they're they've they'll they'd that's there's here's what's let's
    isn't aren't wasn't weren't hasn't haven't hadn't doesn't don't didn't won't wouldn't
    shan't shouldn't can't cannot couldn't mustn't
    s t d ll m o re ve y
    """.split()
)


class Word2VecFormatError(ValueError):
    """A word2vec file (or subset cache) that cannot be parsed; the message names the file and the problem."""


# ----------------------------------------------------------------------------- text -> words
def text_to_words(text: str, stop_words: Iterable[str] | None = STOP_WORDS) -> list[str]:
    """Lowercase, strip punctuation (:func:`normalise_text`), split on whitespace, drop ``stop_words``.

    Quotes around a word are stripped (``'hello'`` -> ``hello``); ``None`` keeps every word.
    """
    stop = stop_words if isinstance(stop_words, (set, frozenset)) or stop_words is None else frozenset(stop_words)
    words = (w.strip("'") for w in normalise_text(text).split())
    return [w for w in words if w and (stop is None or w not in stop)]


# ----------------------------------------------------------------------------- the subset
@dataclass
class Word2VecSubset:
    """A vocabulary and its vectors: ``words[i]`` has vector ``vectors[i]`` (``[V, dim]`` float32).

    ``words[0]`` is ``<pad>`` (zero row) and ``words[1]`` is ``<unk>`` (zero or mean row, see ``unk``).
    """

    words: list[str]
    vectors: Tensor
    source: str = ""
    unk: str = "zeros"
    fingerprint: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vectors.dim() != 2 or self.vectors.shape[0] != len(self.words):
            raise ValueError(f"Word2VecSubset: {len(self.words)} words but vectors of shape {tuple(self.vectors.shape)}")
        if self.words[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise ValueError(f"Word2VecSubset: the first two words must be {PAD_TOKEN}, {UNK_TOKEN}")

    @property
    def vocab(self) -> dict[str, int]:
        """word -> id."""
        return {w: i for i, w in enumerate(self.words)}

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def save(self, path: str | Path) -> Path:
        """Write a ``.pt`` (atomically: temp file + rename, so parallel readers never see half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        torch.save(
            {"format": SUBSET_FORMAT, "version": 1, "words": self.words, "vectors": self.vectors.contiguous(),
             "source": self.source, "unk": self.unk, "fingerprint": self.fingerprint},
            tmp,
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Word2VecSubset:
        """Read a file written by :meth:`save` (errors name the file)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"word2vec subset file not found: {path}")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling problem means "not our file"
            raise Word2VecFormatError(f"{path}: not a word2vec subset file ({type(err).__name__}: {err})") from err
        if not isinstance(data, dict) or data.get("format") != SUBSET_FORMAT:
            raise Word2VecFormatError(f"{path}: not a word2vec subset file (written by versanet.text.word2vec.Word2VecSubset.save)")
        try:
            return cls(list(data["words"]), data["vectors"].float(), data.get("source", ""), data.get("unk", "zeros"), dict(data.get("fingerprint", {})))
        except (KeyError, ValueError, AttributeError) as err:
            raise Word2VecFormatError(f"{path}: corrupt word2vec subset file ({err})") from err


# ----------------------------------------------------------------------------- reading word2vec files
def _open(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb", buffering=1 << 20)  # noqa: SIM115 - closed by the caller's `with`


def _parse_header(f: BinaryIO, path: Path) -> tuple[int, int]:
    line = f.readline(256)
    try:
        count_s, dim_s = line.decode("ascii").split()
        count, dim = int(count_s), int(dim_s)
    except (UnicodeDecodeError, ValueError):
        raise Word2VecFormatError(
            f"{path}: bad header {line[:80]!r}; a word2vec file starts with a line '<vocabulary size> <dimension>'"
        ) from None
    if count <= 0 or dim <= 0:
        raise Word2VecFormatError(f"{path}: bad header {line[:80]!r}: vocabulary size and dimension must be positive")
    return count, dim


def _is_binary(path: Path) -> bool | None:
    """From the file name: ``.bin`` -> binary, ``.txt``/``.vec`` -> text, else None (sniff the content)."""
    suffixes = [s for s in path.suffixes if s != ".gz"]
    last = suffixes[-1].lower() if suffixes else ""
    return True if last == ".bin" else False if last in (".txt", ".vec", ".text") else None


_CONTROL_BYTES = re.compile(rb"[\x00-\x1f\x7f]")
_TEXT_BYTES = frozenset(b"0123456789.-+eEnaifNAIF \t\r\n")


def _sniff_binary(f: BinaryIO, dim: int) -> bool:
    """After the header: text if the bytes after the first word look like decimal numbers."""
    head = f.peek(_MAX_WORD_BYTES + 64)  # type: ignore[attr-defined]
    space = head.find(b" ")
    sample = head[space + 1 : space + 1 + min(4 * dim, 64)] if space >= 0 else b""
    return not (sample and all(b in _TEXT_BYTES for b in sample))


class _ChunkReader:
    """Sequential reads of a binary word2vec file through one ``chunk``-byte window.

    Words are cut out of the window; an unwanted vector is skipped by moving the window offset, or
    by a ``seek`` when it reaches past the window. Memory stays at one chunk whatever the file size.
    """

    def __init__(self, f: BinaryIO, path: Path, chunk: int) -> None:
        self.f, self.path, self.chunk = f, path, chunk
        self.buf, self.pos = b"", 0
        self.seekable = not isinstance(f, gzip.GzipFile)  # gzip "seeks" by decompressing: read instead

    def _refill(self) -> bool:
        more = self.f.read(self.chunk)
        self.buf, self.pos = self.buf[self.pos :] + more, 0
        return bool(more)

    def word(self, entry: int, count: int) -> bytes | None:
        """The bytes up to the next space (a leading newline dropped); None at the end of the file."""
        while (j := self.buf.find(b" ", self.pos)) < 0:
            if len(self.buf) - self.pos > _MAX_WORD_BYTES:
                raise Word2VecFormatError(
                    f"{self.path}: entry {entry + 1}: no space within {_MAX_WORD_BYTES} bytes; not a binary word2vec file "
                    "(or the vectors do not have the header's number of values)"
                )
            if not self._refill():
                if self.buf[self.pos :].strip(b"\n\r"):
                    raise Word2VecFormatError(f"{self.path}: truncated: the file ends inside word {entry + 1} of {count}")
                return None
        word = self.buf[self.pos : j].lstrip(b"\n\r")
        self.pos = j + 1
        if not word:
            raise Word2VecFormatError(f"{self.path}: entry {entry + 1}: empty word")
        if _CONTROL_BYTES.search(word):
            raise Word2VecFormatError(
                f"{self.path}: entry {entry + 1} of {count}: the word {word[:40]!r} holds control bytes; the vectors do not "
                "have the header's number of values (or this is not a binary word2vec file)"
            )
        return word

    def read(self, n: int) -> bytes:
        if len(self.buf) - self.pos >= n:
            out = self.buf[self.pos : self.pos + n]
            self.pos += n
            return out
        out = self.buf[self.pos :] + self.f.read(n - (len(self.buf) - self.pos))
        self.buf, self.pos = b"", 0
        return out

    def skip(self, n: int) -> bool:
        """Move ``n`` bytes on; False if the file ended first (checked at once only where it cannot seek)."""
        rest = n - (len(self.buf) - self.pos)
        if rest <= 0:
            self.pos += n
            return True
        self.buf, self.pos = b"", 0
        if self.seekable:
            self.f.seek(rest, os.SEEK_CUR)
            return True
        return len(self.f.read(rest)) == rest

    def past_end(self) -> bool:
        """True when a seek went beyond the end of the file."""
        return self.seekable and self.f.tell() > os.fstat(self.f.fileno()).st_size

    def tail(self, n: int) -> bytes:
        return self.buf[self.pos : self.pos + n] + (self.f.read(n) if len(self.buf) - self.pos < n else b"")


def _key(word: bytes, lowercase: bool) -> str:
    text = word.decode("utf-8", errors="replace")
    return text.lower() if lowercase else text


def _scan_binary(f: BinaryIO, path: Path, count: int, dim: int, wanted: set[str] | None, lowercase: bool, found: dict[str, np.ndarray]) -> None:
    nbytes = 4 * dim
    reader = _ChunkReader(f, path, max(_CHUNK_BYTES, 1))
    for entry in range(count):
        word = reader.word(entry, count)
        if word is None:
            raise Word2VecFormatError(f"{path}: truncated: the header announces {count} words but the file ends after {entry}")
        key = _key(word, lowercase)
        if (wanted is None or key in wanted) and key not in found:
            data = reader.read(nbytes)
            if len(data) < nbytes:
                raise Word2VecFormatError(
                    f"{path}: truncated: word {entry + 1} of {count} ({key!r}) has {len(data)} of its {nbytes} vector bytes"
                )
            found[key] = np.frombuffer(data, dtype="<f4").astype(np.float32)
            if wanted is not None and len(found) == len(wanted):
                return  # every requested word found: the rest of the file is not read
        elif not reader.skip(nbytes):
            raise Word2VecFormatError(f"{path}: truncated: word {entry + 1} of {count} ({key!r}) lacks vector bytes")
    if reader.past_end():
        raise Word2VecFormatError(f"{path}: truncated: the last vector is cut short (file smaller than the header announces)")
    if reader.tail(64).strip():
        raise Word2VecFormatError(f"{path}: data after the {count} words the header announces; do the vectors have {dim} values each?")


def _scan_text(f: BinaryIO, path: Path, count: int, dim: int, wanted: set[str] | None, lowercase: bool, found: dict[str, np.ndarray]) -> None:
    entry = 0
    for lineno, line in enumerate(f, start=2):
        parts = line.split()
        if not parts:
            continue
        if entry == count:
            raise Word2VecFormatError(f"{path}, line {lineno}: more entries than the {count} the header announces")
        entry += 1
        key = _key(parts[0], lowercase)
        if len(parts) - 1 != dim:
            raise Word2VecFormatError(f"{path}, line {lineno}: word {key!r} has {len(parts) - 1} values, expected {dim} (the header's dimension)")
        if (wanted is None or key in wanted) and key not in found:
            try:
                found[key] = np.array([float(v) for v in parts[1:]], dtype=np.float32)
            except ValueError:
                bad = next(v for v in parts[1:] if not _is_float(v))
                raise Word2VecFormatError(f"{path}, line {lineno}: word {key!r}: non-numeric value {bad.decode('utf-8', 'replace')!r}") from None
            if wanted is not None and len(found) == len(wanted):
                return
    if entry < count:
        raise Word2VecFormatError(f"{path}: truncated: the header announces {count} words but the file has {entry}")


def _is_float(v: bytes) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def load_word2vec(
    path: str | Path,
    words: Iterable[str] | None = None,
    *,
    binary: bool | None = None,
    lowercase: bool = True,
    unk: Literal["zeros", "mean"] = "zeros",
) -> Word2VecSubset:
    """Stream a word2vec file and keep the vectors of ``words`` (all words when None: small files only).

    Args:
        path: GoogleNews-style file: binary (``.bin``) or text (``.txt``/``.vec``), optionally ``.gz``.
        words: the vocabulary wanted; words absent from the file are left out (they become ``<unk>``).
        binary: file format; None decides from the suffix, else by looking at the first entry.
        lowercase: match case-insensitively (the first occurrence in the file wins).
        unk: the ``<unk>`` row: ``"zeros"`` or ``"mean"`` of the loaded vectors.

    Raises ``FileNotFoundError`` for a missing file and :class:`Word2VecFormatError` (naming the
    file) for a bad header, a truncated file, a vector with the wrong number of values or a
    non-numeric value. The scan stops once every requested word is found, so damage after that
    point goes unnoticed; in the text format only the requested words' values are parsed (every
    line's value count is checked).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"word2vec file not found: {path}")
    if unk not in ("zeros", "mean"):
        raise ValueError(f"unk must be 'zeros' or 'mean', not {unk!r}")
    wanted = None if words is None else {w.lower() if lowercase else w for w in words} - {PAD_TOKEN, UNK_TOKEN}
    found: dict[str, np.ndarray] = {}
    with _open(path) as f:
        count, dim = _parse_header(f, path)
        is_binary = binary if binary is not None else _is_binary(path)
        if is_binary is None:
            is_binary = _sniff_binary(f, dim)
        if wanted is None or wanted:
            (_scan_binary if is_binary else _scan_text)(f, path, count, dim, wanted, lowercase, found)
    table = np.zeros((len(found) + 2, dim), dtype=np.float32)
    if found:
        table[2:] = np.stack(list(found.values()))
    if not np.isfinite(table).all():
        raise Word2VecFormatError(f"{path}: non-finite vector values (NaN or inf); is the format ({'binary' if is_binary else 'text'}) right?")
    if unk == "mean" and found:
        table[UNK_ID] = table[2:].mean(axis=0)
    if wanted is not None:
        log.info("word2vec %s: found %d of %d requested words", path, len(found), len(wanted))
    return Word2VecSubset([PAD_TOKEN, UNK_TOKEN, *found], torch.from_numpy(table), str(path), unk)


def load_word2vec_subset(path: str | Path, words: Iterable[str], **kwargs: Any) -> Word2VecSubset:
    """:func:`load_word2vec` restricted to ``words`` (required here)."""
    return load_word2vec(path, words, **kwargs)


def _fingerprint(path: Path, words: Iterable[str], **options: Any) -> dict[str, Any]:
    stat = path.stat()
    digest = hashlib.sha1("\n".join(sorted(set(words))).encode("utf-8")).hexdigest()
    return {"name": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "words_sha1": digest, **options}


def cached_word2vec_subset(
    path: str | Path,
    words: Iterable[str],
    cache_path: str | Path,
    *,
    binary: bool | None = None,
    lowercase: bool = True,
    unk: Literal["zeros", "mean"] = "zeros",
) -> Word2VecSubset:
    """:func:`load_word2vec` of ``words``, cached in ``cache_path`` (a small ``.pt``).

    The cache is reused when it was made from a file with the same name, size and modification
    time, for the same word set and options; otherwise the word2vec file is scanned again and the
    cache rewritten (atomically).
    """
    path, cache_path = Path(path), Path(cache_path)
    if not path.is_file():
        raise FileNotFoundError(f"word2vec file not found: {path}")
    words = list(words)
    fingerprint = _fingerprint(path, words, lowercase=lowercase, unk=unk)
    if cache_path.is_file():
        try:
            cached = Word2VecSubset.load(cache_path)
        except Word2VecFormatError as err:
            log.warning("ignoring unreadable word2vec cache: %s", err)
        else:
            if cached.fingerprint == fingerprint:
                return cached
            log.info("word2vec cache %s is stale (different file or words); rescanning %s", cache_path, path)
    subset = load_word2vec(path, words, binary=binary, lowercase=lowercase, unk=unk)
    subset.fingerprint = fingerprint
    subset.save(cache_path)
    log.info("wrote word2vec subset %s (%d words, %d-d)", cache_path, subset.vocab_size, subset.dim)
    return subset


def read_word_list(path: str | Path) -> list[str]:
    """A vocabulary file: one word per line (blank lines and duplicates dropped, order kept)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file not found: {path}")
    return list(dict.fromkeys(w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip()))


# ----------------------------------------------------------------------------- tokenizer and transform
class Word2VecTokenizer:
    """Text -> word ids ``[N, max_tokens]`` of a word2vec vocabulary (0 pads, 1 = unknown word).

    Words: :func:`text_to_words` (lowercase, no punctuation, stop words removed unless
    ``remove_stop_words=False``); the first ``max_tokens`` words are kept.
    """

    def __init__(self, vocab: Mapping[str, int] | Sequence[str], max_tokens: int = 16, remove_stop_words: bool = True, stop_words: Iterable[str] = STOP_WORDS) -> None:
        self.vocab = dict(vocab) if isinstance(vocab, Mapping) else {w: i for i, w in enumerate(vocab)}
        self.max_tokens = max_tokens
        self.stop_words = frozenset(stop_words) if remove_stop_words else None

    def words(self, text: str) -> list[str]:
        return text_to_words(text, self.stop_words)

    def ids(self, text: str) -> list[int]:
        """Ids of the first ``max_tokens`` words (unknown words -> 1)."""
        return [self.vocab.get(w, UNK_ID) for w in self.words(text)[: self.max_tokens]]

    def encode(self, texts: Sequence[str]) -> Tensor:
        """Texts -> ``[len(texts), max_tokens]`` int64, 0-padded."""
        out = torch.zeros(len(texts), self.max_tokens, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = self.ids(text)
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


@register("transform")
class Word2VecTokenize(CaptionTokens):
    """K caption candidates -> word2vec word ids ``[K, max_tokens]`` (MMV's text input; pair with Word2VecTextEncoder).

    ``prepare`` collects the words of the training captions (or of ``vocab_path``, one word per
    line), reads their vectors from ``word2vec_path`` and caches them in ``cache_path`` (default
    ``<data root>/word2vec/<word2vec file stem>.subset.pt``); a second run reuses the cache.
    ``setup`` loads it. ``spec()`` reports ``vocab_size``, ``pad_id``, ``embed_dim`` and
    ``embeddings_path`` (the cache), which :class:`~versanet.encoders.mmv.word2vec_text.Word2VecTextEncoder`
    checks, and loads when it was given no file of its own. Missing candidates are all-padding
    rows with a False mask, as in :class:`~versanet.data.transforms.TokenizeText`.
    """

    def __init__(
        self,
        word2vec_path: str | None = None,
        cache_path: str | None = None,
        vocab_path: str | None = None,
        num_candidates: int = 4,
        max_tokens: int = 16,
        remove_stop_words: bool = True,
        lowercase: bool = True,
        unk: Literal["zeros", "mean"] = "zeros",
        binary: bool | None = None,
    ) -> None:
        if word2vec_path is None and cache_path is None:
            raise ValueError("Word2VecTokenize needs word2vec_path (a GoogleNews .bin/.txt file) or cache_path (a subset .pt)")
        self.word2vec_path, self.cache_path, self.vocab_path = word2vec_path, cache_path, vocab_path
        self.num_candidates, self.max_tokens = num_candidates, max_tokens
        self.remove_stop_words, self.lowercase, self.unk, self.binary = remove_stop_words, lowercase, unk, binary
        self._tokenizer: Word2VecTokenizer | None = None
        self._subset_info: dict[str, Any] = {}

    def _cache(self, corpus: Corpus) -> Path:
        if self.cache_path:
            return Path(self.cache_path)
        name = Path(self.word2vec_path).name  # type: ignore[arg-type]
        for suffix in (".gz", ".bin", ".txt", ".vec"):
            name = name.removesuffix(suffix)
        return corpus.root / "word2vec" / f"{name}.subset.pt"

    def corpus_words(self, corpus: Corpus) -> list[str]:
        """The words whose vectors are wanted: ``vocab_path``'s, or those of the training captions."""
        if self.vocab_path:
            return read_word_list(self.vocab_path)
        stop = STOP_WORDS if self.remove_stop_words else None
        return sorted({w for caption in corpus.captions for w in text_to_words(caption, stop)})

    def prepare(self, corpus: Corpus) -> None:
        cache = self._cache(corpus)
        if self.word2vec_path is None:
            if not cache.is_file():
                raise FileNotFoundError(f"word2vec subset file not found: {cache} (give word2vec_path to build it)")
            return
        cached_word2vec_subset(self.word2vec_path, self.corpus_words(corpus), cache, binary=self.binary, lowercase=self.lowercase, unk=self.unk)

    def setup(self, corpus: Corpus) -> None:
        cache = self._cache(corpus)
        subset = Word2VecSubset.load(cache)
        self._tokenizer = Word2VecTokenizer(subset.words, self.max_tokens, self.remove_stop_words)
        self._subset_info = {"vocab_size": subset.vocab_size, "embed_dim": subset.dim, "embeddings_path": str(cache)}

    def spec(self) -> dict[str, Any]:
        return {"vocab_size": None, "embed_dim": None, "embeddings_path": None, **self._subset_info, "pad_id": PAD_ID, "max_tokens": self.max_tokens}

    def state(self) -> dict[str, Any]:
        """The vocabulary (word i has id i), so a checkpoint tokenizes queries alone; its vectors live in the encoder."""
        if self._tokenizer is None:
            return {}
        words = sorted(self._tokenizer.vocab, key=self._tokenizer.vocab.__getitem__)
        return {"words": words, "embed_dim": self._subset_info.get("embed_dim")}

    def load_state(self, state: dict[str, Any]) -> None:
        if "words" in state:
            self._tokenizer = Word2VecTokenizer(list(state["words"]), self.max_tokens, self.remove_stop_words)
            self._subset_info = {"vocab_size": len(state["words"]), "embed_dim": state.get("embed_dim"), "embeddings_path": None}

    def encode(self, texts: list[str]) -> Tensor:
        """Texts -> ``[len(texts), max_tokens]`` int64, 0-padded."""
        if self._tokenizer is None:
            raise RuntimeError("Word2VecTokenize used before setup(): the data module calls prepare() and setup() first")
        return self._tokenizer.encode(texts)
