"""The published checkpoints versanet converts: where they are, how to check them, what they become.

``versanet weights list`` prints this table; ``versanet weights convert`` looks the given file up in
it (by its SHA-256 where one is recorded) and records the hash in the converted checkpoint.

Hashes: the publishers give none for these files, and nothing can be downloaded where versanet is
tested, so no SHA-256 is recorded yet (``sha256=None``). Until one is, a file is checked by its
layout instead: the converter requires every parameter the reference code defines, with exactly the
reference shapes, and refuses anything else; the hash it prints can be added here with
``PublishedWeights(sha256=...)`` once a download has been checked against the paper's numbers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class PublishedWeights:
    """One published checkpoint.

    ``name``: versanet's name for it; ``format``: the converter (``versanet weights convert --from``);
    ``urls``: the files as published (all needed); ``sha256``: file name -> expected hash (None: not
    known, see the module docstring); ``model``: what it converts to; ``paper``: the numbers the paper
    reports for it.
    """

    name: str
    format: str
    urls: tuple[str, ...]
    model: str
    paper: dict[str, float] = field(default_factory=dict)
    sha256: dict[str, str] | None = None
    note: str = ""


_MMV_PKL = "https://storage.googleapis.com/deepmind-research-mmv/"
_VATT = "https://storage.cloud.google.com/tf_model_garden/vision/vatt/pretrain/"
_VATT_MISC = "https://storage.cloud.google.com/tf_model_garden/vision/vatt/misc_data.tgz"
PUBLISHED: tuple[PublishedWeights, ...] = (
    PublishedWeights(
        "milnce_s3d", "milnce_s3d",
        ("https://www.rocq.inria.fr/cluster-willow/amiech/howto100m/s3d_howto100m.pth",
         "https://www.rocq.inria.fr/cluster-willow/amiech/howto100m/s3d_dict.npy"),
        "S3DG(space_to_depth, tf_fixed) + word2vec text (66,250 x 300 table, max over 16 positions), linear heads into a 512-d space",
        {"msrvtt_zeroshot_R@10": 32.4, "msrvtt_zeroshot_MedR": 29.5, "youcook2_zeroshot_R@10": 51.2, "youcook2_zeroshot_MedR": 10.0},
        note="MIL-NCE (Miech et al., CVPR 2020), PyTorch port; similarity is the raw dot product (no L2 norm) in the reference",
    ),
    PublishedWeights(
        "mmv_s3d", "mmv_tfhub", ("https://tfhub.dev/deepmind/mmv/s3d/1",),
        "S3DG(space_to_depth, tf_same) + AudioResNet50(tf_same) on dmvr log-mel + word2vec text, FAC heads",
        {"ucf101_linear": 89.6, "ucf101_finetune": 92.5, "hmdb51_linear": 62.6, "hmdb51_finetune": 69.6, "esc50_linear": 87.7, "audioset_mlp_mAP": 30.3, "k600_linear": 68.0},
        note=f"also as a JAX checkpoint {_MMV_PKL}mmv_s3d.pkl (--from mmv_haiku_npz after flattening)",
    ),
    PublishedWeights(
        "mmv_tsm_resnet50", "mmv_tfhub", ("https://tfhub.dev/deepmind/mmv/tsm-resnet50/1",),
        "TSMResNet50(tf_same) + AudioResNet50(tf_same) on dmvr log-mel + word2vec text, FAC heads",
        {"ucf101_linear": 91.5, "ucf101_finetune": 94.9, "hmdb51_linear": 66.7, "hmdb51_finetune": 73.2, "esc50_linear": 86.4, "audioset_mlp_mAP": 30.6, "k600_linear": 67.8},
        note=f"also as {_MMV_PKL}mmv_tsm_resnet_x1.pkl",
    ),
    PublishedWeights(
        "mmv_tsm_resnet50x2", "mmv_tfhub", ("https://tfhub.dev/deepmind/mmv/tsm-resnet50x2/1",),
        "TSMResNet50x2(tf_same) + AudioResNet50(tf_same) on dmvr log-mel + word2vec text, FAC heads",
        {"ucf101_linear": 91.8, "ucf101_finetune": 95.2, "hmdb51_linear": 67.1, "hmdb51_finetune": 75.0, "esc50_linear": 88.9, "audioset_mlp_mAP": 30.9, "k600_linear": 70.5},
        note=f"also as {_MMV_PKL}mmv_tsm_resnet_x2.pkl",
    ),
    *(
        PublishedWeights(
            name, "vatt_tf", (f"{_VATT}{folder}/ckpt-500000.index", f"{_VATT}{folder}/ckpt-500000.data-00000-of-00001", _VATT_MISC),
            model, paper, note="TF2 checkpoint prefix ckpt-500000; --vocab howto100m_en.txt from misc_data.tgz",
        )
        for name, folder, model, paper in (
            ("vatt_bbs", "tx_fac_bbs", "VATTVideo(base) + VATTAudio(base) + VATTText(small, T5) on raw video/waveform/word2vec, VATT's FAC heads",
             {"k400_finetune_top1": 79.6, "audioset_finetune_mAP": 39.4}),
            ("vatt_mbs", "tx_fac_mbs", "VATTVideo(medium) + VATTAudio(base) + VATTText(small, T5), VATT's FAC heads",
             {"k400_finetune_top1": 81.1, "k600_finetune_top1": 82.4}),
            ("vatt_lbs", "tx_fac_lbs", "VATTVideo(large) + VATTAudio(base) + VATTText(small, T5), VATT's FAC heads",
             {"k400_finetune_top1": 82.1, "k600_finetune_top1": 83.6, "k700_finetune_top1": 72.7}),
            ("vatt_ma_medium", "ut_fac_medium", "VATT-MA: one shared VATTTrunk(medium) for video, audio and text, VATT's FAC heads",
             {"k400_finetune_top1": 79.9, "audioset_finetune_mAP": 39.3}),
        )
    ),
)


def find(name: str) -> PublishedWeights:
    """The entry called ``name``; a KeyError listing the known names otherwise."""
    for entry in PUBLISHED:
        if entry.name == name:
            return entry
    raise KeyError(f"no published checkpoint called {name!r}; known: {', '.join(e.name for e in PUBLISHED)}")


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file, or of a directory's files (sorted relative paths and contents: a SavedModel)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def identify(path: str | Path, fmt: str) -> tuple[PublishedWeights | None, str]:
    """``(the registry entry whose recorded hash matches, the file's hash)``; the entry is None when none matches.

    Raises ``ValueError`` when an entry of this format records a hash for a file of this name and it differs.
    """
    path = Path(path)
    digest = sha256_of(path)
    for entry in PUBLISHED:
        if entry.format != fmt or not entry.sha256:
            continue
        expected = entry.sha256.get(path.name)
        if expected == digest:
            return entry, digest
        if expected is not None:
            raise ValueError(f"{path}: SHA-256 {digest} is not the published {entry.name}'s {expected} (corrupt or different file)")
    return None, digest


def table() -> str:
    """The registry as text (what ``versanet weights list`` prints)."""
    lines = []
    for e in PUBLISHED:
        lines.append(f"{e.name}  (--from {e.format})")
        lines.append(f"  model:  {e.model}")
        for url in e.urls:
            lines.append(f"  source: {url}")
        lines.append(f"  sha256: {', '.join(f'{k}={v}' for k, v in e.sha256.items()) if e.sha256 else 'not published; checked by layout (every reference parameter, exact shapes)'}")
        lines.append("  paper:  " + ", ".join(f"{k} {v}" for k, v in e.paper.items()))
        if e.note:
            lines.append(f"  note:   {e.note}")
    return "\n".join(lines)
