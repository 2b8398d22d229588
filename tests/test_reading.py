"""The reading path: PyAV clip decoding, caption selection, transforms, and the captioned-video dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SMALL_TOY
from versanet.data.captioned_video import CaptionedVideoDataModule
from versanet.data.captions import Caption, CaptionFileError, consecutive_window, nearest_captions, read_captions, sample_train_window
from versanet.data.toy import render_toy_clip
from versanet.data.transforms import LogMelTransform, RawClip, TokenizeText, VideoClipTransform
from versanet.data.video_io import MediaDecodeError, read_clip


def test_clip_frames_and_audio_match_what_was_rendered(toy_root: Path) -> None:
    rendered = render_toy_clip(3, SMALL_TOY)
    clip = read_clip(toy_root / "videos" / "toy_000003.mp4", start=1.0, num_frames=5, fps=5.0, audio_rate=16000)
    assert clip.frames.shape == (5, 64, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.video_duration == pytest.approx(4.0, abs=0.15)
    # frame i is at 1.0 + i/5 s = source frame 10 + 2i (10 fps): the best match among all rendered
    # frames, compared after 4x4 average pooling (which removes the per-pixel noise)
    def blur(x: np.ndarray) -> np.ndarray:
        return x.astype(float).reshape(*x.shape[:-3], 16, 4, 16, 4, 3).mean(axis=(-4, -2))

    rendered_blur = blur(rendered.frames)
    for i in range(5):
        errors = np.abs(rendered_blur - blur(clip.frames[i])).mean(axis=(1, 2, 3))
        assert errors.argmin() == 10 + 2 * i, (i, errors.argmin())
    # 1.0 s of audio from 1.0 s: sample-aligned with the rendered waveform (AAC is lossy: correlation)
    assert clip.audio.shape == (16000,)
    target = rendered.audio[16000:32000]
    corr = np.corrcoef(clip.audio, target)[0, 1]
    shifted = np.corrcoef(clip.audio, rendered.audio[16000 + 400 : 32000 + 400])[0, 1]
    assert corr > 0.9 and shifted < 0.5, (corr, shifted)


def test_read_clip_resizes_while_decoding_and_centres_for_eval(toy_root: Path) -> None:
    clip = read_clip(toy_root / "videos" / "toy_000000.mp4", None, num_frames=4, fps=5.0, audio_rate=None, short_side=32)
    assert clip.frames.shape == (4, 32, 32, 3) and clip.audio is None
    assert clip.start == pytest.approx((clip.video_duration - 0.8) / 2, abs=1e-6)


def test_unreadable_files_raise_an_error_naming_them(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(MediaDecodeError, match="junk.mp4"):
        read_clip(junk, 0.0, 4, 5.0)
    with pytest.raises(MediaDecodeError, match="missing.mp4"):
        read_clip(tmp_path / "missing.mp4", 0.0, 4, 5.0)


CAPS = [Caption(0.0, 2.0, "a"), Caption(2.0, 3.0, "b"), Caption(3.0, 3.5, "c"), Caption(10.0, 12.0, "d"), Caption(12.0, 13.0, "e")]


def test_consecutive_window_minimises_the_span() -> None:
    # windows of 3 containing caption 2 ("c"): [0,1,2] spans 0-3.5, [1,2,3] spans 2-12, [2,3,4] spans 3-13
    assert consecutive_window(CAPS, 2, 3) == [0, 1, 2]
    # windows of 2 containing caption 3 ("d"): [2,3] spans 3-12, [3,4] spans 10-13
    assert consecutive_window(CAPS, 3, 2) == [3, 4]
    assert consecutive_window(CAPS[:2], 1, 4) == [0, 1]  # fewer captions than K


def test_nearest_captions_orders_by_distance_to_clip_centre() -> None:
    # clip 2.5-3.3 has centre 2.9: inside "b" (0), then "c" (0.1 away), "a" (0.9), "d" (7.1)
    assert nearest_captions(CAPS, 2.5, 3.3, 4) == [1, 2, 0, 3]


def test_train_window_places_the_clip_inside_the_captions_span() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        start, chosen = sample_train_window(CAPS, 2, 1.0, 20.0, rng)
        lo = min(CAPS[i].start for i in chosen)
        hi = max(CAPS[i].end for i in chosen)
        assert chosen == sorted(chosen, key=lambda i: i != chosen[0]) and len(chosen) == 2
        assert abs(chosen[0] - chosen[1]) == 1
        assert lo - 1e-9 <= start <= max(hi - 1.0, lo) + 1e-9


def test_caption_readers_agree_and_report_bad_files(tmp_path: Path) -> None:
    csv_path = tmp_path / "captions.csv"
    csv_path.write_text('video_id,start,end,text\nv1,2.0,3.0,"second, one"\nv1,0.0,1.5,first\nv2,0,1,x\n')
    json_path = tmp_path / "caption.json"
    json_path.write_text(json.dumps({"v1": {"start": [0.0, 2.0], "end": [1.5, 3.0], "text": ["first", "second, one"]}, "v2": {"start": [0], "end": [1], "text": ["x"]}}))
    assert read_captions(csv_path) == read_captions(json_path)
    assert [c.text for c in read_captions(csv_path)["v1"]] == ["first", "second, one"]
    bad = tmp_path / "bad.csv"
    bad.write_text("video_id,start,end,text\nv1,zero,1,x\n")
    with pytest.raises(CaptionFileError, match=r"bad.csv, line 2: bad start/end"):
        read_captions(bad)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("video_id,start,end,text\nv1,0,1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(CaptionFileError, match="latin.csv: not valid UTF-8"):
        read_captions(latin)
    (tmp_path / "cols.csv").write_text("vid,start,end,text\n")
    with pytest.raises(CaptionFileError, match="missing column"):
        read_captions(tmp_path / "cols.csv")


def test_transforms_shapes_and_masks(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (4, 64, 80, 3), dtype=np.uint8)
    clip = RawClip("v", 0.0, 0.8, train=True, frames=frames, audio=np.zeros(12800, np.float32), audio_rate=16000, captions=["a red ball", "goes left"])
    video, vmask = VideoClipTransform(crop=48, resize=56)(clip)
    assert video.shape == (3, 4, 48, 48) and video.dtype == torch.float32 and 0 <= video.min() and video.max() <= 1 and vmask.all()
    clip.train = False
    eval_a, _ = VideoClipTransform(crop=48, resize=56)(clip)
    eval_b, _ = VideoClipTransform(crop=48, resize=56)(clip)
    assert torch.equal(eval_a, eval_b)  # evaluation is deterministic
    logmel, amask = LogMelTransform(n_fft=512, hop_length=160, n_mels=40)(clip)
    assert logmel.shape == (1, 81, 40) and amask.tolist() == [True]
    silent = RawClip("v", 0.0, 0.8, False, frames, None, 16000)
    assert LogMelTransform()(silent)[1].tolist() == [False]
    with pytest.raises(ValueError, match="decoded at 8000 Hz"):
        LogMelTransform()(RawClip("v", 0.0, 0.8, False, frames, np.zeros(6400, np.float32), 8000))
    from versanet.data.transforms import Corpus

    text = TokenizeText(num_candidates=3, max_tokens=6, vocab_size=40)
    corpus = Corpus(tmp_path, ["a red ball goes left", "the blue box moves up", "a green wedge drifts right"] * 20)
    text.prepare(corpus)
    text.setup(corpus)
    tokens, tmask = text(clip)
    assert tokens.shape == (3, 6) and tmask.tolist() == [True, True, False]
    assert (tokens[2] == 0).all() and (tokens[0] > 0).any()
    assert text.spec()["vocab_size"] <= 40 and text.spec()["pad_id"] == 0


def _datamodule(root: Path, **kw) -> CaptionedVideoDataModule:
    transforms = {
        "video": VideoClipTransform(crop=48, resize=56, flip_prob=0.0),
        "audio": LogMelTransform(),
        "text": TokenizeText(num_candidates=3, max_tokens=8, vocab_size=128),
    }
    dm = CaptionedVideoDataModule(str(root), transforms, num_frames=4, fps=5.0, batch_size=4, num_workers=0, **kw)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_dataset_samples_have_aligned_modalities_and_labels(toy_root: Path) -> None:
    dm = _datamodule(toy_root)
    assert len(dm.train_set) == 64 and len(dm.val_set) == 16
    sample = dm.val_set[2]
    assert sample["video"].shape == (3, 4, 48, 48)
    assert sample["audio"].shape == (1, 81, 40)
    assert sample["text"].shape == (3, 8) and sample["mask"]["text"].all()
    assert sample["index"] == 2 and set(sample["label"]) == {"shape", "colour", "directions"}
    again = dm.val_set[2]
    assert all(torch.equal(sample[m], again[m]) for m in ("video", "audio", "text"))  # eval is deterministic
    # the first candidate is the caption nearest the (centred) clip
    rendered = render_toy_clip(64 + 2, SMALL_TOY)
    centre = (4.0 - 0.8) / 2 + 0.4
    nearest = min(rendered.captions, key=lambda c: 0 if c[0] <= centre <= c[1] else min(abs(c[0] - centre), abs(c[1] - centre)))
    assert torch.equal(sample["text"][0], dm.transforms["text"].encode([nearest[2]])[0])
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (4, 3, 4, 48, 48) and batch["mask"]["text"].shape == (4, 3)
    assert dm.modality_specs()["text"]["vocab_size"] <= 128


def test_a_corrupt_video_is_skipped_counted_and_named(toy_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "videos").mkdir(parents=True)
    (root / "splits").mkdir()
    ids = [f"toy_{i:06d}" for i in range(8)]
    for vid in ids:
        (root / "videos" / f"{vid}.mp4").symlink_to(toy_root / "videos" / f"{vid}.mp4")
    (root / "videos" / "broken.mp4").write_bytes(b"\x00" * 2048)
    (root / "captions.csv").write_text((toy_root / "captions.csv").read_text())
    (root / "splits" / "train.txt").write_text("\n".join(ids[:6] + ["broken"]))
    (root / "splits" / "val.txt").write_text("\n".join(ids[6:]))
    dm = _datamodule(root, labels=None)
    sample = dm.train_set[6]  # "broken": replaced by another sample
    assert sample["index"] != 6 and sample["bad_count"] == 1 and sample["bad_files"] == str(root / "videos" / "broken.mp4")
    assert list(dm.train_set.bad) == [str(root / "videos" / "broken.mp4")]
    tried = dm.train_set.tried
    again = dm.train_set[6]  # remembered: not opened again, not counted again, the same replacement
    assert dm.train_set.tried == tried + 1 and dm.train_set.failed == 1 and again["bad_count"] == 0 and again["index"] == sample["index"]
    (root / "videos" / "broken2.mp4").write_bytes(b"\x00" * 2048)
    dm.train_set.items.append(type(dm.train_set.items[0])("broken2", str(root / "videos" / "broken2.mp4")))
    dm.train_set.max_bad_fraction = 0.0
    dm.train_set.tried = 40
    from versanet.data.captioned_video import TooManyBadSamples

    with pytest.raises(TooManyBadSamples, match=r"train under .*corpus: 2 of 41 samples"):
        dm.train_set[len(dm.train_set) - 1]
