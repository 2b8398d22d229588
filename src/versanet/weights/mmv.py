"""MMV's released FAC models (S3D-G, TSM-ResNet50, TSM-ResNet50x2) -> one versanet checkpoint each.

The reference is deepmind-research ``mmv/models`` (Haiku): ``AudioTextVideoEmbedding`` with
``mm_embedding_graph="fac_relu"``, BN eps 1e-5, and its modules' names, which the TF-Hub export keeps:

- video: ``visual_module/S3D`` (space-to-depth stem, TF "SAME") or ``visual_module/TSMResNetV2``
  (TF "SAME", MMV's shift channel order, converted);
- audio: ``audio_module/res_net_v2`` (ResNet-v2-50 on dmvr's log-mel ``[B, T, 80, 1]``, TF "SAME");
- text: ``text_module``: ``embed/embeddings`` [V, 300] -> ``text_conv1`` (width-1 Conv1D, 300 -> 2048)
  -> ReLU -> max over ALL 16 positions (padding included);
- heads: ``vid2audio_embd`` (Linear+BN+ReLU+Linear(no bias)+BN into S_va, 512), ``vis_embd``
  (ReLU+Linear+BN, S_va -> S_vat, 256), ``audio_embd`` (Linear, audio -> S_va), ``txt_embd``
  (Linear, text -> S_vat): versanet's FAC graph with its default heads.

Sources: ``mmv_tfhub`` reads a TF-Hub SavedModel directory (or any TF checkpoint of the same
variables) without TensorFlow (:mod:`versanet.weights.tf_bundle`); ``mmv_haiku_npz`` reads the JAX
checkpoints (``mmv_*.pkl``) once flattened to an ``.npz`` of ``module/path/param`` arrays (docs/weights.md
shows the three lines, run where Haiku is installed; versanet itself never unpickles). Parameters are
found by the end of their path (:class:`~versanet.weights.layout.NamedParams`), so both read the same.

Text front end: dmvr's ``WordTokenizer`` (punctuation deleted, lowercase, whitespace split, unknown
words -> ``<unk>``, 16 ids, ``<pad>`` = 0), from the vocabulary file (one word per line, or ``idx word``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np

from versanet.data.dmvr_audio import DmvrLogMel
from versanet.data.transforms import VideoClipTransform
from versanet.data.vocab_text import DMVR_PUNCTUATION, VocabularyTokenize
from versanet.encoders.mmv.audio_resnet import audio_resnet_state_dict_from_mmv
from versanet.encoders.mmv.s3dg import s3dg_state_dict_from_mmv
from versanet.encoders.mmv.tsm_resnet import tsm_state_dict_from_mmv
from versanet.encoders.mmv.word2vec_text import word2vec_text_state_dict_from_mmv
from versanet.weights.convert import Converted, converter
from versanet.weights.layout import ConversionError, NamedParams
from versanet.weights.tf_bundle import read_tf_variables

RESNET50 = {"layers": [3, 4, 6, 3], "channels": [256, 512, 1024, 2048], "stem_chs": 64}
RESNET50X2 = {"layers": [3, 4, 6, 3], "channels": [512, 1024, 2048, 4096], "stem_chs": 128}
# Parameters of the reference that the FAC model at evaluation does not use (heads of unused edges, EMA bookkeeping).
UNUSED = (r"audio2txt_embd/", r"txt2audio_embd/", r"/(hidden|counter)$", r"^global_step$")


def resnet_shape(params: NamedParams, stem: str, unit: str) -> dict:
    """``layers``, ``channels`` and ``stem_chs`` of an MMV ResNet-v2, read off its parameters."""
    layers, channels = [], []
    for i in range(4):
        blocks = {int(m.group(1)) for k in params.params if (m := re.search(rf"{unit}_{i}/block_(\d+)/conv_0/", k))}
        if not blocks:
            raise ConversionError(f"{params.source}: no blocks of {unit}_{i}")
        layers.append(max(blocks) + 1)
        channels.append(params.shape(f"{unit}_{i}/block_0/conv_2", "w")[-1])
    return {"layers": layers, "channels": channels, "stem_chs": params.shape(stem, "w")[-1]}


def video_encoder(params: NamedParams) -> tuple[str, dict]:
    """``(class_path, init_args)`` of the video network the parameters hold (S3D-G or TSM, sizes read off them)."""
    if params.has("Conv2d_1a_7x7/conv_3d", "w"):
        width = params.shape("Conv2d_1a_7x7/conv_3d", "w")[-1] / 64
        args = {"stem": "space_to_depth", "padding": "tf_same"} | ({} if width == 1 else {"width_multiplier": width})
        return "versanet.encoders.mmv.s3dg.S3DG", args
    shape = resnet_shape(params, "tsm_resnet_stem", "tsm_resnet_unit")
    if shape == RESNET50:
        return "versanet.encoders.mmv.tsm_resnet.TSMResNet50", {"padding": "tf_same"}
    if shape == RESNET50X2:
        return "versanet.encoders.mmv.tsm_resnet.TSMResNet50x2", {"padding": "tf_same"}
    return "versanet.encoders.mmv.tsm_resnet.TSMResNet", {"padding": "tf_same", **shape}


def mmv_model_config(params: NamedParams, vocab_size: int) -> dict:
    """``PretrainModule`` init args of the converted FAC model (network sizes read off the parameters)."""
    video_class, video_args = video_encoder(params)
    audio = resnet_shape(params, "res_net_v2/initial_conv", "block_group")
    va, vat = params.shape("vid2audio_embd/final_projection", "w")[-1], params.shape("vis_embd/final_projection", "w")[-1]
    return {
        "encoders": {
            "video": {"class_path": video_class, "init_args": video_args},
            "audio": {"class_path": "versanet.encoders.mmv.audio_resnet.AudioResNet50", "init_args": {"padding": "tf_same"} | ({} if audio == RESNET50 else audio)},
            "text": {
                "class_path": "versanet.encoders.mmv.word2vec_text.Word2VecTextEncoder",
                "init_args": {
                    "vocab_size": vocab_size, "embed_dim": params.shape("text_module/embed", "embeddings")[-1],
                    "out_dim": params.shape("text_module/text_conv1", "w")[-1], "pool_padding": True,
                },
            },
        },
        "graph": {"class_path": "versanet.graph.FAC", "init_args": {"va_dim": va, "vat_dim": vat}},
    }


def mmv_state_dict(params: NamedParams) -> dict:
    """Every parameter of the converted FAC model from MMV's named parameters (Haiku paths or their TF export)."""
    if params.has("Conv2d_1a_7x7/conv_3d", "w"):
        video = s3dg_state_dict_from_mmv(params)
    else:
        layers = resnet_shape(params, "tsm_resnet_stem", "tsm_resnet_unit")["layers"]
        video = tsm_state_dict_from_mmv(params, layers)
    out = {f"encoders.video.{k}": v for k, v in video.items()}
    audio_layers = resnet_shape(params, "res_net_v2/initial_conv", "block_group")["layers"]
    out |= {f"encoders.audio.{k}": v for k, v in audio_resnet_state_dict_from_mmv(params, audio_layers).items()}
    out |= {f"encoders.text.{k}": v for k, v in word2vec_text_state_dict_from_mmv(params).items()}
    va, vat = "heads.video->va.proj", "heads.video@va->vat.proj"
    out |= params.linear("vid2audio_embd/final_projection_inner", f"{va}.0")
    out |= params.batch_norm("vid2audio_embd/batch_norm", f"{va}.1")
    out |= params.linear("vid2audio_embd/final_projection", f"{va}.3", bias=False)
    out |= params.batch_norm("vid2audio_embd/batch_norm_1", f"{va}.4")
    out |= params.linear("vis_embd/final_projection", f"{vat}.1")
    out |= params.batch_norm("vis_embd/batch_norm", f"{vat}.2")
    out |= params.linear("audio_embd/final_projection", "heads.audio->va.proj")
    out |= params.linear("txt_embd/final_projection", "heads.text->vat.proj")
    unused = params.unused(UNUSED)
    if unused:
        raise ConversionError(f"{params.source} has parameters the MMV model does not: {', '.join(unused[:6])}")
    return out


