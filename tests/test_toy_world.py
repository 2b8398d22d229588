"""Tests for the toy-world generator (versanet.data.toy): layout, decoding, and the
cross-modal structure (colour, motion, pitch, timbre, rhythm, captions)."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict, replace
from pathlib import Path

import av
import numpy as np
import pytest

from versanet.data.toy import (
    BASE_FREQUENCIES,
    COLOUR_SYNONYMS,
    COLOURS,
    DIRECTION_PHRASES,
    DIRECTION_VECTORS,
    DIRECTIONS,
    FILLER_SENTENCES,
    PULSE_RATES,
    SHAPE_SYNONYMS,
    SHAPES,
    TIMBRES,
    ToyWorldConfig,
    generate_toy_world,
    plan_toy_clip,
    pulse_onsets,
    render_toy_clip,
    toy_video_id,
)

SMALL = ToyWorldConfig(num_train=6, num_val=2, seconds=4.0)
RENDERED = range(24)  # indices rendered in memory (covers every shape, colour and direction)


# ----------------------------------------------------------------------------- helpers


def _decode(path: Path) -> tuple[np.ndarray, list[int], np.ndarray, list[int], av.AudioStream]:
    """frames [T, H, W, 3] uint8, video pts, audio [N] float32, audio pts, audio stream."""
    with av.open(str(path)) as container:
        frames, video_pts = [], []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            video_pts.append(frame.pts)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks, audio_pts = [], []
        for frame in container.decode(audio=0):
            chunks.append(frame.to_ndarray()[0])
            audio_pts.append(frame.pts)
    return np.stack(frames), video_pts, np.concatenate(chunks), audio_pts, stream


def _object_mask(frame: np.ndarray) -> np.ndarray:
    """[H, W] bool: pixels far from the (median) background colour."""
    background = np.median(frame.reshape(-1, 3), axis=0)
    return np.abs(frame.astype(np.float64) - background).max(axis=-1) > 60


def _object_colour(frame: np.ndarray) -> np.ndarray:
    """Mean RGB of the brightest half of the object pixels: [3]."""
    pixels = frame[_object_mask(frame)].astype(np.float64)
    brightest = pixels[np.argsort(pixels.sum(axis=1))[len(pixels) // 2 :]]
    return brightest.mean(axis=0)


def _colour_name(rgb: np.ndarray) -> str:
    r, g, b = rgb
    if min(r, g, b) > 170:
        return "white"
    if r > 150 and g > 150 and b < 100:
        return "yellow"
    if r > 150 and g < 100 and b < 100:
        return "red"
    if g > 150 and r < 100 and b < 100:
        return "green"
    if b > 150 and r < 120 and g < 120:
        return "blue"
    return f"unclear {rgb}"


def _centroid(frame: np.ndarray) -> np.ndarray:
    """Circular (toroidal) centroid (x, y) of the object in px: [2]."""
    ys, xs = np.nonzero(_object_mask(frame))
    size = frame.shape[0]
    out = []
    for coords in (xs, ys):
        angle = 2 * np.pi * (coords + 0.5) / size
        out.append((np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()) * size / (2 * np.pi)) % size)
    return np.array(out)


def _check_motion(frames: np.ndarray, directions: tuple[str, ...], config: ToyWorldConfig) -> None:
    """In each segment, the centroid moves 3 frames' worth (2.4-4.2 px) in the labelled direction."""
    seg, size, step = config.segment_seconds, config.size, 3
    for k, direction in enumerate(directions):
        first = int(np.ceil(k * seg * config.fps)) + 1
        assert (first + step) / config.fps < (k + 1) * seg
        delta = _centroid(frames[first + step]) - _centroid(frames[first])
        delta = (delta + size / 2) % size - size / 2  # unwrap the torus
        along = float(delta @ np.array(DIRECTION_VECTORS[direction]))
        across = float(np.abs(delta).sum() - abs(along))
        assert 1.3 < along < 5.3, (k, direction, delta)  # 2.4-4.2 px +- 1 px pixel quantisation
        assert across < 0.8, (k, direction, delta)


