"""``vatt_tf``: VATT's TF checkpoints -> versanet, checked against a NumPy re-implementation of VATT's TF layers.

The fixtures are real TF2 object-graph checkpoints written with TensorFlow (in a subprocess, as VATT
saves them: variables keyed by their attribute paths, e.g. ``.../vid_backbone/_base/tx/layers/0/mha/q/kernel``),
holding random weights in VATT's layouts at tiny sizes (uneven grids and widths, so a swapped axis or a
missing transpose shows). The converted model's outputs (backbone features and every FAC joint-space
embedding) must equal, in float64, what VATT's TF computation gives on the same weights: Keras' conv
and Dense conventions, LayerNorm/RMS norms, head splitting, T5's relative buckets, the FAC head's batch norms.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from versanet.checkpoint import load_pretrained
from versanet.cli import main
from versanet.weights.layout import ConversionError, NamedParams

if importlib.util.find_spec("tensorflow") is None:  # the fixtures are written with TensorFlow (the `test` extra)
    pytest.skip("writing TF checkpoints needs tensorflow", allow_module_level=True)

BASE = "model/layer_with_weights-0/_base_layer/"
HEAD = "model/_head_layer/_bridge_heads/0/"
VIDEO, AUDIO, TEXT, UT = BASE + "vid_backbone/_base/", BASE + "aud_backbone/_base/", BASE + "txt_backbone/", BASE + "unified_backbone/unified_transformer/"
PATCH, GRID = (2, 4, 4), (2, 3, 2)  # video tubelet and positional buckets (t, h, w): a 4 x 12 x 8 clip
WAVE_PATCH, WAVE_BUCKETS = 8, 5  # 40 samples
VOCAB, EMBED, WORDS = 10, 6, 5
VA, VAT = 12, 6


# ----------------------------------------------------------------------------- fixtures in VATT's layouts
class Weights(dict):
    """``{checkpoint path: float32 array}`` filled with random values in VATT's shapes."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = np.random.default_rng(seed)

    def add(self, path: str, *shape: int, positive: bool = False) -> None:
        value = self.rng.uniform(0.5, 1.5, shape) if positive else self.rng.normal(0.0, 0.3, shape)
        self[path] = value.astype(np.float32)

    def dense(self, path: str, d_in: int, d_out: int, bias: bool = True) -> None:
        self.add(f"{path}/kernel", d_in, d_out)
        if bias:
            self.add(f"{path}/bias", d_out)

    def layer_norm(self, path: str, dim: int) -> None:
        self.add(f"{path}/gamma", dim, positive=True)
        self.add(f"{path}/beta", dim)

    def batch_norm(self, path: str, dim: int) -> None:
        self.layer_norm(path, dim)
        self.add(f"{path}/moving_mean", dim)
        self.add(f"{path}/moving_variance", dim, positive=True)

    def vit(self, root: str, layers: int, d: int, inner: int, d_ff: int) -> None:
        for i in range(layers):
            layer = f"{root}/layers/{i}"
            self.layer_norm(f"{layer}/layer_norm", d)
            for name in "qkv":
                self.dense(f"{layer}/mha/{name}", d, inner)
            self.dense(f"{layer}/mha/o", inner, d)
            self.layer_norm(f"{layer}/feed_forward/layer_norm", d)
            self.dense(f"{layer}/feed_forward/mlp/wi", d, d_ff)
            self.dense(f"{layer}/feed_forward/mlp/wo", d_ff, d)
        self.layer_norm(f"{root}/final_layer_norm", d)

    def positions(self, root: str, d: int, **axes: int) -> None:
        for axis, buckets in axes.items():
            self.add(f"{root}/{axis}_position_embeddings/embeddings", buckets, d)
        self.layer_norm(f"{root}/layernorm", d)

    def fac(self, d_video: int, d_audio: int, d_text: int, va: int = VA, vat: int = VAT) -> None:
        self.dense(HEAD + "vid_to_hid", d_video, va, bias=False)
        self.batch_norm(HEAD + "hid_to_va/pre_bn", va)
        self.dense(HEAD + "hid_to_va/dense", va, va, bias=False)
        self.batch_norm(HEAD + "hid_to_va/bn", va)
        self.dense(HEAD + "va_to_vat/dense", va, vat, bias=False)
        self.batch_norm(HEAD + "va_to_vat/bn", vat)
        self.dense(HEAD + "aud_to_va", d_audio, va)
        self.dense(HEAD + "txt_to_vat", d_text, vat)