def read_vocabulary(path: str | Path) -> list[str]:
    """A dmvr vocabulary file (``word`` or ``idx word`` per line) -> words by id; ``<pad>`` must be id 0."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MMV vocabulary not found: {path}")
    by_id: dict[int, str] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        parts = line.strip().split(" ")
        if parts == [""]:
            continue
        if len(parts) not in (1, 2):
            raise ConversionError(f"{path}:{i + 1}: expected 'word' or 'idx word', got {line!r}")
        idx, word = (int(parts[0]), parts[1]) if len(parts) == 2 else (i, parts[0])
        by_id[idx] = word
    words = [by_id.get(i, "") for i in range(max(by_id) + 1)] if by_id else []
    if not words or words[0] != "<pad>" or "<unk>" not in words:
        raise ConversionError(f"{path}: a dmvr vocabulary needs '<pad>' at id 0 and an '<unk>' word")
    return words


def _vocab_path(src: Path, vocab: str | None) -> Path:
    if vocab is not None:
        return Path(vocab)
    found = sorted((src / "assets").glob("*.txt")) if src.is_dir() else []
    if len(found) != 1:
        raise ConversionError(
            f"{src}: give the text vocabulary with --vocab FILE (found {len(found)} .txt files under assets/, need exactly one)"
        )
    return found[0]


def _convert(params: NamedParams, vocab_path: Path) -> Converted:
    words = read_vocabulary(vocab_path)
    config = mmv_model_config(params, 0)
    state_dict = mmv_state_dict(params)
    table_rows = state_dict["encoders.text.table"].shape[0]
    if len(words) > table_rows:
        raise ConversionError(f"{vocab_path} has {len(words)} ids but the embedding table only {table_rows} rows")
    text = VocabularyTokenize(num_candidates=1, max_tokens=16, pattern=r"\S+", first_id=0, unknown="id",
                              unknown_id=words.index("<unk>"), delete=DMVR_PUNCTUATION).set_words(words)
    transforms = {"video": VideoClipTransform(crop=200, resize=224), "audio": DmvrLogMel(), "text": text}
    config["encoders"]["text"]["init_args"]["vocab_size"] = table_rows
    extra = {"input": {"num_frames": 32, "fps": 10.0, "size": 200, "audio_rate": 48000, "audio_seconds": 3.2, "range": [0.0, 1.0]},
             "clip": {"num_frames": 32, "fps": 10.0, "audio_rate": 48000}}
    return Converted(config, state_dict, transforms, extra)


@converter("mmv_tfhub")
def convert_mmv_tfhub(src: Path, vocab: str | None = None) -> Converted:
    """An MMV TF-Hub SavedModel directory (or TF checkpoint prefix) -> the converted FAC model (backbone read off it)."""
    params = NamedParams(read_tf_variables(src), str(src))
    return _convert(params, _vocab_path(Path(src), vocab))


@converter("mmv_haiku_npz")
def convert_mmv_haiku_npz(src: Path, vocab: str | None = None) -> Converted:
    """MMV's Haiku params and state flattened to ``.npz`` (keys ``module/path/param``) -> the converted FAC model."""
    if vocab is None:
        raise ConversionError("mmv_haiku_npz: give the text vocabulary with --vocab FILE")
    try:
        with np.load(src, allow_pickle=False) as npz:
            arrays: Mapping[str, np.ndarray] = {k: npz[k] for k in npz.files}
    except (ValueError, OSError) as err:  # e.g. an object array: refused, never unpickled
        raise ConversionError(f"{src}: not a numpy .npz of plain arrays ({err}); versanet never unpickles files") from None
    return _convert(NamedParams(arrays, str(src)), Path(vocab))
