"""VATT's paper configs: they state the paper's settings, and train at tiny size on miniature HowTo100M + AudioSet layouts."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fixtures_data import MediaCache, make_audioset
from versanet.cli import main, run_cli

REPO = Path(__file__).resolve().parents[1]
VATT = REPO / "configs" / "vatt"
TINY = "tiny"


def print_config(path: Path, capsys: pytest.CaptureFixture, *extra: str) -> str:
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when it sees pytest's arguments too
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "--config", str(path), "--print_config", *extra])
    finally:
        sys.argv = argv
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize("name", ["bbs", "mbs", "lbs", "ma"])
def test_paper_configs_state_vatts_settings(name: str, capsys: pytest.CaptureFixture) -> None:
    out = print_config(VATT / f"{name}.yaml", capsys)
    for fact in ("optimizer: adam", "lr: 0.0001", "warmup_steps: 5000", "final_lr_ratio: 0.5", "max_steps: 500000",
                 "droptoken_rate: 0.5", "temperature: 0.07", "num_candidates: 5", "max_tokens: 16", "first_bias: false",
                 "num_samples: 153600", "noise: 0.01", "sample_rate: 48000", "max_frames: 32", "fps: 12.5", "fps: 10.0", "va: 512", "vat: 256"):
        assert fact in out, f"{name}: {fact!r}"
    assert re.search(r"value_range:\s*- -1.0\s*- 1.0", out) and re.search(r"proportions:\s*- 0.5\s*- 0.5", out)
    sizes = {"bbs": "base", "mbs": "medium", "lbs": "large", "ma": "medium"}[name]
    assert re.search(rf"class_path: versanet.encoders.vatt.VATTVideo\s*init_args:\s*size: {sizes}", out)
    if name == "ma":
        assert "class_path: versanet.encoders.vatt.VATTTrunk" in out and out.count("trunk: shared") == 3 and "post_projection: 1024" in out


# ---------------------------------------------------------------------------- tiny runs on the released layouts
WORDS = ["first", "second", "part", "of", "clip", "cooking", "the", "a", "pan", "egg"]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """HowTo100M (``videos/<id>.mp4`` + ``caption.json``), AudioSet (segment CSVs + clips) and a 300-d word2vec text file."""
    base = tmp_path_factory.mktemp("vatt_corpora")
    media = MediaCache(base / "_media")
    media.folder.mkdir()
    howto = base / "howto100m"
    captions = {}
    for i in range(6):
        media.video(howto / "videos" / f"ht{i:02d}.mp4", seconds=3.0)
        captions[f"ht{i:02d}"] = {"start": [0.0, 1.5], "end": [1.5, 3.0], "text": [f"first part of clip {i}", f"cooking the egg in a pan {i}"]}
    (howto / "caption.json").write_text(json.dumps(captions))
    make_audioset(base / "audioset", media)
    vectors = np.random.default_rng(0).standard_normal((len(WORDS), 300)).astype(np.float32)
    w2v = base / "w2v.txt"
    w2v.write_text(f"{len(WORDS)} 300\n" + "".join(w + " " + " ".join(f"{v:.6f}" for v in vec) + "\n" for w, vec in zip(WORDS, vectors)))
    (base / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    return {"howto": howto, "audioset": base / "audioset", "w2v": w2v, "vocab": base / "vocab.txt"}


def tiny_config(name: str, corpora: dict[str, Path], out: Path) -> Path:
    """``configs/vatt/<name>.yaml`` on the miniature corpora: 8-frame 32x32 clips at 16 kHz (AudioSet: 10 frames at 12.5 fps, 8 kept)."""
    data = yaml.safe_load((VATT / "data_mix.yaml").read_text())
    args = data["init_args"]
    args.update({"batch_size": 4, "num_workers": 0, "samples_per_epoch": 8})
    howto, audioset = args["datamodules"]
    howto["init_args"].update({"root": str(corpora["howto"]), "num_frames": 8, "audio_rate": 16000, "short_side": None, "val_fraction": 0.34})
    audioset["init_args"].update({"root": str(corpora["audioset"]), "num_frames": 10, "audio_rate": 16000, "short_side": None})
    transforms = args["transforms"]
    transforms["video"]["init_args"].update({"crop": 32, "resize": 32, "max_frames": 8})
    transforms["audio"]["init_args"].update({"sample_rate": 16000, "num_samples": 12800})  # 0.8 s = 100 tokens
    transforms["text"]["init_args"].update({"word2vec_path": str(corpora["w2v"]), "vocab_path": str(corpora["vocab"]), "cache_path": str(out / "w2v.subset.pt")})
    (out / "data_mix.yaml").write_text(yaml.safe_dump(data))
    (out / f"{name}.yaml").write_text((VATT / f"{name}.yaml").read_text())
    return out / f"{name}.yaml"


@pytest.mark.parametrize("name", ["bbs", "ma"])
def test_paper_configs_train_at_tiny_size_on_the_released_layouts(name: str, corpora: dict[str, Path], tmp_path: Path, one_thread: None) -> None:
    config = tiny_config(name, corpora, tmp_path)
    encoders = "--model.init_args.encoders"
    sizes = [f"{encoders}.{m}.init_args.size={TINY}" for m in ("video", "audio", "text")]
    if name == "ma":
        sizes.append(f"--model.init_args.trunks.shared.init_args.size={TINY}")
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        cli = run_cli([
            "fit", "--config", str(config), *sizes, "--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=0",
            "--trainer.val_check_interval=2", "--trainer.precision=32-true", "--trainer.strategy=auto", "--trainer.devices=1",
            "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={tmp_path / 'run'}",
        ])
    finally:
        sys.argv = argv
    model = cli.model
    assert cli.trainer.global_step == 2
    video, audio, text = (model.encoders[m] for m in ("video", "audio", "text"))
    assert video.size.d_model == 64 and audio.droptoken_rate == 0.5 and text.vocab_size == len(WORDS) + 2  # the data's word2vec subset
    if name == "ma":
        assert video.trunk is audio.trunk is text.trunk is model.trunks["shared"]
    assert {r["query"] for r in model.retrieval_results} == {"video", "audio", "text"}
    state = torch.load(next((tmp_path / "run").rglob("*.ckpt")), map_location="cpu", weights_only=False)["state_dict"]
    assert ("trunks.shared.layers.0.mha.q.weight" in state) == (name == "ma")
    assert not any(k.startswith("encoders.video.trunk") for k in state) or name != "ma"