class Shapes(Weights):
    """The same layouts as zero-stride arrays: VATT's real sizes without the memory."""

    def add(self, path: str, *shape: int, positive: bool = False) -> None:
        self[path] = np.broadcast_to(np.float32(0.0), shape)


T5 = {"layers": 2, "d": 16, "heads": 2, "d_kv": 8, "d_ff": 20, "buckets": 8}
# (layers, d_model, heads x d_kv, d_ff) of each Transformer; tokeniser and positional sizes; heads
TINY = {"video": (2, 32, 128, 48), "audio": (1, 24, 64, 40), "patch": PATCH, "grid": GRID, "wave": (WAVE_PATCH, WAVE_BUCKETS),
        "vocab": VOCAB, "embed": EMBED, "t5": T5, "words": WORDS, "va": VA, "vat": VAT, "post": 20}
BBS = {"video": (12, 768, 768, 3072), "audio": (12, 768, 768, 3072), "patch": (4, 16, 16), "grid": (8, 14, 14), "wave": (128, 1200),
       "vocab": 2**16, "embed": 300, "t5": {"layers": 6, "d": 512, "heads": 8, "d_kv": 64, "d_ff": 2048, "buckets": 32}, "va": 512, "vat": 256}
MA = BBS | {"video": (12, 1024, 1024, 4096), "words": 16, "post": 1024}


def bbs_fixture(w: Weights | None = None, s: dict = TINY) -> Weights:
    """A modality-specific VATT: at TINY, video 2 layers x 32 wide (2 heads of 64), audio 1 x 24 (1 head), text T5 2 x 16 (2 heads of 8)."""
    w = Weights(0) if w is None else w
    video, audio, t5 = s["video"], s["audio"], s["t5"]
    w.add(VIDEO + "voxel_to_patch/kernel", *s["patch"], 3, video[1])
    w.add(VIDEO + "voxel_to_patch/bias", video[1])
    w.positions(VIDEO + "pos_embedding_lookup", video[1], temporal=s["grid"][0], vertical=s["grid"][1], horizontal=s["grid"][2])
    w.add(VIDEO + "agg_embedding", video[1])
    w.vit(VIDEO + "tx", *video)
    w.add(AUDIO + "wave_to_patch/kernel", s["wave"][0], 1, audio[1])
    w.add(AUDIO + "wave_to_patch/bias", audio[1])
    w.positions(AUDIO + "pos_embedding_lookup", audio[1], temporal=s["wave"][1])
    w.add(AUDIO + "agg_embedding", audio[1])
    w.vit(AUDIO + "tx", *audio)
    w.add(TEXT + "embedding/embeddings", s["vocab"], s["embed"])
    w.add(TEXT + "agg_embedding", s["embed"])
    w.dense(TEXT + "pre_proj", s["embed"], t5["d"], bias=False)
    inner = t5["heads"] * t5["d_kv"]
    for i in range(t5["layers"]):
        layer = f"{TEXT}base_lm/layers/{i}"
        w.add(f"{layer}/self_attention/layer_norm/weight", t5["d"], positive=True)
        for name in "qkv":
            w.dense(f"{layer}/self_attention/attention/{name}", t5["d"], inner, bias=False)
        w.dense(f"{layer}/self_attention/attention/o", inner, t5["d"], bias=False)
        w.layer_norm(f"{layer}/feed_forward/layer_norm", t5["d"])
        w.dense(f"{layer}/feed_forward/mlp/wi", t5["d"], t5["d_ff"], bias=False)
        w.dense(f"{layer}/feed_forward/mlp/wo", t5["d_ff"], t5["d"], bias=False)
    w.add(f"{TEXT}base_lm/layers/0/self_attention/attention/relative_attention_bias/embeddings", t5["buckets"], t5["heads"])
    w.add(f"{TEXT}base_lm/final_layer_norm/weight", t5["d"], positive=True)
    w.fac(video[1], audio[1], t5["d"], s["va"], s["vat"])
    w["optimizer/iter"] = np.array(500000, np.int64)  # bookkeeping: skipped
    return w