def _spectrum(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    magnitude = np.abs(np.fft.rfft(audio.astype(np.float64)))
    return np.fft.rfftfreq(len(audio), 1.0 / sample_rate), magnitude


def _dominant_frequency(audio: np.ndarray, sample_rate: int) -> float:
    """Peak of the power spectrum smoothed over 20 Hz, between 100 and 1500 Hz. (The pulse
    train puts sidebands at f0 +- k * rate that are nearly as strong as f0 itself; smoothing
    over the pulse's bandwidth leaves one peak, centred on f0.)"""
    freqs, magnitude = _spectrum(audio, sample_rate)
    width = int(round(20.0 / freqs[1])) | 1
    power = np.convolve(magnitude**2, np.ones(width), mode="same")
    band = (freqs > 100) & (freqs < 1500)
    return float(freqs[band][np.argmax(power[band])])


def _harmonic_profile(audio: np.ndarray, sample_rate: int, f0: float, count: int = 4) -> np.ndarray:
    """Amplitudes of harmonics 1..count relative to the fundamental: [count]."""
    freqs, magnitude = _spectrum(audio, sample_rate)
    peaks = [magnitude[np.abs(freqs - k * f0) < 3].max() for k in range(1, count + 1)]
    return np.array(peaks) / peaks[0]


def _timbre_profile(colour: str, f0: float, sample_rate: int, count: int = 4) -> np.ndarray:
    weights = list(TIMBRES[colour]) + [0.0] * count
    return np.array([w if k * f0 < 0.45 * sample_rate else 0.0 for k, w in enumerate(weights[:count], 1)])


def _onsets(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Pulse onset times (s): rising crossings of 30% of the 10 ms smoothed |audio| envelope."""
    width = int(0.01 * sample_rate)
    envelope = np.convolve(np.abs(audio), np.ones(width) / width, mode="same")
    above = envelope > 0.3 * envelope.max()
    rises = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    onsets: list[float] = []
    for t in rises / sample_rate:
        if not onsets or t - onsets[-1] > 0.06:
            onsets.append(float(t))
    return np.array(onsets)


def _check_rhythm(audio: np.ndarray, directions: tuple[str, ...], config: ToyWorldConfig) -> list[int]:
    """Median inter-onset interval per segment is 1/rate(direction) within 5%; returns counts."""
    onsets = _onsets(audio, config.sample_rate) - 0.002  # the envelope lags the onset slightly
    counts = []
    for k, direction in enumerate(directions):
        seg = config.segment_seconds
        inside = onsets[(onsets >= k * seg - 0.01) & (onsets < (k + 1) * seg - 0.01)]
        period = float(np.median(np.diff(inside)))
        assert period == pytest.approx(1.0 / PULSE_RATES[direction], rel=0.05), (k, direction, inside)
        counts.append(len(inside))
    return counts


def _mentions(text: str, phrases: tuple[str, ...]) -> bool:
    return any(re.search(rf"\b{re.escape(p)}\b", text) for p in phrases)


def _read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_toy_world(tmp_path_factory.mktemp("toy") / "world", SMALL)


@pytest.fixture(scope="module")
def clips():
    return [render_toy_clip(i) for i in RENDERED]


# ----------------------------------------------------------------------------- layout


def test_layout(world: Path) -> None:
    ids = [toy_video_id(i) for i in range(8)]
    assert ids[0] == "toy_000000" and ids[7] == "toy_000007"
    assert sorted(p.name for p in world.iterdir()) == [
        "captions.csv", "labels.csv", "manifest.json", "splits", "videos"]
    assert sorted(p.name for p in (world / "videos").iterdir()) == [f"{v}.mp4" for v in ids]
    assert sorted(p.name for p in (world / "splits").iterdir()) == ["train.txt", "val.txt"]
    train = (world / "splits" / "train.txt").read_text().splitlines()
    val = (world / "splits" / "val.txt").read_text().splitlines()
    assert train == ids[:6] and val == ids[6:] and not set(train) & set(val)

    captions = _read_csv(world / "captions.csv")
    assert captions[0] == ["video_id", "start", "end", "text"]
    assert len(captions) - 1 == 8 * SMALL.num_segments
    assert [row[0] for row in captions[1:]] == [v for v in ids for _ in range(SMALL.num_segments)]
    assert all(re.fullmatch(r"\d+\.\d{3}", t) for row in captions[1:] for t in row[1:3])

    labels = _read_csv(world / "labels.csv")
    assert labels[0] == ["video_id", "shape", "colour", "directions"]
    assert [row[0] for row in labels[1:]] == ids
    for i, (vid, shape, colour, directions) in enumerate(labels[1:]):
        plan = plan_toy_clip(i, SMALL)
        assert (shape, colour, directions) == (plan.shape, plan.colour, "|".join(plan.directions))
        rows = [r for r in captions[1:] if r[0] == vid]
        assert [(float(s), float(e), t) for _, s, e, t in rows] == list(plan.captions)

    manifest = json.loads((world / "manifest.json").read_text())
    assert manifest["config"] == asdict(SMALL)
    assert manifest["counts"] == {"train": 6, "val": 2, "videos": 8, "captions": 24}


def test_second_call_is_a_no_op_and_other_config_raises(world: Path) -> None:
    before = _snapshot(world)
    assert generate_toy_world(world, SMALL) == world
    assert _snapshot(world) == before
    with pytest.raises(ValueError, match=r"manifest\.json.*seed.*recorded 0, requested 1"):
        generate_toy_world(world, replace(SMALL, seed=1))
    assert _snapshot(world) == before


def test_interrupted_run_is_regenerated_and_workers_give_identical_files(world: Path, tmp_path: Path) -> None:
    root = tmp_path / "again"
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "toy_000099.mp4").write_bytes(b"stale")
    (root / "videos" / ".toy_000001.mp4.partial").write_bytes(b"half")
    (root / "captions.csv").write_text("garbage")
    generate_toy_world(root, SMALL, workers=2)
    assert sorted(p.name for p in (root / "videos").iterdir()) == [f"{toy_video_id(i)}.mp4" for i in range(8)]
    files = sorted(p.relative_to(world) for p in world.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    for name in files:  # byte-identical to the single-process run
        assert (root / name).read_bytes() == (world / name).read_bytes(), name


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="even"):
        ToyWorldConfig(size=63)
    with pytest.raises(ValueError, match="asr_shift_prob"):
        ToyWorldConfig(asr_shift_prob=1.5)
    assert ToyWorldConfig(seconds=4).seconds == 4.0 and isinstance(ToyWorldConfig(seconds=4).seconds, float)


# ----------------------------------------------------------------------------- decoding


def test_mp4_decodes_with_aligned_streams(world: Path) -> None:
    for i in range(8):
        path = world / "videos" / f"{toy_video_id(i)}.mp4"
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
            assert container.streams.audio[0].codec_context.name == "aac"
        frames, video_pts, audio, audio_pts, stream = _decode(path)
        assert abs(len(frames) - SMALL.num_frames) <= 1 and frames.shape[1:] == (64, 64, 3)
        assert video_pts[0] == 0 and audio_pts[0] == 0
        assert stream.rate == SMALL.sample_rate and stream.channels == 1
        assert abs(len(audio) / SMALL.sample_rate - SMALL.seconds) < 0.1

        clip = render_toy_clip(i, SMALL)
        assert np.abs(frames.astype(np.int16) - clip.frames).mean() < 10
        # no audio/video offset: the decoded track lines up sample for sample with the rendered one
        n = len(clip.audio)
        shifts = range(-64, 65)
        scores = [float(clip.audio[max(0, -s) : n - max(0, s)] @ audio[max(0, s) : n - max(0, -s)])
                  for s in shifts]
        assert shifts[int(np.argmax(scores))] == 0
        assert np.corrcoef(clip.audio, audio[:n])[0, 1] > 0.98


def test_decoded_world_keeps_the_structure(world: Path) -> None:
    for i in range(8):
        frames, _, audio, _, _ = _decode(world / "videos" / f"{toy_video_id(i)}.mp4")
        plan = plan_toy_clip(i, SMALL)
        assert all(_colour_name(_object_colour(frames[t])) == plan.colour for t in (0, 17, 39))
        _check_motion(frames, plan.directions, SMALL)
        f0 = BASE_FREQUENCIES[plan.shape]
        assert abs(_dominant_frequency(audio, SMALL.sample_rate) - f0) < 3.0
        profile = _harmonic_profile(audio, SMALL.sample_rate, f0)
        nearest = min(COLOURS, key=lambda c: np.abs(profile - _timbre_profile(c, f0, SMALL.sample_rate)).sum())
        assert nearest == plan.colour, (i, profile)
        _check_rhythm(audio, plan.directions, SMALL)


# ----------------------------------------------------------------------------- rendering


def test_render_is_deterministic_and_independent_of_split_sizes(clips) -> None:
    again = render_toy_clip(3)
    assert np.array_equal(again.frames, clips[3].frames) and np.array_equal(again.audio, clips[3].audio)
    assert again.captions == clips[3].captions and again.labels == clips[3].labels
    other = render_toy_clip(3, replace(ToyWorldConfig(), num_train=5, num_val=0))
    assert np.array_equal(other.frames, clips[3].frames) and other.captions == clips[3].captions
    assert not np.array_equal(clips[3].frames, clips[4].frames)
    assert not np.array_equal(clips[3].audio, clips[4].audio)
    assert not np.array_equal(render_toy_clip(3, replace(ToyWorldConfig(), seed=1)).frames, clips[3].frames)


def test_shapes_and_ranges(clips) -> None:
    config = ToyWorldConfig()
    for clip in clips:
        assert clip.frames.shape == (60, 64, 64, 3) and clip.frames.dtype == np.uint8
        assert clip.audio.shape == (96000,) and clip.audio.dtype == np.float32
        assert 0.2 < np.abs(clip.audio).max() < 0.75
        assert len(clip.directions) == config.num_segments
        assert all(a != b for a, b in zip(clip.directions, clip.directions[1:]))
        area = _object_mask(clip.frames[0]).sum()
        assert 100 * config.object_scale**2 < area < 260 * config.object_scale**2, area  # ~14 px * object_scale across
        assert clip.frames[0].std() > 0 and not np.array_equal(clip.frames[0], clip.frames[1])
    assert {c.shape for c in clips} == set(SHAPES) and {c.colour for c in clips} == set(COLOURS)
    assert {d for c in clips for d in c.directions} == set(DIRECTIONS)


def test_colour_of_object(clips) -> None:
    for clip in clips:
        rgb = _object_colour(clip.frames[10])
        assert _colour_name(rgb) == clip.colour, (clip.index, rgb)
        if clip.colour == "red":
            assert rgb[0] > rgb[1] + 100 and rgb[0] > rgb[2] + 100


def test_motion_follows_directions(clips) -> None:
    for clip in clips:
        _check_motion(clip.frames, clip.directions, ToyWorldConfig())


def test_pitch_follows_shape_and_timbre_follows_colour(clips) -> None:
    sr = ToyWorldConfig().sample_rate
    for clip in clips:
        f0 = BASE_FREQUENCIES[clip.shape]
        assert abs(_dominant_frequency(clip.audio, sr) - f0) < 3.0
        profile = _harmonic_profile(clip.audio, sr, f0)
        nearest = min(COLOURS, key=lambda c: np.abs(profile - _timbre_profile(c, f0, sr)).sum())
        assert nearest == clip.colour, (clip.index, profile)


def test_pulse_rate_follows_direction(clips) -> None:
    config = ToyWorldConfig()
    for clip in clips:
        counts = _check_rhythm(clip.audio, clip.directions, config)
        onsets = pulse_onsets(plan_toy_clip(clip.index), config)
        seg = config.segment_seconds
        assert counts == [int(((onsets >= k * seg) & (onsets < (k + 1) * seg)).sum()) for k in range(3)]
    # 2 s segments: 4, 6, 10 and 16 pulses for left, right, up, down
    assert [round(2.0 * PULSE_RATES[d]) for d in DIRECTIONS] == [4, 6, 10, 16]


# ----------------------------------------------------------------------------- captions


def test_captions_describe_their_segments() -> None:
    config = ToyWorldConfig()
    fillers = 0
    for i in range(400):
        plan = plan_toy_clip(i, config)
        assert len(plan.captions) == config.num_segments
        for k, ((start, end, text), shift) in enumerate(zip(plan.captions, plan.caption_shifts)):
            assert 0.0 <= start < end <= config.seconds
            nominal = (round(k * 2.0, 3), round((k + 1) * 2.0, 3))
            if shift == 0.0:
                assert (start, end) == nominal
            else:
                assert abs(shift) <= config.asr_max_shift and end - start >= 1.0 - 1e-9
            others = [c for c in COLOURS if c != plan.colour]
            if plan.caption_is_filler[k]:
                fillers += 1
                assert text in FILLER_SENTENCES
                assert not any(_mentions(text, COLOUR_SYNONYMS[c]) for c in COLOURS)
                assert not any(_mentions(text, SHAPE_SYNONYMS[s]) for s in SHAPES)
                continue
            assert _mentions(text, COLOUR_SYNONYMS[plan.colour]), text
            assert _mentions(text, SHAPE_SYNONYMS[plan.shape]), text
            assert _mentions(text, DIRECTION_PHRASES[plan.directions[k]]), text
            assert not any(_mentions(text, COLOUR_SYNONYMS[c]) for c in others), text
            assert not any(_mentions(text, SHAPE_SYNONYMS[s]) for s in SHAPES if s != plan.shape), text
            other_directions = [d for d in DIRECTIONS if d != plan.directions[k]]
            assert not any(_mentions(text, DIRECTION_PHRASES[d]) for d in other_directions), text
    assert 0.07 < fillers / 1200 < 0.13
    texts = {c[2] for i in range(50) for c in plan_toy_clip(i, config).captions}
    assert len(texts) > 140  # varied wording


def test_asr_shift_rate() -> None:
    def shifted_fraction(config: ToyWorldConfig) -> float:
        shifts = [s for i in range(1000) for s in plan_toy_clip(i, config).caption_shifts]
        assert max(abs(s) for s in shifts) <= config.asr_max_shift
        return sum(s != 0.0 for s in shifts) / len(shifts)

    assert shifted_fraction(ToyWorldConfig()) == pytest.approx(0.3, abs=0.03)
    assert shifted_fraction(ToyWorldConfig(asr_shift_prob=0.0)) == 0.0
    assert shifted_fraction(ToyWorldConfig(asr_shift_prob=1.0)) > 0.99
    plans = [plan_toy_clip(i) for i in range(200)]
    shifted = [c for p in plans for c, s in zip(p.captions, p.caption_shifts) if s]
    assert any(start > 0 and abs(start / 2.0 - round(start / 2.0)) > 0.01 for start, _, _ in shifted)
