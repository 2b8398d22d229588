"""VATT's released TF checkpoints (BBS, MBS, LBS, VATT-MA-Medium) -> one versanet checkpoint each.

The reference is google-research ``vatt`` (TF2 / Keras). Its checkpoints are object-graph checkpoints
(``ckpt-500000.index`` + ``.data-00000-of-00001``) keyed by the Python attribute path of each variable
(``model/layer_with_weights-0/_base_layer/vid_backbone/_base/tx/layers/0/mha/q/kernel/.ATTRIBUTES/VARIABLE_VALUE``,
the paths VATT's own ``utils/train/restore.py`` rewrites its Keras names into). They are read by
those keys, not by the variables' own names: the FAC head's two batch norms of ``hid_to_va`` are both
called ``batch_norm``, so only the keys (``pre_bn``, ``bn``) tell them apart. Parameters are found by
the end of their path (:class:`~versanet.weights.layout.NamedParams`), so the checkpoint's outer
prefix does not matter.

Modality-specific models (``tx_fac``: BBS/MBS/LBS), under ``_base_layer/``:

- ``vid_backbone/_base/`` (``ViTx3D``) -> :class:`~versanet.encoders.vatt.VATTVideo`: ``voxel_to_patch``
  (Conv3D kernel ``[4, 16, 16, 3, d]``), ``pos_embedding_lookup/{temporal,vertical,horizontal}_position_embeddings``
  and its ``layernorm``, ``agg_embedding`` ``[d]``, ``tx`` (pre-LN Transformer: ``layers/N/{layer_norm, mha/{q,k,v,o},
  feed_forward/{layer_norm, mlp/{wi,wo}}}``, ``final_layer_norm``; every Dense with a bias, kernels ``[in, out]``);
- ``aud_backbone/_base/`` (``AuTx1D``) -> :class:`~versanet.encoders.vatt.VATTAudio`: ``wave_to_patch``
  (Conv1D kernel ``[128, 1, d]``), a temporal positional table, ``agg_embedding``, ``tx``;
- ``txt_backbone/`` (``LanguageModel`` + ``T5Encoder``) -> :class:`~versanet.encoders.vatt.VATTText`:
  ``embedding/embeddings`` (the frozen ``2**16 x 300`` word2vec table: it IS in the checkpoint),
  ``agg_embedding`` ``[300]``, ``pre_proj`` (no bias), ``base_lm/layers/N/self_attention/{layer_norm (RMS, weight
  only), attention/{q,k,v,o} (no bias)}``, ``relative_attention_bias/embeddings`` ``[32, heads]`` in layer 0 only,
  ``feed_forward/{layer_norm (full LayerNorm), mlp/{wi,wo}}``, ``final_layer_norm`` (RMS).

VATT-MA (``ut_fac``), under ``unified_backbone/unified_transformer/`` (``UniversalVATT``): one ``tx``
(-> ``trunks.shared``) and per modality ``raw_to_embeddings/<m>``, ``pre_proj/<m>`` (Dense + GELU, with
bias), ``pos_embedding_lookup/<m>`` (text has a 16-bucket temporal table here, no T5 bias),
``post_proj/<m>`` (Dense 1024 + GELU) and ``{vid,aud,txt}_agg_embedding``.

FAC head (``mlp_fac``, every model): ``vid_to_hid`` (Dense, no bias) -> ``hid_to_va`` (``pre_bn``, ReLU,
``dense`` without bias, ``bn``) into S_va; ``va_to_vat`` (ReLU, ``dense`` without bias, ``bn``) into S_vat;
``aud_to_va`` and ``txt_to_vat`` (Dense with bias). Batch norms: eps 1e-5, moving statistics included.

Kernels: Dense ``[in, out]`` -> ``[out, in]``; Conv ``[k..., in, out]`` -> ``[out, in, k...]``. Sizes are
read off the shapes; the per-head width is 64 in every VATT size (the video/audio kernels only give
``heads * 64``), T5's head count comes from its relative-bias table.
"""

from __future__ import annotations

import re
from pathlib import Path

from torch import Tensor

from versanet.data.transforms import VideoClipTransform
from versanet.data.vocab_text import DMVR_PUNCTUATION, VocabularyTokenize
from versanet.data.waveform import WaveformTransform
from versanet.encoders.vatt.transformer import SIZES, VATTSize
from versanet.weights.convert import Converted, converter
from versanet.weights.layout import ConversionError, NamedParams
from versanet.weights.mmv import read_vocabulary
from versanet.weights.tf_bundle import OBJECT_GRAPH_KEY, read_tf_checkpoint

