"""MIL-NCE's released S3D text-video model (``s3d_howto100m.pth`` + ``s3d_dict.npy``) -> one versanet checkpoint.

The reference is antoine77340/S3D_HowTo100M's ``S3D`` (the TF-Hub model ported to PyTorch):

- video: S3D-G with the space-to-depth stem, max-pools padded by the static ``k - s`` rule with
  ``ceil_mode`` (``S3DG(stem="space_to_depth", padding="tf_fixed")``), mean over T, H, W -> 1024
  (``mixed_5c``), then ``fc`` 1024 -> 512 (the video head);
- text: lowercase, ``[\\w']+`` words, known words only (``s3d_dict.npy`` word i has id i + 1, 0 pads),
  16 ids; ``word_embd`` (66,250 x 300) -> ``fc1`` 300 -> 2048 -> ReLU -> max over ALL 16 positions
  (padding included) -> ``fc2`` 2048 -> 512 (the text head);
- input: RGB in [0, 1], 32 frames at 10 fps (3.2 s), 224 x 224 as trained.

The reference scores text against video with the raw dot product of the 512-d embeddings; versanet's
retrieval benchmark ranks by cosine similarity (both embeddings L2-normalised), which ranks videos for
a text query differently when video norms differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from versanet.checkpoint import safe_load
from versanet.data.transforms import VideoClipTransform
from versanet.data.vocab_text import VocabularyTokenize
from versanet.encoders.mmv.s3dg import s3dg_state_dict_from_milnce
from versanet.encoders.mmv.word2vec_text import word2vec_text_state_dict_from_milnce
from versanet.weights.convert import Converted, converter
from versanet.weights.layout import ConversionError

MAX_WORDS = 16


def read_word_list(path: str | Path) -> list[str]:
    """``s3d_dict.npy`` (a numpy array of words, read without pickle) -> list of str."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MIL-NCE word dictionary not found: {path} (s3d_dict.npy; give it with --vocab)")
    try:
        words = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ConversionError(f"{path}: not a plain numpy array of words ({err}); versanet never unpickles files") from None
    if words.ndim != 1 or words.dtype.kind not in "US":
        raise ConversionError(f"{path}: expected a 1-D array of words, got dtype {words.dtype} and shape {words.shape}")
    return [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in words.tolist()]


def milnce_model_config(state: dict) -> dict:
    """``PretrainModule`` init args of the converted model (video and text into one joint space; sizes read off ``state``)."""
    head = {"class_path": "versanet.heads.projection.LinearHead"}
    width = state["conv1.conv1.weight"].shape[0] / 64
    vocab_size, embed_dim = state["text_module.word_embd.weight"].shape
    return {
        "encoders": {
            "video": {
                "class_path": "versanet.encoders.mmv.s3dg.S3DG",
                "init_args": {"stem": "space_to_depth", "padding": "tf_fixed"} | ({} if width == 1 else {"width_multiplier": width}),
            },
            "text": {
                "class_path": "versanet.encoders.mmv.word2vec_text.Word2VecTextEncoder",
                "init_args": {"vocab_size": int(vocab_size), "embed_dim": int(embed_dim), "out_dim": int(state["text_module.fc1.weight"].shape[0]), "pool_padding": True},
            },
        },
        "graph": {
            "class_path": "versanet.graph.ModalityGraph",
            "init_args": {
                "name": "milnce",
                "spaces": {"vt": int(state["fc.weight"].shape[0])},
                "edges": [{"source": "video", "space": "vt", "head": head}, {"source": "text", "space": "vt", "head": head}],
                "terms": [{"space": "vt", "a": "video", "b": "text", "loss": {"class_path": "versanet.losses.nce.MILNCELoss"}}],
                # MIL-NCE's evaluation ranks by the raw dot product of the unnormalised embeddings
                "retrieval": [{"space": "vt", "query": "text", "gallery": ["video"], "fusion": "sum_dot"}],
            },
        },
    }


@converter("milnce_s3d")
def convert_milnce_s3d(src: Path, vocab: str | None = None) -> Converted:
    """``s3d_howto100m.pth`` (and ``s3d_dict.npy``, default beside it) -> the converted model (see the module docstring)."""
    state = safe_load(src, "MIL-NCE checkpoint")
    if not isinstance(state, dict) or "text_module.word_embd.weight" not in state or "fc.weight" not in state:
        raise ConversionError(f"{src} is not MIL-NCE's S3D state dict (no text_module.word_embd.weight / fc.weight)")
    words = read_word_list(vocab or Path(src).with_name("s3d_dict.npy"))
    table = state["text_module.word_embd.weight"]
    if len(words) + 1 > table.shape[0]:
        raise ConversionError(f"the dictionary has {len(words)} words but the embedding table only {table.shape[0]} rows (ids 1..{len(words)})")
    try:
        video = s3dg_state_dict_from_milnce(state)
        text = word2vec_text_state_dict_from_milnce(state)
    except KeyError as err:
        raise ConversionError(f"{src}: MIL-NCE parameter {err} is missing") from None
    state_dict = {f"encoders.video.{k}": v for k, v in video.items()}
    state_dict |= {f"encoders.text.{k}": v for k, v in text.items()}
    state_dict |= {"heads.video->vt.proj.weight": state["fc.weight"], "heads.video->vt.proj.bias": state["fc.bias"]}
    state_dict |= {"heads.text->vt.proj.weight": state["text_module.fc2.weight"], "heads.text->vt.proj.bias": state["text_module.fc2.bias"]}
    read = {id(v) for v in state_dict.values()}
    unused = sorted(k for k, v in state.items() if id(v) not in read)
    if unused:
        raise ConversionError(f"{src} has parameters the MIL-NCE S3D does not: {', '.join(unused[:6])}")
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    transforms = {
        "video": VideoClipTransform(crop=224, resize=224),
        "text": VocabularyTokenize(num_candidates=1, max_tokens=MAX_WORDS).set_words(words),
    }
    extra = {"input": {"num_frames": 32, "fps": 10.0, "size": 224, "range": [0.0, 1.0]}, "clip": {"num_frames": 32, "fps": 10.0}}
    return Converted(milnce_model_config(state), state_dict, transforms, extra)

