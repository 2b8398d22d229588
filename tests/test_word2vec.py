"""word2vec text path (versanet.text.word2vec, versanet.encoders.mmv.word2vec_text): file formats,
streaming subsets, the cache, the tokenizer and transform, and MMV's text encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from versanet.data.transforms import Corpus, RawClip
from versanet.encoders.mmv.word2vec_text import Word2VecTextEncoder
from versanet.text import word2vec as w2v
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
    text_to_words,
)

WORDS = ["red", "circle", "moves", "left", "blue", "square", "up", "down", "green", "triangle",
         "fast", "slowly", "ball", "box", "right", "cut", "onion", "pan", "stir", "Hot"]
DIM = 5


def _vectors(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((len(WORDS), DIM)).astype(np.float32)


def write_bin(path: Path, words=WORDS, vectors=None, newline: bool = True, header: bytes | None = None) -> np.ndarray:
    vectors = _vectors() if vectors is None else vectors
    with open(path, "wb") as f:
        f.write(header if header is not None else f"{len(words)} {vectors.shape[1]}\n".encode())
        for word, vec in zip(words, vectors):
            f.write(word.encode() + b" " + vec.astype("<f4").tobytes() + (b"\n" if newline else b""))
    return vectors


def write_txt(path: Path, words=WORDS, vectors=None) -> np.ndarray:
    vectors = _vectors() if vectors is None else vectors
    lines = [f"{len(words)} {vectors.shape[1]}"]
    lines += [word + " " + " ".join(f"{v:.9g}" for v in vec) for word, vec in zip(words, vectors)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return vectors


# ----------------------------------------------------------------------------- loading
@pytest.mark.parametrize("fmt", ["bin", "bin-no-newline", "txt"])
def test_load_all_words_exact(tmp_path, fmt):
    path = tmp_path / ("w2v.txt" if fmt == "txt" else "w2v.bin")
    vectors = write_txt(path) if fmt == "txt" else write_bin(path, newline=fmt == "bin")
    subset = load_word2vec(path)
    assert subset.words == ["<pad>", "<unk>"] + [w.lower() for w in WORDS]
    assert subset.vectors.dtype == torch.float32 and subset.vectors.shape == (len(WORDS) + 2, DIM)
    assert torch.equal(subset.vectors[2:], torch.from_numpy(vectors))  # exact, not approximate
    assert torch.equal(subset.vectors[:2], torch.zeros(2, DIM))  # pad and (default) unk rows are zeros


@pytest.mark.parametrize("fmt", ["bin", "txt"])
def test_subset_returns_only_requested_words(tmp_path, fmt):
    path = tmp_path / f"w2v.{fmt}"
    vectors = (write_txt if fmt == "txt" else write_bin)(path)
    wanted = ["square", "pan", "hot", "notinfile"]  # "Hot" in the file matches "hot" (case-insensitive)
    subset = load_word2vec(path, wanted)
    assert subset.words == ["<pad>", "<unk>", "square", "pan", "hot"]  # file order; unknown words left out
    for word in ("square", "pan", "hot"):
        row = [w.lower() for w in WORDS].index(word)
        assert torch.equal(subset.vectors[subset.vocab[word]], torch.from_numpy(vectors[row]))
    case_sensitive = load_word2vec(path, ["Hot", "hot"], lowercase=False)
    assert case_sensitive.words == ["<pad>", "<unk>", "Hot"]


def test_format_sniffed_without_suffix_and_gzip(tmp_path):
    import gzip

    vectors = write_bin(tmp_path / "vectors")
    assert torch.equal(load_word2vec(tmp_path / "vectors", ["cut"]).vectors[2], torch.from_numpy(vectors[WORDS.index("cut")]))
    write_txt(tmp_path / "vectors_text")
    assert torch.equal(load_word2vec(tmp_path / "vectors_text", ["cut"]).vectors[2], torch.from_numpy(vectors[WORDS.index("cut")]))
    gz = tmp_path / "w2v.bin.gz"
    gz.write_bytes(gzip.compress((tmp_path / "vectors").read_bytes()))
    assert torch.equal(load_word2vec(gz, ["stir", "cut"]).vectors[2:], torch.from_numpy(vectors[[WORDS.index("cut"), WORDS.index("stir")]]))


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_binary_reader_streams_through_a_small_window(tmp_path, monkeypatch, chunk):
    """Any window size gives the same result, and no read is larger than the window (or one vector)."""
    path = tmp_path / "w2v.bin"
    vectors = write_bin(path)
    reads: list[int] = []
    real_open = w2v._open

    def recording_open(p):
        f = real_open(p)
        real_read = f.read

        def read(n=-1):
            reads.append(n)
            return real_read(n)

        f.read = read
        return f

    monkeypatch.setattr(w2v, "_open", recording_open)
    monkeypatch.setattr(w2v, "_CHUNK_BYTES", chunk)
    subset = load_word2vec(path, ["blue", "hot", "notinfile"])
    assert subset.words == ["<pad>", "<unk>", "blue", "hot"]
    assert torch.equal(subset.vectors[2:], torch.from_numpy(vectors[[4, 19]]))
    assert torch.equal(load_word2vec(path).vectors[2:], torch.from_numpy(vectors))
    assert reads and 0 < max(reads) <= max(chunk, 4 * DIM, 64)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(Word2VecFormatError, match="truncated"):
        load_word2vec(path, ["notinfile"])


def test_unk_mean(tmp_path):
    path = tmp_path / "w2v.bin"
    vectors = write_bin(path)
    subset = load_word2vec(path, ["red", "blue"], unk="mean")
    assert torch.allclose(subset.vectors[UNK_ID], torch.from_numpy(vectors[[0, 4]].mean(0)))
    assert torch.equal(subset.vectors[PAD_ID], torch.zeros(DIM))


# ----------------------------------------------------------------------------- malformed files
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        load_word2vec(tmp_path / "nope.bin", ["a"])


@pytest.mark.parametrize("header", [b"abc\n", b"20\n", b"20 five\n", b"0 5\n", b"\xff\xfe 5\n"])
def test_bad_header(tmp_path, header):
    path = tmp_path / "bad_header.bin"
    write_bin(path, header=header)
    with pytest.raises(Word2VecFormatError, match=r"bad_header\.bin.*bad header"):
        load_word2vec(path, ["red"])


def test_truncated_binary(tmp_path):
    path = tmp_path / "cut.bin"
    write_bin(path)
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # the last vector loses some bytes
    with pytest.raises(Word2VecFormatError, match=r"cut\.bin.*truncated"):
        load_word2vec(path, ["hot"])  # the requested word's vector is cut
    with pytest.raises(Word2VecFormatError, match=r"cut\.bin.*truncated"):
        load_word2vec(path, ["red", "notinfile"])  # skipped (seeked) vectors run past the end
    with pytest.raises(Word2VecFormatError, match=r"cut\.bin.*truncated"):
        load_word2vec(path)
    write_bin(path, header=f"{len(WORDS) + 3} {DIM}\n".encode())  # fewer words than announced
    with pytest.raises(Word2VecFormatError, match=r"cut\.bin.*truncated.*announces 23 words"):
        load_word2vec(path, ["notinfile"])


@pytest.mark.parametrize("actual_dim", [DIM + 3, DIM - 2])
def test_binary_wrong_vector_length(tmp_path, actual_dim):
    """Vectors longer or shorter than the header says: words run into float bytes, or data is left over."""
    path = tmp_path / "wrong_dim.bin"
    write_bin(path, vectors=np.random.default_rng(1).standard_normal((len(WORDS), actual_dim)).astype(np.float32),
              header=f"{len(WORDS)} {DIM}\n".encode())
    with pytest.raises(Word2VecFormatError, match=r"wrong_dim\.bin"):
        load_word2vec(path, ["notinfile"])


def test_text_wrong_vector_length(tmp_path):
    path = tmp_path / "short.txt"
    write_txt(path)
    lines = path.read_text().splitlines()
    lines[3] = " ".join(lines[3].split()[:-1])  # "moves" loses a value
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(Word2VecFormatError, match=r"short\.txt, line 4: word 'moves' has 4 values, expected 5"):
        load_word2vec(path, ["hot"])


def test_text_non_numeric(tmp_path):
    path = tmp_path / "nan.txt"
    write_txt(path)
    lines = path.read_text().splitlines()
    parts = lines[5].split()
    parts[2] = "0.1x"
    lines[5] = " ".join(parts)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(Word2VecFormatError, match=r"nan\.txt, line 6: word 'blue': non-numeric value '0\.1x'"):
        load_word2vec(path, ["blue"])


def test_text_truncated(tmp_path):
    path = tmp_path / "few.txt"
    write_txt(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:10]) + "\n")
    with pytest.raises(Word2VecFormatError, match=r"few\.txt.*truncated"):
        load_word2vec(path, ["notinfile"])


# ----------------------------------------------------------------------------- the cache
def test_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    path = tmp_path / "w2v.bin"
    write_bin(path)
    cache = tmp_path / "data" / "w2v.subset.pt"
    first = cached_word2vec_subset(path, ["red", "box"], cache)
    assert cache.is_file()
    calls = []
    real = w2v.load_word2vec
    monkeypatch.setattr(w2v, "load_word2vec", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = cached_word2vec_subset(path, ["box", "red"], cache)  # same set: no rescan
    assert calls == [] and again.words == first.words and torch.equal(again.vectors, first.vectors)
    cached_word2vec_subset(path, ["red", "box", "pan"], cache)  # different words: rescan
    assert len(calls) == 1
    assert Word2VecSubset.load(cache).words == ["<pad>", "<unk>", "red", "box", "pan"]


def test_cache_bad_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(Word2VecFormatError, match="bad.pt"):
        Word2VecSubset.load(bad)


# ----------------------------------------------------------------------------- tokenizer and transform
def test_text_to_words_and_stop_words():
    assert text_to_words("The RED circle, moves UP to the left!") == ["red", "circle", "moves", "up", "left"]
    assert text_to_words("The red 'ball'", stop_words=None) == ["the", "red", "ball"]
    assert {"the", "a", "and", "is"} <= STOP_WORDS and not {"up", "down", "left", "right"} & STOP_WORDS


def test_tokenizer_ids_unknown_padding_truncation():
    vocab = ["<pad>", "<unk>", "red", "circle", "moves"]
    tok = Word2VecTokenizer(vocab, max_tokens=4)
    out = tok.encode(["The red circle moves", "a zebra circle", "", "red red red red red red"])
    assert out.tolist() == [[2, 3, 4, 0], [UNK_ID, 3, 0, 0], [0, 0, 0, 0], [2, 2, 2, 2]]


def test_transform_prepare_setup_call(tmp_path, monkeypatch):
    path = tmp_path / "w2v.bin"
    vectors = write_bin(path)
    corpus = Corpus(tmp_path / "root", ["The red circle moves left", "a blue square goes up", "Stir the hot pan"])
    transform = Word2VecTokenize(word2vec_path=str(path), num_candidates=3, max_tokens=6)
    transform.prepare(corpus)
    cache = tmp_path / "root" / "word2vec" / "w2v.subset.pt"
    assert cache.is_file()
    transform.setup(corpus)
    spec = transform.spec()
    # corpus words found in the file: red circle moves left blue square up stir hot pan ("goes" is not)
    assert spec == {"vocab_size": 12, "embed_dim": DIM, "embeddings_path": str(cache), "pad_id": 0, "max_tokens": 6}
    tokens, mask = transform(RawClip("v", 0.0, 1.0, True, captions=["the blue square goes up", "red"]))
    assert tokens.shape == (3, 6) and mask.tolist() == [True, True, False]
    subset = Word2VecSubset.load(cache)
    assert [subset.words[i] for i in tokens[0, :4]] == ["blue", "square", "<unk>", "up"]
    assert tokens[2].eq(0).all()
    assert torch.equal(subset.vectors[subset.vocab["blue"]], torch.from_numpy(vectors[WORDS.index("blue")]))
    # a second prepare does not rescan
    monkeypatch.setattr(w2v, "load_word2vec", lambda *a, **k: pytest.fail("rescanned"))
    Word2VecTokenize(word2vec_path=str(path)).prepare(corpus)
    # the cache alone is enough
    only_cache = Word2VecTokenize(cache_path=str(cache), max_tokens=6)
    only_cache.prepare(corpus)
    only_cache.setup(corpus)
    assert torch.equal(only_cache.encode(["red pan"]), transform.encode(["red pan"]))


def test_transform_needs_a_file():
    with pytest.raises(ValueError, match="word2vec_path"):
        Word2VecTokenize()


# ----------------------------------------------------------------------------- encoder
def test_default_encoder_param_count():
    enc = Word2VecTextEncoder()
    assert enc.num_parameters() == 300 * 2048 + 2048 == 616_448
    assert enc.out_dim == 2048 and not any(p.requires_grad for n, p in enc.named_parameters() if not n.startswith("proj"))
    assert "table" in enc.state_dict()  # the frozen table is a persistent buffer


def test_encoder_shapes_and_padding_ignored():
    enc = Word2VecTextEncoder(**Word2VecTextEncoder.contract_kwargs).eval()
    x = torch.tensor([[5, 7, 9, 0, 0, 0], [3, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    out = enc(x)
    assert out.shape == (3, 16)
    # padding does not change the max: drop it, or put other ids' rows at the pad id
    assert torch.allclose(out[0], enc(x[:1, :3])[0]) and torch.allclose(out[1], enc(x[1:2, :1])[0])
    assert torch.equal(out[2], torch.zeros(16))
    # max over tokens: the output is at least the per-token features
    per_token = torch.relu(enc.proj(enc.table[torch.tensor([5, 7, 9])]))
    assert torch.allclose(out[0], per_token.amax(0))


def test_encoder_from_subset_and_word2vec_file(tmp_path):
    path = tmp_path / "w2v.bin"
    vectors = write_bin(path)
    cache = cached_word2vec_subset(path, ["red", "pan"], tmp_path / "subset.pt")
    enc = Word2VecTextEncoder(embeddings_path=str(tmp_path / "subset.pt"), embed_dim=DIM, out_dim=8)
    assert torch.equal(enc.table, cache.vectors) and enc.vocab_size == 4 and enc.num_parameters() == DIM * 8 + 8
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("red\npan\nzebra\n")
    enc2 = Word2VecTextEncoder(embeddings_path=str(path), vocab_path=str(vocab), embed_dim=DIM, out_dim=8)
    assert torch.equal(enc2.table, cache.vectors)
    assert torch.equal(enc2.table[3], torch.from_numpy(vectors[WORDS.index("pan")]))
    with pytest.raises(ValueError, match="set embed_dim: 5"):
        Word2VecTextEncoder(embeddings_path=str(tmp_path / "subset.pt"))
    with pytest.raises(ValueError, match="vocab_path"):
        Word2VecTextEncoder(embeddings_path=str(path), embed_dim=DIM)


def test_encoder_deferred_table_and_spec(tmp_path):
    """The model is built before the data module writes the subset: loading waits for check_input_spec."""
    path = tmp_path / "w2v.bin"
    write_bin(path)
    cache = tmp_path / "root" / "word2vec" / "w2v.subset.pt"
    enc = Word2VecTextEncoder(embeddings_path=str(cache), embed_dim=DIM, out_dim=8)
    with pytest.raises(RuntimeError, match="never loaded"):
        enc(torch.ones(1, 3, dtype=torch.long))
    corpus = Corpus(tmp_path / "root", ["red circle", "hot pan"])
    transform = Word2VecTokenize(word2vec_path=str(path))
    transform.prepare(corpus)
    transform.setup(corpus)
    enc.check_input_spec(transform.spec())
    assert enc.vocab_size == 6 and enc(transform.encode(["red pan"])).shape == (1, 8)
    # no file given: the encoder takes the data's table
    auto = Word2VecTextEncoder(embed_dim=DIM, out_dim=8)
    auto.check_input_spec(transform.spec())
    assert torch.equal(auto.table, enc.table)
    # mismatches are reported
    with pytest.raises(ValueError, match="pads with id"):
        enc.check_input_spec({"pad_id": 3})
    with pytest.raises(ValueError, match="300-d"):
        enc.check_input_spec({"embed_dim": 300})
    with pytest.raises(ValueError, match="has 7 words"):
        enc.check_input_spec({"vocab_size": 7, "embeddings_path": "other.pt"})


def test_encoder_checkpoint_carries_table(tmp_path):
    path = tmp_path / "w2v.bin"
    write_bin(path)
    cached_word2vec_subset(path, ["red", "pan", "box"], tmp_path / "subset.pt")
    enc = Word2VecTextEncoder(embeddings_path=str(tmp_path / "subset.pt"), embed_dim=DIM, out_dim=8)
    state = enc.state_dict()
    (tmp_path / "subset.pt").unlink()  # a machine without the file
    restored = Word2VecTextEncoder(embeddings_path=str(tmp_path / "subset.pt"), embed_dim=DIM, out_dim=8)
    restored.load_state_dict(state)
    x = torch.tensor([[2, 3, 4, 0]])
    assert torch.equal(restored(x), enc(x))
    random_table = Word2VecTextEncoder(embed_dim=DIM, out_dim=8)  # 1000 rows
    random_table.load_state_dict(state)
    assert random_table.table.shape == (5, DIM) and torch.equal(random_table(x), enc(x))