D_KV = 64  # VATT's per-head width, every size
MAX_RELATIVE_DISTANCE = 64  # T5's bucketing range in VATT's config (not a variable)
# Checkpoint entries that are not part of the network: the optimizer's own state, save bookkeeping.
BOOKKEEPING = (r"^optimizer/", r"(^|/)save_counter$", r"(^|/)global_step$", r"(^|/)keras_api/metrics/")
TX = {"video": "vid_backbone/_base", "audio": "aud_backbone/_base", "text": "txt_backbone"}
UT = "unified_backbone/unified_transformer"
ENCODERS = "versanet.encoders.vatt"
# Clip geometry of VATT's pretraining: 32 frames at 10 fps (HowTo100M), audio at 48 kHz, video in [-1, 1]
FPS, AUDIO_RATE = 10.0, 48000


def read_vatt_checkpoint(src: str | Path) -> NamedParams:
    """A VATT TF checkpoint (prefix, ``.index`` file or its directory) -> its parameters keyed by object path."""
    tensors = read_tf_checkpoint(src)
    tensors.pop(OBJECT_GRAPH_KEY, None)
    return NamedParams({k: v for k, v in tensors.items() if v.dtype != object}, str(src))


# ---------------------------------------------------------------------------- layer groups
def _layer_norm(params: NamedParams, path: str, prefix: str) -> dict[str, Tensor]:
    return {f"{prefix}.weight": params.get(path, "scale"), f"{prefix}.bias": params.get(path, "offset")}


def _layers(params: NamedParams, root: str) -> int:
    """How many ``root/layers/N`` the checkpoint holds."""
    pattern = re.compile(rf"(^|/){re.escape(root)}/layers/(\d+)/")
    found = {int(m.group(2)) for k in params.params if (m := pattern.search(k))}
    if not found or found != set(range(max(found) + 1)):
        raise ConversionError(f"{params.source}: no consecutive Transformer layers under {root}/layers/ (found {sorted(found)})")
    return max(found) + 1


def transformer_state_dict(params: NamedParams, root: str) -> dict[str, Tensor]:
    """VATT's pre-LN ``TransformerEncoder`` at ``root`` (``.../tx``) -> :class:`~versanet.encoders.vatt.TransformerEncoder` keys."""
    out: dict[str, Tensor] = {}
    for i in range(_layers(params, root)):
        src, dst = f"{root}/layers/{i}", f"layers.{i}"
        out |= _layer_norm(params, f"{src}/layer_norm", f"{dst}.layer_norm")
        for name in "qkvo":
            out |= params.linear(f"{src}/mha/{name}", f"{dst}.mha.{name}")
        out |= _layer_norm(params, f"{src}/feed_forward/layer_norm", f"{dst}.feed_forward.layer_norm")
        for name in ("wi", "wo"):
            out |= params.linear(f"{src}/feed_forward/mlp/{name}", f"{dst}.feed_forward.mlp.{name}")
    return out | _layer_norm(params, f"{root}/final_layer_norm", "final_layer_norm")


def t5_state_dict(params: NamedParams, root: str) -> dict[str, Tensor]:
    """VATT's ``T5Encoder`` at ``root`` (``.../base_lm``) -> :class:`~versanet.encoders.vatt.T5Encoder` keys."""
    out: dict[str, Tensor] = {}
    for i in range(_layers(params, root)):
        src, dst = f"{root}/layers/{i}", f"layers.{i}"
        out[f"{dst}.self_attention.layer_norm.weight"] = params.get(f"{src}/self_attention/layer_norm", "weight")
        for name in "qkvo":
            out |= params.linear(f"{src}/self_attention/attention/{name}", f"{dst}.self_attention.attention.{name}", bias=False)
        out |= _layer_norm(params, f"{src}/feed_forward/layer_norm", f"{dst}.feed_forward.layer_norm")
        for name in ("wi", "wo"):
            out |= params.linear(f"{src}/feed_forward/mlp/{name}", f"{dst}.feed_forward.mlp.{name}", bias=False)
    bias = f"{root}/layers/0/self_attention/attention/relative_attention_bias"
    out["layers.0.self_attention.attention.relative_attention_bias.weight"] = params.get(bias, "embeddings")
    out["final_layer_norm.weight"] = params.get(f"{root}/final_layer_norm", "weight")
    return out


