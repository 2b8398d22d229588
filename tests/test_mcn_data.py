"""MCN's feature corpus (the HowTo100M feature release's layout), its audio front end, and the paper config on a fixture layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from versanet.data.captions import Caption
from versanet.data.features import FeatureClipDataModule, audio_window, collate_clips, mcn_log_mel, seconds_to_frames, widen
from versanet.data.transforms import TokenizeText

REPO = Path(__file__).resolve().parents[1]
WORDS = "cut the onion slowly then fry it in oil until golden add salt and stir".split()


def write_release(root: Path, videos: int = 4, seconds: int = 30, dim: int = 8) -> None:
    """MCN's layout: parsed_videos/<folder>/<id>_{2d,3d,spec}.npz, caption.json, a `path` CSV, a val split."""
    rng = np.random.default_rng(0)
    captions, paths = {}, []
    for v in range(videos):
        vid = f"vid{v}"
        folder = root / "parsed_videos" / "cooking"
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / f"{vid}_2d.npz", features=rng.random((seconds, dim), dtype=np.float32))
        np.savez(folder / f"{vid}_3d.npz", features=rng.random((int(seconds * 1.5), dim), dtype=np.float32))
        np.savez(folder / f"{vid}_spec.npz", arr_0=-80 * rng.random((40, seconds * 100), dtype=np.float32))
        starts = np.arange(0, seconds - 3, 3.0)
        captions[vid] = {"start": starts.tolist(), "end": (starts + 2.5).tolist(),
                         "text": [" ".join(rng.choice(WORDS, 4)) for _ in starts]}
        paths.append(f"None/cooking/{vid}")
    (root / "caption.json").write_text(json.dumps(captions))
    (root / "videos.csv").write_text("path\n" + "\n".join(paths) + "\n")
    (root / "val.txt").write_text("vid3\n")


def module(root: Path, **kw) -> FeatureClipDataModule:
    args = dict(features_dir="parsed_videos", captions="caption.json", videos="videos.csv", val_split="val.txt",
                clips_per_video=4, min_time=10.0, audio_frames=1000, batch_size=2, num_workers=0)
    args.update(kw)
    dm = FeatureClipDataModule(str(root), {"text": TokenizeText(num_candidates=1, max_tokens=20, vocab_size=40, model_type="word")}, **args)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_frames_and_widened_clips_follow_the_reference_arithmetic() -> None:
    assert seconds_to_frames(10.0) == 998 and seconds_to_frames(0.0) == -2  # librosa.time_to_frames(sr=16k, hop=160, n_fft=400)
    caps = [Caption(0, 2, "a"), Caption(3, 5, "b"), Caption(6, 8, "c"), Caption(20, 30, "d")]
    # from "b": extend to the side whose span is shorter: [0,5] (5 s) vs [3,8] (5 s) -> ties go left
    assert widen(caps, 1, 7.0) == (0, 8, ["b", "a", "c"])
    assert widen(caps, 3, 5.0) == (20, 30, ["d"])  # already long enough
    spec = torch.arange(40 * 300, dtype=torch.float32).reshape(40, 300)
    clip = audio_window(spec, 0.0, 1.0, 200)  # frames max(0, -2) .. 98
    assert clip.shape == (41, 200) and torch.equal(clip[:40, :98], spec[:, :98]) and clip[40].sum() == 98 and clip[:40, 98:].abs().sum() == 0


def test_log_mel_is_40_bins_every_10_ms_in_db_below_the_peak() -> None:
    t = np.arange(16000) / 16000
    spec = mcn_log_mel(np.sin(2 * np.pi * 1000 * t))
    assert spec.shape == (40, 101)  # centred frames: 1 + 16000 // 160
    assert spec.max().item() == pytest.approx(0.0) and spec.min().item() >= -80.0
    peak = int(spec[:, 50].argmax())
    low = int(mcn_log_mel(np.sin(2 * np.pi * 300 * t))[:, 50].argmax())
    assert low < peak  # a lower tone peaks in a lower mel band


def test_training_sample_pools_features_like_the_reference(tmp_path: Path) -> None:
    write_release(tmp_path)
    dm = module(tmp_path)
    ds = dm.dataset("train")
    assert [v.video_id for v in ds.videos] == ["vid0", "vid1", "vid2"]
    sample = ds[0]
    assert sample["video"].shape == (4, 16) and sample["audio"].shape == (4, 41, 1000) and sample["text"].shape == (4, 20)
    # recompute one clip's video feature by hand from the files
    feats2d = torch.from_numpy(np.load(tmp_path / "parsed_videos/cooking/vid0_2d.npz")["features"])
    norms = sample["video"][:, :8].norm(dim=1)
    assert torch.allclose(norms, torch.ones(4))
    caps = ds.videos[0].captions
    candidates = [widen(caps, i, 10.0) for i in range(len(caps))]
    expected = [F.normalize(feats2d[int(a) : int(b) + 1].max(0).values, dim=0) for a, b, _ in candidates]
    assert any(torch.allclose(sample["video"][0, :8], e) for e in expected)
    batch = collate_clips([ds[0], ds[1]])
    assert batch["video"].shape == (8, 16) and batch["bad_count"].tolist() == [0, 0] and batch["index"].tolist() == list(range(8))


