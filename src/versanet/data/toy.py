"""The "toy world": a deterministic audio-visual-text corpus with real cross-modal structure.

The generator writes short clips as real files, in the same layout as a HowTo100M-style
corpus, so that a model trains through exactly the reading path it uses on real data, and a
tiny model can learn cross-modal retrieval from it on a CPU in a few minutes.

World
-----
Every video is ``seconds`` long, ``fps`` frames per second, ``size`` x ``size`` RGB pixels,
with a mono soundtrack at ``sample_rate`` Hz.

* Picture: one filled object (a shape from :data:`SHAPES` in a colour from :data:`COLOURS`,
  about 14 px across at size 64 times ``object_scale`` (default 1.5), scaled with ``size``) on a dark background whose colour
  differs a little per video, plus gaussian pixel noise (std 8/255) in every frame.
* Motion: the clip is split into ``num_segments`` equal segments; in each the object moves in
  one direction from :data:`DIRECTIONS` (consecutive segments always differ) at a per-video
  speed of 8-14 px/s (at size 64). Each segment starts (with a cut) where its whole path stays
  inside the frame, so the object is never split across the edges.
* Sound: a train of short tone pulses. The pitch is set by the shape
  (:data:`BASE_FREQUENCIES`), the timbre (harmonic weights) by the colour (:data:`TIMBRES`)
  and the pulse rate by the direction of the current segment (:data:`PULSE_RATES`), so the
  rhythm changes at the segment boundaries in step with the motion (:func:`pulse_onsets`).
  Noise at 20 dB SNR and a random per-video gain (peak 0.25-0.6) are added.
* Text: one time-stamped caption per segment, built from templates with synonyms and filler
  words (:data:`COLOUR_SYNONYMS`, :data:`SHAPE_SYNONYMS`, :data:`DIRECTION_PHRASES`, ...).
  With probability ``asr_shift_prob`` a caption's times are shifted by up to
  +-``asr_max_shift`` s (clipped to the clip, like ASR captions that lag the action), and
  with probability 0.1 its text is replaced by a content-free sentence from
  :data:`FILLER_SENTENCES`.

Everything is a pure function of ``(config.seed, index)``: video ``i`` is the same whatever
``num_train`` is.

On-disk layout (the contract the readers rely on)
-------------------------------------------------
::

    ROOT/
      videos/<video_id>.mp4   H.264 (yuv420p, crf 18, no B-frames, keyframe every second)
                              + AAC mono audio (48 kb/s) at sample_rate, muxed with PyAV
      captions.csv            video_id,start,end,text    (times in s, 3 decimals)
      labels.csv              video_id,shape,colour,directions  (directions joined by '|')
      splits/train.txt        one video_id per line (the first num_train ids)
      splits/val.txt          one video_id per line (the next num_val ids)
      manifest.json           config + counts, written last: present <=> dataset complete

Video ids are ``toy_000000``, ``toy_000001``, ...

Decoding notes (PyAV/FFmpeg): both streams start at pts 0 with no offset between them. Video
frame ``i`` has time ``pts * time_base == i / fps`` exactly (the muxer picks the time base,
1/10240 at 10 fps; no B-frames, so pts == dts) and every ``fps``-th frame is a keyframe.
The AAC encoder's 1024 priming samples are trimmed by the mp4 edit list: the first decoded
audio frame has pts 0 and matches the rendered waveform sample for sample. The audio stream's
``duration`` is exactly ``round(seconds * sample_rate)`` samples, but decoding yields whole
1024-sample frames, so the decoded audio carries up to 1023 samples of near-silent padding at
the end (e.g. 96256 decoded samples for 96000).
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import re
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from statistics import NormalDist

import numpy as np

from versanet.data.mp4_writer import AAC_BIT_RATE, X264_OPTIONS, write_mp4

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "white")
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")

#: Object colours as RGB in 0..255.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 235),
    "yellow": (230, 210, 40),
    "white": (235, 235, 235),
}
#: Unit motion vector (dx, dy) in image coordinates (y grows downwards).
DIRECTION_VECTORS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}
#: Fundamental frequency of the pulses (Hz) per shape.
BASE_FREQUENCIES: dict[str, float] = {
    "circle": 300.0,
    "square": 450.0,
    "triangle": 675.0,
    "cross": 1000.0,
}
#: Relative amplitudes of harmonics 1, 2, 3, ... per colour (the fundamental always dominates).
TIMBRES: dict[str, tuple[float, ...]] = {
    "red": (1.0,),
    "green": (1.0, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6, 1 / 7),
    "blue": (1.0, 0.0, 1 / 3, 0.0, 1 / 5, 0.0, 1 / 7),
    "yellow": (1.0, 0.0, 0.0, 0.6),
    "white": (1.0, 0.7, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
}
#: Pulses per second per direction.
PULSE_RATES: dict[str, float] = {"left": 2.0, "right": 3.0, "up": 5.0, "down": 8.0}

COLOUR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet", "reddish"),
    "green": ("green", "emerald", "lime", "greenish"),
    "blue": ("blue", "navy", "azure", "bluish"),
    "yellow": ("yellow", "golden", "lemon", "yellowish"),
    "white": ("white", "snowy", "ivory", "pale"),
}
SHAPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "ball", "disc", "round thing", "dot"),
    "square": ("square", "box", "block", "tile"),
    "triangle": ("triangle", "wedge", "pyramid", "three sided shape"),
    "cross": ("cross", "plus sign", "x shape", "plus"),
}
DIRECTION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("left", "to the left", "leftwards", "towards the left"),
    "right": ("right", "to the right", "rightwards", "towards the right"),
    "up": ("up", "upwards", "to the top", "upward"),
    "down": ("down", "downwards", "to the bottom", "downward"),
}
#: Motion verbs as (third person, -ing form).
MOTION_VERBS: tuple[tuple[str, str], ...] = (
    ("moves", "moving"),
    ("goes", "going"),
    ("slides", "sliding"),
    ("travels", "travelling"),
    ("drifts", "drifting"),
    ("is heading", "heading"),
)
FILLERS: tuple[str, ...] = ("", "", "so", "okay now", "and here", "you can see", "um", "and now", "uh")
TEMPLATES: tuple[str, ...] = (
    "{filler} the {colour} {shape} {verb} {direction}",
    "{filler} there is a {colour} {shape} and it {verb} {direction}",
    "{filler} the {shape} is {colour} and it {verb} {direction}",
    "{filler} we have a {colour} {shape} {verb_ing} {direction}",
    "{filler} look it {verb} {direction} the {colour} {shape}",
    "{filler} {verb_ing} {direction} is the {colour} {shape}",
)
#: Content-free captions used as caption noise.
FILLER_SENTENCES: tuple[str, ...] = (
    "okay let's see what happens",
    "um yeah",
    "so that's it for this part",
    "hmm one second",
    "let me show you this",
    "okay give me a moment",
    "and that's how it works",
)
FILLER_CAPTION_PROB = 0.1

_NOISE_STD = 8.0  # pixel noise, in 0..255 units
_PULSE_SECONDS = 0.05
_PULSE_ATTACK = 0.005
_PULSE_DECAY = 0.015
_AUDIO_SNR_DB = 20.0
_MANIFEST_FORMAT = "versanet-toy-world"
_MANIFEST_VERSION = 1


@dataclass(frozen=True)
class ToyWorldConfig:
    """Parameters of a toy corpus; every field is recorded in manifest.json."""

    num_train: int = 800
    num_val: int = 100
    seconds: float = 6.0
    fps: int = 10
    size: int = 64
    sample_rate: int = 16000
    num_segments: int = 3
    asr_shift_prob: float = 0.3
    asr_max_shift: float = 1.0
    seed: int = 0
    object_scale: float = 1.5  # object size relative to the 14 px (at size 64) base shapes

    def __post_init__(self) -> None:
        for f in fields(self):  # seconds=4 -> 4.0, so that manifests compare and read back exactly
            value = getattr(self, f.name)
            if isinstance(f.default, float) and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
        checks = {
            "num_train >= 0": self.num_train >= 0,
            "num_val >= 0": self.num_val >= 0,
            "seconds > 0": self.seconds > 0,
            "fps > 0": self.fps > 0,
            "size >= 16 and even (yuv420p)": self.size >= 16 and self.size % 2 == 0,
            "sample_rate >= 8000": self.sample_rate >= 8000,
            "num_segments >= 1": self.num_segments >= 1,
            "0 <= asr_shift_prob <= 1": 0.0 <= self.asr_shift_prob <= 1.0,
            "asr_max_shift >= 0": self.asr_max_shift >= 0,
            "0 < object_scale <= 3": 0.0 < self.object_scale <= 3.0,
            "at least one frame": round(self.seconds * self.fps) >= 1,
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid ToyWorldConfig ({', '.join(failed)}): {self}")

    @property
    def num_videos(self) -> int:
        return self.num_train + self.num_val

    @property
    def num_frames(self) -> int:
        """Frames per video, T = round(seconds * fps)."""
        return int(round(self.seconds * self.fps))

    @property
    def num_samples(self) -> int:
        """Audio samples per video, N = round(seconds * sample_rate)."""
        return int(round(self.seconds * self.sample_rate))

    @property
    def segment_seconds(self) -> float:
        return self.seconds / self.num_segments


@dataclass(frozen=True)
class ToyPlan:
    """Every random decision for one video (cheap: no pixels or samples)."""

    index: int
    shape: str
    colour: str
    directions: tuple[str, ...]
    speed: float  # px/s
    segment_starts: tuple[tuple[float, float], ...]  # px, object centre at the start of each segment
    background_rgb: tuple[float, float, float]  # 0..255
    brightness: float  # object colour multiplier
    gain: float  # audio peak amplitude before noise
    captions: tuple[tuple[float, float, str], ...]
    caption_shifts: tuple[float, ...]  # applied ASR offset per caption (0.0 if none)
    caption_is_filler: tuple[bool, ...]


@dataclass(frozen=True, eq=False)
class ToyClip:
    """One rendered video: frames [T, H, W, 3] uint8, audio [N] float32 in [-1, 1]."""

    index: int
    frames: np.ndarray
    audio: np.ndarray
    captions: list[tuple[float, float, str]]
    shape: str
    colour: str
    directions: tuple[str, ...]
    caption_shifts: tuple[float, ...]  # applied ASR offset per caption (0.0 if none)
    caption_is_filler: tuple[bool, ...]  # True where the text is a content-free sentence

    @property
    def labels(self) -> tuple[str, str, tuple[str, ...]]:
        """(shape, colour, per-segment directions)."""
        return self.shape, self.colour, self.directions

    @property
    def video_id(self) -> str:
        return toy_video_id(self.index)


def toy_video_id(index: int) -> str:
    """The video id of video ``index``: ``toy_000042``."""
    return f"toy_{index:06d}"


def _rngs(index: int, config: ToyWorldConfig) -> tuple[np.random.Generator, ...]:
    """Independent generators (plan, pixels, audio) seeded from (seed, index)."""
    if index < 0:
        raise ValueError(f"video index must be >= 0, got {index}")
    children = np.random.SeedSequence([config.seed, index]).spawn(3)
    return tuple(np.random.default_rng(child) for child in children)


def _pick(rng: np.random.Generator, options: tuple) -> object:
    return options[int(rng.integers(len(options)))]


def _draw_directions(rng: np.random.Generator, num_segments: int) -> tuple[str, ...]:
    """Per-segment directions; consecutive segments always differ."""
    directions = [str(_pick(rng, DIRECTIONS))]
    for _ in range(num_segments - 1):
        others = tuple(d for d in DIRECTIONS if d != directions[-1])
        directions.append(str(_pick(rng, others)))
    return tuple(directions)


def _caption_text(rng: np.random.Generator, shape: str, colour: str, direction: str) -> str:
    """A templated caption describing one segment, whitespace-normalised."""
    verb, verb_ing = _pick(rng, MOTION_VERBS)
    text = str(_pick(rng, TEMPLATES)).format(
        filler=_pick(rng, FILLERS),
        colour=_pick(rng, COLOUR_SYNONYMS[colour]),
        shape=_pick(rng, SHAPE_SYNONYMS[shape]),
        verb=verb,
        verb_ing=verb_ing,
        direction=_pick(rng, DIRECTION_PHRASES[direction]),
    )
    return " ".join(text.split())


def _asr_offset(rng: np.random.Generator, start: float, end: float, config: ToyWorldConfig) -> float:
    """A random ASR offset in [-asr_max_shift, asr_max_shift], limited so that at least half
    of the segment stays inside [0, seconds]."""
    offset = float(rng.uniform(-config.asr_max_shift, config.asr_max_shift))
    half = 0.5 * (end - start)
    return float(np.clip(offset, -(start + half), config.seconds - end + half))


def _draw_captions(
    rng: np.random.Generator, shape: str, colour: str, directions: tuple[str, ...], config: ToyWorldConfig
) -> tuple[tuple[tuple[float, float, str], ...], tuple[float, ...], tuple[bool, ...]]:
    """One caption per segment: ((start, end, text), ...), applied shifts, filler flags."""
    captions, shifts, fillers = [], [], []
    seg = config.segment_seconds
    for k, direction in enumerate(directions):
        start, end = k * seg, (k + 1) * seg
        text = _caption_text(rng, shape, colour, direction)
        offset = _asr_offset(rng, start, end, config) if rng.random() < config.asr_shift_prob else 0.0
        is_filler = bool(rng.random() < FILLER_CAPTION_PROB)
        if is_filler:
            text = str(_pick(rng, FILLER_SENTENCES))
        s = round(float(np.clip(start + offset, 0.0, config.seconds)), 3)
        e = round(float(np.clip(end + offset, 0.0, config.seconds)), 3)
        captions.append((s, e, text))
        shifts.append(round(offset, 3))
        fillers.append(is_filler)
    return tuple(captions), tuple(shifts), tuple(fillers)


def plan_toy_clip(index: int, config: ToyWorldConfig = ToyWorldConfig()) -> ToyPlan:
    """All random choices for video ``index`` (labels, motion, captions) without rendering."""
    rng = _rngs(index, config)[0]
    shape = str(_pick(rng, SHAPES))
    colour = str(_pick(rng, COLOURS))
    directions = _draw_directions(rng, config.num_segments)
    scale = config.size / 64.0
    speed = float(rng.uniform(8.0, 14.0)) * scale
    segment_starts = _draw_segment_starts(rng, directions, speed, config)
    background = tuple(float(v) for v in rng.uniform(8.0, 45.0, 3))
    brightness = float(rng.uniform(0.85, 1.0))
    gain = float(rng.uniform(0.25, 0.6))
    captions, shifts, fillers = _draw_captions(rng, shape, colour, directions, config)
    return ToyPlan(index, shape, colour, directions, speed, segment_starts, background, brightness,
                   gain, captions, shifts, fillers)


def _draw_segment_starts(
    rng: np.random.Generator, directions: tuple[str, ...], speed: float, config: ToyWorldConfig
) -> tuple[tuple[float, float], ...]:
    """Per segment, a start position from which the whole segment's path stays inside the frame.

    The margin keeps the object (and a 4 px border lost to training crops, at size 64) in view, so
    a shape is never split across the frame's edges; segments begin with a cut. Where the path
    cannot fit (a tiny frame or a long segment), it is centred.
    """
    s = config.size / 64.0
    margin = 8.5 * s * config.object_scale + 4.0 * s
    travel = speed * config.segment_seconds
    starts = []
    for direction in directions:
        vx, vy = DIRECTION_VECTORS[direction]
        xy = []
        for v in (vx, vy):
            lo, hi = margin + travel * max(-v, 0), config.size - margin - travel * max(v, 0)
            xy.append(float(rng.uniform(lo, hi)) if hi > lo else config.size / 2 - v * travel / 2)
        starts.append((xy[0], xy[1]))
    return tuple(starts)


def object_positions(plan: ToyPlan, config: ToyWorldConfig) -> np.ndarray:
    """Object centre (x, y) in px for every frame, in [0, size): [T, 2] float64."""
    seg = config.segment_seconds
    times = np.arange(config.num_frames) / config.fps
    seg_idx = np.minimum((times / seg).astype(np.int64), config.num_segments - 1)
    velocity = np.array([DIRECTION_VECTORS[d] for d in plan.directions], dtype=np.float64) * plan.speed
    starts = np.asarray(plan.segment_starts, dtype=np.float64)
    positions = starts[seg_idx] + velocity[seg_idx] * (times - seg_idx * seg)[:, None]
    return positions % config.size  # a no-op unless a path could not fit in the frame


def _shape_masks(shape: str, centres: np.ndarray, size: int, object_scale: float = 1.0) -> np.ndarray:
    """Filled-shape masks [T, size, size] bool around centres [T, 2] on a torus."""
    s = size / 64.0 * object_scale
    grid = np.arange(size, dtype=np.float32) + 0.5
    half = size / 2.0
    dx = ((grid[None, None, :] - centres[:, 0, None, None] + half) % size) - half  # [T, 1, W]
    dy = ((grid[None, :, None] - centres[:, 1, None, None] + half) % size) - half  # [T, H, 1]
    adx, ady = np.abs(dx), np.abs(dy)
    if shape == "circle":
        return dx**2 + dy**2 <= (7.0 * s) ** 2
    if shape == "square":
        return (adx <= 6.5 * s) & (ady <= 6.5 * s)
    if shape == "triangle":  # apex up, 16 px base, 14.5 px tall at size 64
        apex, base, half_width = -7.5 * s, 7.0 * s, 8.0 * s
        return (dy >= apex) & (dy <= base) & (adx <= half_width * (dy - apex) / (base - apex))
    if shape == "cross":
        arm, thick = 7.0 * s, 2.5 * s
        return ((adx <= arm) & (ady <= thick)) | ((ady <= arm) & (adx <= thick))
    raise ValueError(f"unknown shape {shape!r}")


def _noise_table(std: float) -> np.ndarray:
    """256 equiprobable gaussian quantiles (std ``std``) rounded to int16: a fast noise source."""
    quantiles = [NormalDist().inv_cdf((i + 0.5) / 256) * std for i in range(256)]
    return np.rint(quantiles).astype(np.int16)


_NOISE_TABLE = _noise_table(_NOISE_STD)


def render_frames(plan: ToyPlan, config: ToyWorldConfig, rng: np.random.Generator) -> np.ndarray:
    """The picture track: [T, size, size, 3] uint8 (object over background, plus pixel noise)."""
    masks = _shape_masks(plan.shape, object_positions(plan, config), config.size, config.object_scale)[..., None]
    colour = np.rint(np.asarray(COLOUR_RGB[plan.colour]) * plan.brightness).astype(np.int16)
    background = np.rint(np.asarray(plan.background_rgb)).astype(np.int16)
    frames = np.where(masks, colour, background)
    noise_index = np.frombuffer(rng.bytes(frames.size), dtype=np.uint8)
    frames += _NOISE_TABLE[noise_index].reshape(frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


def _pulse_envelope(sample_rate: int) -> np.ndarray:
    """One percussive pulse: raised-cosine attack, exponential decay, short fade: [P] float32."""
    t = np.arange(int(round(_PULSE_SECONDS * sample_rate))) / sample_rate
    attack = 0.5 - 0.5 * np.cos(np.pi * np.minimum(t / _PULSE_ATTACK, 1.0))
    decay = np.exp(-np.maximum(t - _PULSE_ATTACK, 0.0) / _PULSE_DECAY)
    fade = np.minimum((_PULSE_SECONDS - t) / 0.005, 1.0)
    return (attack * decay * fade).astype(np.float32)


def pulse_onsets(plan: ToyPlan, config: ToyWorldConfig) -> np.ndarray:
    """Onset times (s) of all pulses, shape [P] float64: in segment k, with period
    p = 1 / rate(direction_k), at start_k + (j + 1/2) p for every pulse that ends inside the
    segment (so a 2 s segment holds exactly 2 * rate pulses)."""
    seg = config.segment_seconds
    onsets = [np.zeros(0)]
    for k, direction in enumerate(plan.directions):
        period = 1.0 / PULSE_RATES[direction]
        count = max(0, int(np.floor((seg - _PULSE_SECONDS) / period - 0.5 + 1e-9)) + 1)
        onsets.append(k * seg + period * (np.arange(count) + 0.5))
    return np.concatenate(onsets)


def render_audio(plan: ToyPlan, config: ToyWorldConfig, rng: np.random.Generator) -> np.ndarray:
    """The soundtrack: [N] float32 in [-1, 1]; a continuous harmonic tone (pitch: shape,
    timbre: colour) gated by pulses (rate: direction), plus noise at 20 dB SNR."""
    sr, n = config.sample_rate, config.num_samples
    gate = np.zeros(n, dtype=np.float64)
    pulse = _pulse_envelope(sr)
    for onset in pulse_onsets(plan, config):
        i = int(round(onset * sr))
        j = min(i + len(pulse), n)
        gate[i:j] += pulse[: j - i]
    active = np.flatnonzero(gate)  # the tone is only computed where a pulse sounds
    phase = 2 * np.pi * BASE_FREQUENCIES[plan.shape] * active / sr
    tone = np.zeros(len(active), dtype=np.float64)
    for k, weight in enumerate(TIMBRES[plan.colour], start=1):
        if weight > 0 and k * BASE_FREQUENCIES[plan.shape] < 0.45 * sr:
            tone += weight * np.sin(k * phase)
    signal = np.zeros(n, dtype=np.float64)
    signal[active] = tone * gate[active]
    signal *= plan.gain / max(float(np.abs(signal).max()), 1e-9)
    rms = float(np.sqrt(np.mean(signal**2)))
    noise = rng.standard_normal(n) * rms / (10.0 ** (_AUDIO_SNR_DB / 20.0))
    return np.clip(signal + noise, -1.0, 1.0).astype(np.float32)


def render_toy_clip(index: int, config: ToyWorldConfig = ToyWorldConfig()) -> ToyClip:
    """Pure function of (config, index): frames [T, H, W, 3] uint8, audio [N] float32 in
    [-1, 1], captions [(start, end, text)] (one per segment), labels (shape, colour, directions)."""
    plan = plan_toy_clip(index, config)
    _, pixel_rng, audio_rng = _rngs(index, config)
    return ToyClip(
        index=index,
        frames=render_frames(plan, config, pixel_rng),
        audio=render_audio(plan, config, audio_rng),
        captions=list(plan.captions),
        shape=plan.shape,
        colour=plan.colour,
        directions=plan.directions,
        caption_shifts=plan.caption_shifts,
        caption_is_filler=plan.caption_is_filler,
    )


def write_toy_mp4(path: str | Path, frames: np.ndarray, audio: np.ndarray, fps: int, sample_rate: int) -> None:
    """Write frames [T, H, W, 3] uint8 and mono audio [N] float32 as H.264 + AAC in an mp4."""
    write_mp4(path, frames, audio, fps, sample_rate)


def _write_one(job: tuple[int, ToyWorldConfig, str]) -> tuple[int, list[tuple[float, float, str]], tuple]:
    """Render video ``index`` and write it to videos_dir atomically; return captions and labels."""
    index, config, videos_dir = job
    clip = render_toy_clip(index, config)
    final = Path(videos_dir) / f"{clip.video_id}.mp4"
    partial = final.with_name(f".{final.name}.partial")
    write_toy_mp4(partial, clip.frames, clip.audio, config.fps, config.sample_rate)
    os.replace(partial, final)
    return index, clip.captions, clip.labels


def _write_text_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8", newline="")
    os.replace(partial, path)


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    """CSV text (csv-module quoting, '\\n' line ends) for a header and its rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _check_manifest(manifest: Path, config: ToyWorldConfig) -> bool:
    """True if manifest exists and records ``config``; ValueError if it records another one."""
    if not manifest.exists():
        return False
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))["config"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{manifest} is not a valid toy-world manifest: {error}") from error
    wanted = asdict(config)
    names = sorted(set(wanted) | set(recorded))
    differing = [f"{n} (recorded {recorded.get(n)!r}, requested {wanted.get(n)!r})"
                 for n in names if recorded.get(n) != wanted.get(n)]
    if differing:
        raise ValueError(f"{manifest} records a different toy-world config; differing fields: "
                         + "; ".join(differing))
    return True


def _remove_stale_videos(videos_dir: Path, num_videos: int) -> None:
    """Delete partial files and toy videos beyond num_videos left by an earlier run."""
    for path in videos_dir.iterdir():
        match = re.fullmatch(r"toy_(\d+)\.mp4", path.name)
        if path.name.endswith(".partial") or (match and int(match.group(1)) >= num_videos):
            path.unlink()


def _render_all(config: ToyWorldConfig, videos_dir: Path, workers: int, progress: bool) -> list[tuple]:
    """Write every video (optionally in a process Pool); return [(index, captions, labels)] in order."""
    jobs = [(i, config, str(videos_dir)) for i in range(config.num_videos)]
    results: list[tuple] = []
    step = max(1, len(jobs) // 10)

    def _collect(iterator) -> None:
        for result in iterator:
            results.append(result)
            if progress and (len(results) % step == 0 or len(results) == len(jobs)):
                print(f"toy world: {len(results)}/{len(jobs)} videos", file=sys.stderr, flush=True)

    if workers > 1 and len(jobs) > 1:
        # fork where available: workers inherit the imported modules (re-importing versanet in
        # spawned workers costs seconds); they only use numpy and PyAV, never torch.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(min(workers, len(jobs))) as pool:
            _collect(pool.imap(_write_one, jobs, chunksize=max(1, min(16, len(jobs) // (4 * workers)))))
    else:
        _collect(map(_write_one, jobs))
    return results


def generate_toy_world(
    root: str | Path, config: ToyWorldConfig = ToyWorldConfig(), workers: int = 1, progress: bool = False
) -> Path:
    """Write the toy corpus to ``root`` (layout in the module docstring) and return ``root``.

    Idempotent: if root/manifest.json exists and records the same config, return at once
    without rewriting; if it records a different config, raise ValueError naming the file and
    the differing fields. Files are written in place one by one (each via a temporary name
    and an atomic rename); manifest.json comes last, so a run without it is regenerated.
    """
    root = Path(root)
    manifest = root / "manifest.json"
    if _check_manifest(manifest, config):
        return root
    videos_dir, splits_dir = root / "videos", root / "splits"
    videos_dir.mkdir(parents=True, exist_ok=True)
    splits_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_videos(videos_dir, config.num_videos)

    results = _render_all(config, videos_dir, workers, progress)
    caption_rows, label_rows = [], []
    for index, captions, (shape, colour, directions) in results:
        vid = toy_video_id(index)
        caption_rows += [[vid, f"{s:.3f}", f"{e:.3f}", text] for s, e, text in captions]
        label_rows.append([vid, shape, colour, "|".join(directions)])
    _write_text_atomic(root / "captions.csv", _csv_text(["video_id", "start", "end", "text"], caption_rows))
    label_header = ["video_id", "shape", "colour", "directions"]
    _write_text_atomic(root / "labels.csv", _csv_text(label_header, label_rows))
    ids = [toy_video_id(i) for i in range(config.num_videos)]
    _write_text_atomic(splits_dir / "train.txt", "".join(f"{v}\n" for v in ids[: config.num_train]))
    _write_text_atomic(splits_dir / "val.txt", "".join(f"{v}\n" for v in ids[config.num_train :]))
    _write_text_atomic(manifest, json.dumps(_manifest(config, len(caption_rows)), indent=2) + "\n")
    return root


def _manifest(config: ToyWorldConfig, num_captions: int) -> dict:
    """The manifest.json content: generator parameters, counts and format facts."""
    return {
        "format": _MANIFEST_FORMAT,
        "version": _MANIFEST_VERSION,
        "config": asdict(config),
        "counts": {"train": config.num_train, "val": config.num_val,
                   "videos": config.num_videos, "captions": num_captions},
        "frames_per_video": config.num_frames,
        "samples_per_video": config.num_samples,
        "video": {"codec": "h264", "pix_fmt": "yuv420p", **X264_OPTIONS, "gop": config.fps},
        "audio": {"codec": "aac", "layout": "mono", "bit_rate": AAC_BIT_RATE},
        "shapes": list(SHAPES),
        "colours": list(COLOURS),
        "directions": list(DIRECTIONS),
    }