def ma_fixture(w: Weights | None = None, s: dict = TINY) -> Weights:
    """VATT-MA: one Transformer (the ``video`` sizes), per-modality tokenisers and projections (``post`` wide)."""
    w = Weights(1) if w is None else w
    d, post = s["video"][1], s["post"]
    w.vit(UT + "tx", *s["video"])
    w.add(UT + "raw_to_embeddings/video/kernel", *s["patch"], 3, d)
    w.add(UT + "raw_to_embeddings/video/bias", d)
    w.add(UT + "raw_to_embeddings/audio/kernel", s["wave"][0], 1, d)
    w.add(UT + "raw_to_embeddings/audio/bias", d)
    w.add(UT + "raw_to_embeddings/text/embeddings", s["vocab"], s["embed"])
    w.positions(UT + "pos_embedding_lookup/video", d, temporal=s["grid"][0], vertical=s["grid"][1], horizontal=s["grid"][2])
    w.positions(UT + "pos_embedding_lookup/audio", d, temporal=s["wave"][1])
    w.positions(UT + "pos_embedding_lookup/text", d, temporal=s["words"])
    for modality, d_in in (("video", d), ("audio", d), ("text", s["embed"])):
        w.dense(f"{UT}pre_proj/{modality}", d_in, d)
        w.dense(f"{UT}post_proj/{modality}", d, post)
    for short in ("vid", "aud", "txt"):
        w.add(f"{UT}{short}_agg_embedding", d)
    w.fac(post, post, post, s["va"], s["vat"])
    return w


_WRITE_CHECKPOINTS = """
import sys, numpy as np, tensorflow as tf
def build(tree, scope):
    node = tf.Module()
    for name, value in tree.items():
        if isinstance(value, dict):
            setattr(node, name, build(value, f"{scope}/{name}"))
        else:  # Keras' variable names: both batch norms of hid_to_va are called 'batch_norm'
            own = f"{scope}/{name}".replace("/pre_bn/", "/batch_norm/").replace("/bn/", "/batch_norm/")
            setattr(node, name, tf.Variable(value, name=own.strip("/")))
    return node
for npz, prefix in zip(sys.argv[1::2], sys.argv[2::2]):
    arrays, tree = np.load(npz), {}
    for key in arrays.files:
        *parents, leaf = key.split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = arrays[key]
    tf.train.Checkpoint(**{k: build(v, "") for k, v in tree.items()}).write(prefix)
"""


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Weights, Path]]:
    """Four TF checkpoints written in one TensorFlow process: BBS-like, MA, and BBS with one variable missing / one extra."""
    root = tmp_path_factory.mktemp("vatt_tf")
    bbs, ma = bbs_fixture(), ma_fixture()
    missing = Weights(0) | {k: v for k, v in bbs.items() if not k.endswith("layers/1/mha/k/kernel")}
    extra = Weights(0) | bbs | {VIDEO + "mask_embedding": np.zeros(32, np.float32)}
    sets = {"bbs": bbs, "ma": ma, "missing": missing, "extra": extra}
    args = []
    for name, weights in sets.items():
        (root / name).mkdir()
        np.savez(root / f"{name}.npz", **weights)
        args += [str(root / f"{name}.npz"), str(root / name / "ckpt-500000")]
        _write_vocab(root / name / "howto100m_en.txt")
    subprocess.run([sys.executable, "-c", _WRITE_CHECKPOINTS, *args], check=True, capture_output=True)
    return {name: (sets[name], root / name / "ckpt-500000.index") for name in sets}


def _write_vocab(path: Path) -> None:
    path.write_text("<pad>\n<bos>\n<eos>\n<unk>\nopen\nthe\ndoor\ncut\n", encoding="utf-8")


# ----------------------------------------------------------------------------- VATT's TF computation in NumPy (float64)
_erf = np.vectorize(math.erf, otypes=[np.float64])  # exact erf in float64 (scipy is not a dependency)


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def layer_norm(x: np.ndarray, w: Weights, path: str, eps: float = 1e-6) -> np.ndarray:
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w[f"{path}/gamma"] + w[f"{path}/beta"]


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps) * weight


def dense(x: np.ndarray, w: Weights, path: str) -> np.ndarray:
    y = x @ w[f"{path}/kernel"].astype(np.float64)
    return y + w[f"{path}/bias"] if f"{path}/bias" in w else y