def positional_state_dict(params: NamedParams, root: str, axes: tuple[str, ...]) -> dict[str, Tensor]:
    """``SpatioTemporalEmbeddings`` / ``TemporalEmbeddings`` at ``root`` -> ``pos_embedding_lookup.*`` keys."""
    out = {
        f"pos_embedding_lookup.{axis}_position_embeddings.weight": params.get(f"{root}/{axis}_position_embeddings", "embeddings")
        for axis in axes
    }
    return out | _layer_norm(params, f"{root}/layernorm", "pos_embedding_lookup.layernorm")


def fac_head_state_dict(params: NamedParams) -> dict[str, Tensor]:
    """VATT's ``FACHead`` -> the heads of versanet's FAC graph (``heads.<edge>.proj.*``)."""
    va, vat = "heads.video->va.proj", "heads.video@va->vat.proj"
    out = params.linear("vid_to_hid", f"{va}.0", bias=False)
    out |= params.batch_norm("hid_to_va/pre_bn", f"{va}.1")
    out |= params.linear("hid_to_va/dense", f"{va}.3", bias=False)
    out |= params.batch_norm("hid_to_va/bn", f"{va}.4")
    out |= params.linear("va_to_vat/dense", f"{vat}.1", bias=False)
    out |= params.batch_norm("va_to_vat/bn", f"{vat}.2")
    out |= params.linear("aud_to_va", "heads.audio->va.proj")
    return out | params.linear("txt_to_vat", "heads.text->vat.proj")


def _tokeniser(params: NamedParams, path: str, prefix: str) -> dict[str, Tensor]:
    return {f"{prefix}.weight": params.conv(path), f"{prefix}.bias": params.get(path, "b")}


def tx_state_dict(params: NamedParams) -> dict[str, Tensor]:
    """Every parameter of a converted modality-specific VATT (BBS/MBS/LBS) from its checkpoint."""
    out: dict[str, Tensor] = {}
    for modality, tokeniser, axes in (("video", "voxel_to_patch", ("temporal", "vertical", "horizontal")), ("audio", "wave_to_patch", ("temporal",))):
        root = TX[modality]
        tower = _tokeniser(params, f"{root}/{tokeniser}", tokeniser)
        tower |= positional_state_dict(params, f"{root}/pos_embedding_lookup", axes)
        tower["agg_embedding"] = params.get(root, "agg_embedding")
        for proj in ("pre_proj", "post_proj"):  # only in towers fine-tuned from VATT-MA
            if params.has(f"{root}/{proj}", "w"):
                tower |= params.linear(f"{root}/{proj}", proj)
        tower |= {f"trunk.{k}": v for k, v in transformer_state_dict(params, f"{root}/tx").items()}
        out |= {f"encoders.{modality}.{k}": v for k, v in tower.items()}
    text = TX["text"]
    tower = {"table": params.get(f"{text}/embedding", "embeddings"), "agg_embedding": params.get(text, "agg_embedding")}
    tower |= params.linear(f"{text}/pre_proj", "pre_proj", bias=False)
    if params.has(f"{text}/post_proj", "w"):
        tower |= params.linear(f"{text}/post_proj", "post_proj", bias=False)
    tower |= {f"trunk.{k}": v for k, v in t5_state_dict(params, f"{text}/base_lm").items()}
    return out | {f"encoders.text.{k}": v for k, v in tower.items()} | fac_head_state_dict(params)


def ut_state_dict(params: NamedParams) -> dict[str, Tensor]:
    """Every parameter of a converted VATT-MA from its checkpoint (the shared Transformer once, as ``trunks.shared``)."""
    out = {f"trunks.shared.{k}": v for k, v in transformer_state_dict(params, f"{UT}/tx").items()}
    out |= _tokeniser(params, f"{UT}/raw_to_embeddings/video", "encoders.video.voxel_to_patch")
    out |= _tokeniser(params, f"{UT}/raw_to_embeddings/audio", "encoders.audio.wave_to_patch")
    out["encoders.text.table"] = params.get(f"{UT}/raw_to_embeddings/text", "embeddings")
    for modality, short, axes in (("video", "vid", ("temporal", "vertical", "horizontal")), ("audio", "aud", ("temporal",)), ("text", "txt", ("temporal",))):
        enc = f"encoders.{modality}"
        out |= {f"{enc}.{k}": v for k, v in positional_state_dict(params, f"{UT}/pos_embedding_lookup/{modality}", axes).items()}
        out |= params.linear(f"{UT}/pre_proj/{modality}", f"{enc}.pre_proj")
        out |= params.linear(f"{UT}/post_proj/{modality}", f"{enc}.post_proj")
        out[f"{enc}.agg_embedding"] = params.get(UT, f"{short}_agg_embedding")
    return out | fac_head_state_dict(params)