def test_missing_and_corrupt_feature_files_are_skipped_counted_and_named(tmp_path: Path) -> None:
    write_release(tmp_path)
    (tmp_path / "parsed_videos/cooking/vid1_3d.npz").unlink()
    (tmp_path / "parsed_videos/cooking/vid2_spec.npz").write_bytes(b"not a zip")
    dm = module(tmp_path)
    ds = dm.dataset("train")
    ds.max_bad_fraction = 1.0
    samples = [ds[i] for i in range(3)]
    assert sum(s["bad_count"] for s in samples) >= 2  # a replacement may be drawn from a bad file again
    assert set(ds.bad) == {str(tmp_path / "parsed_videos/cooking/vid1_3d.npz"), str(tmp_path / "parsed_videos/cooking/vid2_spec.npz")}
    assert "not found" in ds.bad[str(tmp_path / "parsed_videos/cooking/vid1_3d.npz")]


def test_evaluation_on_every_caption_gives_one_sample_per_segment(tmp_path: Path) -> None:
    write_release(tmp_path)
    dm = module(tmp_path, eval_samples="captions", eval_audio_frames=300)
    val = dm.dataset("val")
    assert len(val) == len(val.videos[0].captions)
    sample = val[2]
    cap = val.videos[0].captions[2]
    assert sample["audio"].shape == (1, 41, 300) and sample["index"].tolist() == [2]
    assert sample["audio"][0, 40].sum() == seconds_to_frames(cap.end) - seconds_to_frames(cap.start)


def paper_config_tiny(tmp_path: Path) -> Path:
    """configs/mcn/howto100m.yaml with only sizes shrunk, on a fixture release and a 300-d word2vec text file."""
    config = yaml.safe_load((REPO / "configs/mcn/howto100m.yaml").read_text())
    write_release(tmp_path / "howto", videos=6, dim=8)
    w2v = tmp_path / "w2v.txt"
    rng = np.random.default_rng(1)
    w2v.write_text(f"{len(WORDS)} 300\n" + "\n".join(w + " " + " ".join(f"{x:.3f}" for x in rng.standard_normal(300)) for w in WORDS) + "\n")
    config["trainer"].update(max_epochs=1, max_steps=2, precision="32-true", devices=1, accelerator="cpu", default_root_dir=str(tmp_path / "run"),
                             enable_checkpointing=False, logger=False, callbacks=[])
    enc = config["model"]["init_args"]["encoders"]
    enc["video"]["init_args"]["dim"] = 16
    enc["audio"]["init_args"] = {"widths": [8, 8, 8, 16, 16], "depths": [1, 1, 1, 1]}
    enc["text"]["init_args"]["out_dim"] = 32
    graph = config["model"]["init_args"]["graph"]["init_args"]
    graph["spaces"]["joint"] = 32
    graph["terms"][3]["init_args"].update(num_clusters=4, queue_size=16, group_size=4, queue_per_group=2)
    graph["terms"][4]["init_args"]["decoder"]["init_args"]["hidden_dim"] = 16
    data = config["data"]["init_args"]
    data.update(root=str(tmp_path / "howto"), videos="videos.csv", clips_per_video=4, batch_size=2, num_workers=0)
    data["transforms"]["text"]["init_args"]["word2vec_path"] = str(w2v)
    path = tmp_path / "mcn_tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_paper_config_resolves_and_trains_at_tiny_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from versanet.cli import main, run_cli

    with pytest.raises(SystemExit):
        main(["fit", "--config", str(REPO / "configs/mcn/howto100m.yaml"), "--print_config"])
    printed = capsys.readouterr().out
    for fact in ("ClusteringTerm", "num_clusters: 256", "queue_size: 40960", "refit_every: 20", "joint: 6144", "weight: 50.0",
                 "hidden_dim: 1024", "margin: 0.001", "reduction: sum", "fusion: sum_dot", "clips_per_video: 32", "min_time: 10.0",
                 "audio_frames: 1000", "batch_size: 128", "lr: 0.0001", "warmup_steps: 5000", "max_words: 20", "max_epochs: 30"):
        assert fact in printed, fact
    cli = run_cli(["fit", "--config", str(paper_config_tiny(tmp_path))])
    model = cli.model
    assert cli.trainer.global_step == 2
    term = model.terms["clustering@joint"]
    assert bool(term.fitted) and term.queue_rows == 8  # 2 steps x 2 videos x 2 of 4 clips
    assert model.encoders["text"].table.shape[1] == 300  # the data's word2vec table