def batch_norm(x: np.ndarray, w: Weights, path: str) -> np.ndarray:
    mean, var = (w[f"{path}/{name}"].astype(np.float64) for name in ("moving_mean", "moving_variance"))
    return (x - mean) / np.sqrt(var + 1e-5) * w[f"{path}/gamma"] + w[f"{path}/beta"]


def attention(x: np.ndarray, w: Weights, path: str, heads: int, scaled: bool, add: np.ndarray | None) -> np.ndarray:
    """Keras Dense q/k/v ``[d, heads * d_kv]``, heads split as ``reshape(B, L, heads, d_kv)``, o ``[heads * d_kv, d]``."""
    b, length, _ = x.shape
    q, k, v = (dense(x, w, f"{path}/{n}").reshape(b, length, heads, -1).transpose(0, 2, 1, 3) for n in "qkv")
    scores = q @ k.transpose(0, 1, 3, 2) / (np.sqrt(q.shape[-1]) if scaled else 1.0)
    if add is not None:
        scores = scores + add
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    out = (scores / scores.sum(-1, keepdims=True)) @ v
    return dense(out.transpose(0, 2, 1, 3).reshape(b, length, -1), w, f"{path}/o")


def vit(x: np.ndarray, w: Weights, root: str, heads: int, add: np.ndarray | None = None) -> np.ndarray:
    i = 0
    while f"{root}/layers/{i}/mha/q/kernel" in w:
        layer = f"{root}/layers/{i}"
        x = x + attention(layer_norm(x, w, f"{layer}/layer_norm"), w, f"{layer}/mha", heads, True, add)
        h = layer_norm(x, w, f"{layer}/feed_forward/layer_norm")
        x = x + dense(gelu(dense(h, w, f"{layer}/feed_forward/mlp/wi")), w, f"{layer}/feed_forward/mlp/wo")
        i += 1
    return layer_norm(x, w, f"{root}/final_layer_norm")


def t5_buckets(length: int, num_buckets: int, max_distance: int = 64) -> np.ndarray:
    """VATT's ``_relative_position_bucket`` (bidirectional), written as its TF code reads."""
    relative = np.arange(length)[None, :] - np.arange(length)[:, None]  # memory - context
    n = -relative
    half = num_buckets // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    # TF takes log(0) = -inf at n = 0 and discards it (n < max_exact there); log(1) stands in for it here
    logs = np.log(np.maximum(n, 1).astype(np.float32) / max_exact) / np.log(max_distance / max_exact)
    large = max_exact + (logs * (half - max_exact)).astype(np.int64)
    return ret + np.where(n < max_exact, n, np.minimum(large, half - 1))


def t5(x: np.ndarray, w: Weights, root: str, mask: np.ndarray) -> np.ndarray:
    table = w[f"{root}/layers/0/self_attention/attention/relative_attention_bias/embeddings"]
    add = table[t5_buckets(x.shape[1], table.shape[0])].transpose(2, 0, 1)[None] + (1.0 - mask)[:, None, None, :] * -1e9
    for i in range(T5["layers"]):
        layer = f"{root}/layers/{i}"
        h = rms_norm(x, w[f"{layer}/self_attention/layer_norm/weight"])
        x = x + attention(h, w, f"{layer}/self_attention/attention", T5["heads"], False, add)
        h = layer_norm(x, w, f"{layer}/feed_forward/layer_norm")
        x = x + dense(gelu(dense(h, w, f"{layer}/feed_forward/mlp/wi")), w, f"{layer}/feed_forward/mlp/wo")
    return rms_norm(x, w[f"{root}/final_layer_norm/weight"])