# ---------------------------------------------------------------------------- the model they form
def _size_args(params: NamedParams, root: str, attention: str, num_heads: int | None = None) -> dict:
    """``size`` (a preset's name when the shapes are one) or every size field, read off the Transformer at ``root``."""
    d_model, inner = params.shape(f"{root}/layers/0/{attention}/q", "w")
    heads = num_heads if num_heads is not None else inner // D_KV
    if heads < 1 or inner % heads:
        raise ConversionError(f"{params.source}: {root} has {inner}-wide attention, not a whole number of {D_KV}-d heads")
    size = VATTSize(_layers(params, root), d_model, params.shape(f"{root}/layers/0/feed_forward/mlp/wi", "w")[-1], heads, inner // heads)
    for name, preset in SIZES.items():
        if preset == size and name != "tiny":
            return {"size": name}
    return {"size": "tiny", "num_layers": size.num_layers, "d_model": size.d_model, "d_ff": size.d_ff, "num_heads": size.num_heads, "d_kv": size.d_kv}


def _media_args(params: NamedParams, tokeniser: str, positional: str, axes: tuple[str, ...]) -> dict:
    kernel = params.shape(tokeniser, "w")
    buckets = [params.shape(f"{positional}/{axis}_position_embeddings", "embeddings")[0] for axis in axes]
    patch = list(kernel[:-2]) if len(kernel) == 5 else kernel[0]
    return {"patch_size": patch, "max_buckets": buckets if len(buckets) > 1 else buckets[0], "droptoken_rate": 0.5}


def fac_graph_config(params: NamedParams) -> dict:
    """VATT's FAC graph (the heads' widths read off the checkpoint), as in ``configs/vatt/*.yaml``."""
    hidden, va = params.shape("vid_to_hid", "w")[-1], params.shape("hid_to_va/dense", "w")[-1]
    vat = params.shape("va_to_vat/dense", "w")[-1]
    video_head = {"first_bias": False} | ({} if hidden == va else {"hidden_dim": hidden})
    heads, losses = "versanet.heads.projection", "versanet.losses.nce"
    return {
        "class_path": "versanet.graph.ModalityGraph",
        "init_args": {
            "name": "fac",
            "spaces": {"va": va, "vat": vat},
            "edges": [
                {"source": "video", "space": "va", "head": {"class_path": f"{heads}.MLPBNHead", "init_args": video_head}},
                {"source": "video@va", "space": "vat", "head": {"class_path": f"{heads}.ReLULinearBNHead", "init_args": {"bias": False}}},
                {"source": "audio", "space": "va"},
                {"source": "text", "space": "vat"},
            ],
            "terms": [
                {"space": "va", "a": "video", "b": "audio", "loss": {"class_path": f"{losses}.NCELoss", "init_args": {"temperature": 0.07}}, "weight": 1.0},
                {"space": "vat", "a": "video", "b": "text", "loss": {"class_path": f"{losses}.MILNCELoss", "init_args": {"temperature": 0.07}}, "weight": 1.0},
            ],
        },
    }


def vatt_model_config(params: NamedParams) -> dict:
    """``PretrainModule`` init args of the converted model (VATT-MA when the checkpoint has a unified backbone)."""
    unified = params.has(f"{UT}/tx/layers/0/mha/q", "w")
    if unified:
        size = _size_args(params, f"{UT}/tx", "mha")
        shared = {m: {"trunk": "shared", "post_projection": params.shape(f"{UT}/post_proj/{m}", "w")[-1]} for m in ("video", "audio", "text")}
        video = _media_args(params, f"{UT}/raw_to_embeddings/video", f"{UT}/pos_embedding_lookup/video", ("temporal", "vertical", "horizontal"))
        audio = _media_args(params, f"{UT}/raw_to_embeddings/audio", f"{UT}/pos_embedding_lookup/audio", ("temporal",))
        table = params.shape(f"{UT}/raw_to_embeddings/text", "embeddings")
        text = {"max_tokens": params.shape(f"{UT}/pos_embedding_lookup/text/temporal_position_embeddings", "embeddings")[0]}
        encoders = {
            "video": size | shared["video"] | video | {"pre_projection": True},
            "audio": size | shared["audio"] | audio | {"pre_projection": True},
            "text": size | shared["text"] | text | {"vocab_size": table[0], "embed_dim": table[1]},
        }
        trunks = {"shared": {"class_path": f"{ENCODERS}.VATTTrunk", "init_args": size}}
    else:
        video = _size_args(params, f"{TX['video']}/tx", "mha")
        video |= _media_args(params, f"{TX['video']}/voxel_to_patch", f"{TX['video']}/pos_embedding_lookup", ("temporal", "vertical", "horizontal"))
        audio = _size_args(params, f"{TX['audio']}/tx", "mha")
        audio |= _media_args(params, f"{TX['audio']}/wave_to_patch", f"{TX['audio']}/pos_embedding_lookup", ("temporal",))
        for args, root in ((video, TX["video"]), (audio, TX["audio"])):
            if params.has(f"{root}/pre_proj", "w"):
                args["pre_projection"] = True
            if params.has(f"{root}/post_proj", "w"):
                args["post_projection"] = params.shape(f"{root}/post_proj", "w")[-1]
        bias = f"{TX['text']}/base_lm/layers/0/self_attention/attention/relative_attention_bias"
        buckets, heads = params.shape(bias, "embeddings")
        table = params.shape(f"{TX['text']}/embedding", "embeddings")
        text = _size_args(params, f"{TX['text']}/base_lm", "self_attention/attention", heads)
        text |= {"vocab_size": table[0], "embed_dim": table[1], "num_relative_buckets": buckets, "max_relative_distance": MAX_RELATIVE_DISTANCE}
        if params.has(f"{TX['text']}/post_proj", "w"):
            text["post_projection"] = params.shape(f"{TX['text']}/post_proj", "w")[-1]
        encoders, trunks = {"video": video, "audio": audio, "text": text}, {}
    names = {"video": "VATTVideo", "audio": "VATTAudio", "text": "VATTText"}
    config = {
        "encoders": {m: {"class_path": f"{ENCODERS}.{names[m]}", "init_args": args} for m, args in encoders.items()},
        "graph": fac_graph_config(params),
    }
    return config | ({"trunks": trunks} if trunks else {})


# ---------------------------------------------------------------------------- the converter
@converter("vatt_tf")
def convert_vatt_tf(src: Path, vocab: str | None = None) -> Converted:
    """A VATT pretraining checkpoint (``ckpt-500000`` prefix, its ``.index`` or its directory) -> the converted model.

    ``vocab``: VATT's word list (``howto100m_en.txt`` from its ``misc_data.tgz``, dmvr's format: one word
    per line, ``<pad>`` at id 0, an ``<unk>``); default: ``howto100m_en.txt`` beside the checkpoint.
    """
    src = Path(src)
    vocab_path = Path(vocab) if vocab is not None else (src if src.is_dir() else src.parent) / "howto100m_en.txt"
    if not vocab_path.is_file():
        raise ConversionError(
            f"vatt_tf: the text vocabulary {vocab_path} is missing; give it with --vocab FILE "
            "(howto100m_en.txt from VATT's misc_data.tgz)"
        )
    params = read_vatt_checkpoint(src)
    config = vatt_model_config(params)
    state_dict = ut_state_dict(params) if "trunks" in config else tx_state_dict(params)
    unused = params.unused(BOOKKEEPING)
    if unused:
        raise ConversionError(f"{params.source} has variables the VATT model does not: {', '.join(unused[:6])}")
    words = read_vocabulary(vocab_path)
    rows = state_dict["encoders.text.table"].shape[0]
    if len(words) > rows:
        raise ConversionError(f"{vocab_path} has {len(words)} ids but the checkpoint's word table only {rows} rows")
    video, audio = config["encoders"]["video"]["init_args"], config["encoders"]["audio"]["init_args"]
    frames = video["max_buckets"][0] * video["patch_size"][0]
    crop = video["max_buckets"][1] * video["patch_size"][1]
    samples = audio["max_buckets"] * audio["patch_size"]
    max_tokens = config["encoders"]["text"]["init_args"].get("max_tokens", 16)
    transforms = {
        "video": VideoClipTransform(crop=crop, resize=crop, value_range=(-1.0, 1.0)),
        "audio": WaveformTransform(sample_rate=AUDIO_RATE, num_samples=samples),
        "text": VocabularyTokenize(num_candidates=1, max_tokens=max_tokens, pattern=r"\S+", first_id=0, unknown="id",
                                   unknown_id=words.index("<unk>"), delete=DMVR_PUNCTUATION).set_words(words),
    }
    extra = {
        "input": {"num_frames": frames, "fps": FPS, "size": crop, "audio_rate": AUDIO_RATE, "audio_samples": samples, "range": [-1.0, 1.0]},
        "clip": {"num_frames": frames, "fps": FPS, "audio_rate": AUDIO_RATE},
    }
    return Converted(config, state_dict, transforms, extra)
