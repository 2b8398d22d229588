"""Checkpoints are self-contained and safe: the network, its data transforms and vocabulary, loaded weights-only."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from versanet.checkpoint import CheckpointError, build_transforms, export_transforms, load_pretrained, safe_load, save_pretrained
from versanet.cli import main
from versanet.data.transforms import LogMelTransform, TokenizeText

REPO = Path(__file__).resolve().parents[1]


def test_a_fit_checkpoint_carries_its_transforms_and_vocabulary(toy_root: Path, tmp_path: Path) -> None:
    from test_cli import tiny_run_args

    main(["fit", "--config", str(REPO / "configs/quickstart/fac.yaml"), *tiny_run_args(toy_root, tmp_path, steps=2)])
    ckpt = next(tmp_path.rglob("*.ckpt"))
    model = load_pretrained(ckpt)
    assert set(model.transforms) == {"video", "audio", "text"}
    text = model.transforms["text"]
    assert isinstance(text, TokenizeText) and text.num_candidates == 3 and text.model_type == "word"
    # the same ids as the vocabulary trained on the corpus (read from the data root), with no corpus at hand
    trained = TokenizeText(num_candidates=3, max_tokens=16, vocab_size=256, model_type="word")
    trained.load_state({"sentencepiece_model": torch.frombuffer(bytearray((toy_root / "tokenizer" / "spm_word_256.model").read_bytes()), dtype=torch.uint8)})
    query = ["a red circle moving left", "blue square"]
    assert torch.equal(text.encode(query), trained.encode(query)) and text.encode(query)[0, :5].ne(1).all()
    assert model.transforms["audio"].config()["init_args"]["n_mels"] == 40


def test_transforms_round_trip_their_config_and_state() -> None:
    mel = LogMelTransform(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40)
    rebuilt = build_transforms(export_transforms({"audio": mel}))["audio"]
    assert isinstance(rebuilt, LogMelTransform) and rebuilt.config() == mel.config()
    assert rebuilt.config()["init_args"]["hop_length"] == 160


def test_a_crafted_pickle_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # noqa: ANN204 - pickle protocol
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "bad.ckpt"
    with bad.open("wb") as f:
        pickle.dump({"state_dict": {}, "hyper_parameters": {"x": Payload()}}, f)
    with pytest.raises(CheckpointError, match="refused"):
        safe_load(bad)
    with pytest.raises(CheckpointError, match="refused"):
        load_pretrained(bad)
    assert not marker.exists()


def test_save_pretrained_writes_a_checkpoint_every_loader_accepts(tmp_path: Path) -> None:
    config = {
        "encoders": {
            "video": {"class_path": "versanet.encoders.small.SmallVideoCNN", "init_args": {"widths": [4, 8], "out_dim": 12}},
            "audio": {"class_path": "versanet.encoders.small.SmallAudioCNN", "init_args": {"widths": [4], "out_dim": 10}},
            "text": {"class_path": "versanet.encoders.small.EmbeddingTextEncoder", "init_args": {"vocab_size": 30, "embed_dim": 6, "out_dim": 9}},
        },
        "graph": {"class_path": "versanet.graph.FAC", "init_args": {"va_dim": 8, "vat_dim": 4}},
    }
    from versanet.graph import FAC
    from versanet.models import PretrainModule
    from versanet.encoders.small import EmbeddingTextEncoder, SmallAudioCNN, SmallVideoCNN

    torch.manual_seed(3)
    source = PretrainModule({"video": SmallVideoCNN((4, 8), 12), "audio": SmallAudioCNN((4,), 10), "text": EmbeddingTextEncoder(30, 6, 9)}, FAC(8, 4))
    path = save_pretrained(tmp_path / "converted.ckpt", config, source.state_dict(), {"audio": LogMelTransform(n_mels=40)}, {"source_sha256": "ab"})
    loaded = load_pretrained(path)
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert isinstance(loaded.transforms["audio"], LogMelTransform)
    assert safe_load(path)["versanet"]["source_sha256"] == "ab"


def test_a_fit_checkpoint_records_its_clip_geometry(toy_root: Path, tmp_path: Path) -> None:
    from test_cli import tiny_run_args

    main(["fit", "--config", str(REPO / "configs/quickstart/fac.yaml"), *tiny_run_args(toy_root, tmp_path, steps=1)])
    ckpt = next(tmp_path.rglob("*.ckpt"))
    assert safe_load(ckpt)["versanet"]["clip"] == {"num_frames": 8, "fps": 5.0, "audio_rate": 16000}
    assert load_pretrained(ckpt).clip == {"num_frames": 8, "fps": 5.0, "audio_rate": 16000}