def tubelets(video: np.ndarray, w: Weights, path: str) -> np.ndarray:
    """Keras Conv3D (kernel = stride, 'valid') on ``[B, T, H, W, 3]`` -> tokens ``[B, t*h*w, d]`` in (t, h, w) order."""
    b, t, h, wd, c = video.shape
    x = video.reshape(b, t // PATCH[0], PATCH[0], h // PATCH[1], PATCH[1], wd // PATCH[2], PATCH[2], c)
    out = np.einsum("bTtHhWwc,thwcd->bTHWd", x, w[f"{path}/kernel"].astype(np.float64)) + w[f"{path}/bias"]
    return out.reshape(b, -1, out.shape[-1])


def waveform_tokens(audio: np.ndarray, w: Weights, path: str) -> np.ndarray:
    """Keras Conv1D (kernel = stride) on ``[B, S, 1]`` -> ``[B, S / k, d]``."""
    kernel = w[f"{path}/kernel"].astype(np.float64)
    frames = audio.reshape(audio.shape[0], -1, kernel.shape[0] * kernel.shape[1])
    return frames @ kernel.reshape(-1, kernel.shape[-1]) + w[f"{path}/bias"]


def video_positions(w: Weights, root: str) -> np.ndarray:
    t, h, wd = (w[f"{root}/{axis}_position_embeddings/embeddings"].astype(np.float64) for axis in ("temporal", "vertical", "horizontal"))
    e = t[:, None, None] + h[None, :, None] + wd[None, None, :]
    return layer_norm(e.reshape(-1, e.shape[-1]), w, f"{root}/layernorm")


def temporal_positions(w: Weights, root: str) -> np.ndarray:
    return layer_norm(w[f"{root}/temporal_position_embeddings/embeddings"].astype(np.float64), w, f"{root}/layernorm")


def with_agg(tokens: np.ndarray, agg: np.ndarray) -> np.ndarray:
    return np.concatenate([np.broadcast_to(agg, (tokens.shape[0], 1, agg.shape[-1])), tokens], axis=1)


def fac(w: Weights, video: np.ndarray, audio: np.ndarray, text: np.ndarray) -> dict[str, np.ndarray]:
    hid = np.maximum(batch_norm(dense(video, w, HEAD + "vid_to_hid"), w, HEAD + "hid_to_va/pre_bn"), 0.0)
    va = batch_norm(dense(hid, w, HEAD + "hid_to_va/dense"), w, HEAD + "hid_to_va/bn")
    vat = batch_norm(dense(np.maximum(va, 0.0), w, HEAD + "va_to_vat/dense"), w, HEAD + "va_to_vat/bn")
    return {"video": video, "audio": audio, "text": text, "video@va": va, "video@vat": vat,
            "audio@va": dense(audio, w, HEAD + "aud_to_va"), "text@vat": dense(text, w, HEAD + "txt_to_vat")}


def bbs_reference(w: Weights, video: np.ndarray, audio: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    v = with_agg(tubelets(video, w, VIDEO + "voxel_to_patch") + video_positions(w, VIDEO + "pos_embedding_lookup"), w[VIDEO + "agg_embedding"])
    a = waveform_tokens(audio, w, AUDIO + "wave_to_patch") + temporal_positions(w, AUDIO + "pos_embedding_lookup")
    words = with_agg(w[TEXT + "embedding/embeddings"][ids].astype(np.float64), w[TEXT + "agg_embedding"])
    mask = np.concatenate([np.ones((ids.shape[0], 1)), (ids != 0).astype(np.float64)], axis=1)
    text = t5(gelu(dense(words, w, TEXT + "pre_proj")), w, TEXT + "base_lm", mask)[:, 0]
    return fac(w, vit(v, w, VIDEO + "tx", 2)[:, 0], vit(with_agg(a, w[AUDIO + "agg_embedding"]), w, AUDIO + "tx", 1)[:, 0], text)


def ma_reference(w: Weights, video: np.ndarray, audio: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    def tower(tokens: np.ndarray, modality: str, short: str, positions: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        x = gelu(dense(tokens, w, f"{UT}pre_proj/{modality}")) + positions
        add = None if mask is None else (1.0 - mask)[:, None, None, :] * -1e9
        out = vit(with_agg(x, w[f"{UT}{short}_agg_embedding"]), w, UT + "tx", 2, add)
        return gelu(dense(out, w, f"{UT}post_proj/{modality}"))[:, 0]

    mask = np.concatenate([np.ones((ids.shape[0], 1)), (ids != 0).astype(np.float64)], axis=1)
    return fac(
        w,
        tower(tubelets(video, w, UT + "raw_to_embeddings/video"), "video", "vid", video_positions(w, UT + "pos_embedding_lookup/video")),
        tower(waveform_tokens(audio, w, UT + "raw_to_embeddings/audio"), "audio", "aud", temporal_positions(w, UT + "pos_embedding_lookup/audio")),
        tower(w[UT + "raw_to_embeddings/text/embeddings"][ids].astype(np.float64), "text", "txt", temporal_positions(w, UT + "pos_embedding_lookup/text"), mask),
    )


# ----------------------------------------------------------------------------- tests
@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")  # the zero-stride shapes are read-only, and only read
def test_the_released_sizes_map_to_vatt_presets_with_the_papers_parameter_counts() -> None:
    """VATT's checkpoint layouts at BBS and VATT-MA-Medium sizes (shapes only): the converter picks the size presets,
    and the checkpoint's trainable variables per tower add up to versanet's BBS parameter counts."""
    from versanet.weights.vatt import vatt_model_config

    bbs = bbs_fixture(Shapes(0), BBS)
    encoders = vatt_model_config(NamedParams(bbs))["encoders"]
    assert encoders["video"]["init_args"] == {"size": "base", "patch_size": [4, 16, 16], "max_buckets": [8, 14, 14], "droptoken_rate": 0.5}
    assert encoders["audio"]["init_args"] == {"size": "base", "patch_size": 128, "max_buckets": 1200, "droptoken_rate": 0.5}
    assert encoders["text"]["init_args"] == {"size": "small", "vocab_size": 2**16, "embed_dim": 300, "num_relative_buckets": 32, "max_relative_distance": 64}
    count = lambda prefix: sum(v.size for k, v in bbs.items() if k.startswith(prefix) and not k.endswith(("embedding/embeddings", "moving_mean", "moving_variance")))  # noqa: E731
    assert (count(VIDEO), count(AUDIO), count(TEXT), count(HEAD)) == (87_446_016, 86_078_976, 19_038_252, 1_314_048)

    config = vatt_model_config(NamedParams(ma_fixture(Shapes(1), MA)))
    assert config["trunks"] == {"shared": {"class_path": "versanet.encoders.vatt.VATTTrunk", "init_args": {"size": "medium"}}}
    text = config["encoders"]["text"]["init_args"]
    assert text == {"size": "medium", "trunk": "shared", "post_projection": 1024, "max_tokens": 16, "vocab_size": 2**16, "embed_dim": 300}
    assert config["encoders"]["video"]["init_args"]["pre_projection"] is True


def test_t5_buckets_match_vatt_at_its_sizes() -> None:
    """VATT's 32 buckets up to distance 64, on its 17 text tokens and on sequences long enough to reach the log range."""
    from versanet.encoders.vatt.transformer import relative_position_bucket

    for length in (17, 150):
        position = torch.arange(length)
        ours = relative_position_bucket(position[None, :] - position[:, None], 32, 64).numpy()
        np.testing.assert_array_equal(ours, t5_buckets(length, 32, 64))


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    video = rng.uniform(-1, 1, (2, PATCH[0] * GRID[0], PATCH[1] * GRID[1], PATCH[2] * GRID[2], 3))  # [B, T, H, W, 3] as TF reads it
    audio = rng.normal(0, 0.5, (2, WAVE_PATCH * WAVE_BUCKETS, 1))
    ids = np.array([[4, 5, 6, 0, 0], [7, 3, 9, 2, 1]])  # padding in the first
    return video, audio, ids


def _run_converted(out: Path, video: np.ndarray, audio: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    model = load_pretrained(out).double().eval()
    batch = {"video": torch.from_numpy(video).permute(0, 4, 1, 2, 3), "audio": torch.from_numpy(audio).permute(0, 2, 1), "text": torch.from_numpy(ids)}
    with torch.no_grad():
        return {k: v.numpy() for k, v in model(batch).items()}


@pytest.mark.parametrize("kind", ["bbs", "ma"])
def test_vatt_tf_converts_and_matches_the_tf_computation(checkpoints: dict, tmp_path: Path, kind: str) -> None:
    weights, src = checkpoints[kind]
    src = src if kind == "bbs" else src.parent  # the .index file, or the folder holding the one checkpoint
    out = tmp_path / f"vatt_{kind}.ckpt"
    main(["weights", "convert", "--from", "vatt_tf", str(src), str(out)])
    video, audio, ids = _inputs()
    ours = _run_converted(out, video, audio, ids)
    expected = (bbs_reference if kind == "bbs" else ma_reference)(weights, video, audio, ids)
    assert set(expected) <= set(ours)
    for key, value in expected.items():
        np.testing.assert_allclose(ours[key], value, rtol=1e-9, atol=1e-9, err_msg=key)

    model = load_pretrained(out)
    sd = model.state_dict()
    enc = "encoders.video.voxel_to_patch.weight"
    kernel = weights[(VIDEO if kind == "bbs" else UT) + ("voxel_to_patch/kernel" if kind == "bbs" else "raw_to_embeddings/video/kernel")]
    np.testing.assert_array_equal(sd[enc].numpy(), kernel.transpose(4, 3, 0, 1, 2))  # [t, h, w, in, out] -> [out, in, t, h, w]
    np.testing.assert_array_equal(sd["heads.video->va.proj.1.running_var"].numpy(), weights[HEAD + "hid_to_va/pre_bn/moving_variance"])
    np.testing.assert_array_equal(sd["heads.video->va.proj.4.running_var"].numpy(), weights[HEAD + "hid_to_va/bn/moving_variance"])
    if kind == "ma":  # one shared Transformer, saved once
        assert not any(".trunk." in k for k in sd) and any(k.startswith("trunks.shared.layers.1.mha.q") for k in sd)
        assert type(model.trunks["shared"]).__name__ == "VATTTrunk"
    else:
        np.testing.assert_array_equal(sd["encoders.text.table"].numpy(), weights[TEXT + "embedding/embeddings"])
        np.testing.assert_array_equal(
            sd["encoders.text.trunk.layers.0.self_attention.attention.relative_attention_bias.weight"].numpy(),
            weights[f"{TEXT}base_lm/layers/0/self_attention/attention/relative_attention_bias/embeddings"],
        )
    text = model.transforms["text"]
    assert text.encode(["Open the DOOR, Bob!"])[0, :5].tolist() == [4, 5, 6, 3, 0]  # dmvr: punctuation deleted, unknown -> <unk>
    assert model.transforms["video"].value_range == (-1.0, 1.0)
    assert model.transforms["audio"].num_samples == WAVE_PATCH * WAVE_BUCKETS


def test_vatt_tf_refuses_a_missing_or_an_unexpected_variable(checkpoints: dict, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match=r"vid_backbone/_base/tx/layers/1/mha/k/w"):
        main(["weights", "convert", "--from", "vatt_tf", str(checkpoints["missing"][1]), str(tmp_path / "a.ckpt")])
    with pytest.raises(ConversionError, match=r"vid_backbone/_base/mask_embedding"):
        main(["weights", "convert", "--from", "vatt_tf", str(checkpoints["extra"][1]), str(tmp_path / "b.ckpt")])
    (checkpoints["bbs"][1].parent / "howto100m_en.txt").rename(tmp_path / "vocab.txt")
    try:
        with pytest.raises(ConversionError, match="--vocab"):
            main(["weights", "convert", "--from", "vatt_tf", str(checkpoints["bbs"][1]), str(tmp_path / "c.ckpt")])
    finally:
        (tmp_path / "vocab.txt").rename(checkpoints["bbs"][1].parent / "howto100m_en.txt")
    assert not any(tmp_path.glob("*.ckpt"))


def test_a_converted_vatt_runs_zero_shot_msrvtt_retrieval(
    checkpoints: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cli_single_thread: None,
) -> None:
    """docs/weights.md's VATT command on a miniature MSR-VTT: the checkpoint alone gives the model and the vocabulary."""
    from fixtures_data import MediaCache, make_msrvtt

    out = tmp_path / "vatt_bbs.ckpt"
    main(["weights", "convert", "--from", "vatt_tf", str(checkpoints["bbs"][1]), str(out), "--vocab", str(checkpoints["bbs"][1].parent / "howto100m_en.txt")])
    make_msrvtt(tmp_path / "msrvtt", MediaCache(tmp_path / "_media"))
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    transforms = ("{video: {class_path: VideoClipTransform, init_args: {crop: 16, resize: 16, value_range: [-1, 1]}}, "  # a 4 x 4 grid: tables resampled
                  f"text: {{class_path: VocabularyTokenize, init_args: {{checkpoint: {out}}}}}}}")
    main(["test", "--config", str(repo / "configs/data/msrvtt.yaml"), "--config", str(repo / "configs/benchmarks/zeroshot.yaml"),
          "--model.init_args.checkpoint", str(out), "--data.init_args.root", str(tmp_path / "msrvtt"), "--data.init_args.transforms", transforms,
          "--data.init_args.num_frames=4", "--data.init_args.eval_clips=1", "--data.init_args.num_workers=0", "--trainer.enable_progress_bar=false"])
    assert "test/text_to_video/R@1" in capsys.readouterr().out
