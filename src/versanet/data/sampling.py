"""Clip, view and caption sampling shared by every video/audio dataset.

Readers differ only in how they list files, splits and labels; all of them turn one listed item
into model inputs through :class:`ClipSampler` (which windows to decode, which captions go with
them, which crops) and :func:`apply_transforms` (per-modality transforms, views stacked).

Window choice inside a segment ``[lo, hi)`` (the whole video unless a dataset gives a segment):
- train: one window, start uniform in ``[lo, max(hi - clip, lo)]`` (MIL-NCE caption sampling when
  captions are used, see :mod:`versanet.data.captions`);
- eval, ``eval_clips = N``: N=1 is the centred window; N>1 are N windows whose starts are evenly
  spaced from ``lo`` to ``hi - clip`` (dmvr's ``sample_linspace_sequence``: first and last clip
  touch the segment ends);
- per second (CrossTask): one window centred on every second ``s + 0.5``.
Views: ``eval_clips x eval_crops``, clip-major (view ``v = clip * M + crop``). Crops are ``M``
squares of the frame's short side evenly spaced along its long side (M=3: left/top, centre,
right/bottom), cut before the transform, whose eval path then resizes and centre-crops each square;
M=1 leaves the frame to the transform's own centre crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from versanet.data.captions import Caption, nearest_captions, sample_train_window
from versanet.data.transforms import ModalityTransform, RawClip
from versanet.data.video_io import Clip, MediaDecodeError, MediaSource, read_clips

MISSING_AUDIO = ("silence", "skip")
SHORT_CLIPS = ("pad", "skip")


def train_start(lo: float, hi: float, clip: float, rng: np.random.Generator) -> float:
    """Uniform start in ``[lo, max(hi - clip, lo)]``."""
    return float(rng.uniform(lo, max(hi - clip, lo)))


def even_starts(lo: float, hi: float, clip: float, n: int) -> list[float]:
    """``n`` window starts evenly spaced over ``[lo, hi - clip]``; ``n = 1`` is the centred window."""
    room = max(hi - lo - clip, 0.0)
    if n == 1:
        return [lo + room / 2]
    return [float(lo + room * i / (n - 1)) for i in range(n)]


def per_second_starts(duration: float, clip: float, max_seconds: int | None = None) -> list[float]:
    """One window centred on each whole second ``s + 0.5`` of a ``duration``-second video (at least one)."""
    seconds = max(1, int(np.floor(duration + 1e-6)))
    if max_seconds is not None:
        seconds = min(seconds, max_seconds)
    return [s + 0.5 - clip / 2 for s in range(seconds)]


def crop_squares(height: int, width: int, m: int) -> list[tuple[int, int, int]]:
    """``m`` squares ``(top, left, size)`` of side ``min(height, width)`` evenly spaced along the long side."""
    size = min(height, width)
    if m == 1:
        return [((height - size) // 2, (width - size) // 2, size)]
    offsets = [round((max(height, width) - size) * i / (m - 1)) for i in range(m)]
    return [(o, 0, size) if height > width else (0, o, size) for o in offsets]


@dataclass
class ClipSampler:
    """How a dataset turns one media file into decoded views (:class:`RawClip` s).

    Args:
        num_frames, fps: clip length and frame rate (the clip lasts ``num_frames / fps`` s).
        audio_rate: audio resampled to this rate (the audio covers the same window).
        short_side: resize frames while decoding.
        eval_clips, eval_crops: views at evaluation (``V = eval_clips * eval_crops``).
        num_candidates: captions per clip (K) for text transforms.
        missing_audio: ``silence`` (no audio stream: zeros and a False audio mask) or ``skip``
            (treat the file as unreadable: it is counted and replaced).
        short_clips: a file shorter than the clip: ``pad`` (its last frame repeats, its audio is
            zero-padded; the sample reports the file in ``short_files``, counted by ``DataHealth``) or
            ``skip`` (treat it as unreadable: counted once, remembered and replaced).
    """

    num_frames: int = 8
    fps: float = 10.0
    audio_rate: int | None = 16000
    short_side: int | None = None
    eval_clips: int = 1
    eval_crops: int = 1
    num_candidates: int = 1
    missing_audio: str = "silence"
    short_clips: str = "pad"

    def __post_init__(self) -> None:
        if self.missing_audio not in MISSING_AUDIO:
            raise ValueError(f"missing_audio must be one of {MISSING_AUDIO}, got {self.missing_audio!r}")
        if self.short_clips not in SHORT_CLIPS:
            raise ValueError(f"short_clips must be one of {SHORT_CLIPS}, got {self.short_clips!r}")
        if self.eval_clips < 1 or self.eval_crops < 1:
            raise ValueError(f"eval_clips and eval_crops must be >= 1, got {self.eval_clips}, {self.eval_crops}")

    @property
    def clip_seconds(self) -> float:
        return self.num_frames / self.fps

    def views(self, train: bool) -> int:
        """Views per sample: 1 in training, ``eval_clips * eval_crops`` in evaluation."""
        return 1 if train else self.eval_clips * self.eval_crops

    def starts(self, train: bool, lo: float, hi: float | None, rng: np.random.Generator) -> list[float | None] | Callable[[float], list[float]]:
        """Window starts in the segment ``[lo, hi)``; ``hi=None`` is the whole video (evaluation starts are
        then a function of its duration, known once the file is open)."""
        clip = self.clip_seconds
        if train:
            return [None] if hi is None else [train_start(lo, hi, clip, rng)]
        if hi is None:
            return lambda duration: even_starts(lo, duration, clip, self.eval_clips)
        return even_starts(lo, hi, clip, self.eval_clips)

    def decode(
        self, source: MediaSource, name: str, needs: frozenset[str], train: bool, rng: np.random.Generator,
        segment: tuple[float, float] | None = None, starts: list[float] | Callable[[float], list[float]] | None = None,
        captions: list[Caption] | None = None, query: str | None = None, video_id: str = "",
    ) -> list[RawClip]:
        """Decode the views of one item and attach its captions.

        ``segment``: ``(lo, hi)`` seconds to sample inside (default: the whole video); ``starts``:
        explicit window starts (overrides the sampling); ``captions``: time-stamped captions (the K
        nearest, or MIL-NCE windows in training); ``query``: one fixed caption (retrieval).
        Raises :class:`MediaDecodeError` for an unreadable file, or a missing audio stream under ``skip``.
        """
        caps = list(captions or [])
        chosen: list[int] = []
        if starts is None:
            if train and caps and "captions" in needs and segment is None:
                start, chosen = sample_train_window(caps, self.num_candidates, self.clip_seconds, float("inf"), rng)
                starts = [start]
            elif segment is not None:
                starts = self.starts(train, segment[0], segment[1], rng)
        clips = self._read(source, name, needs, train, rng, starts)
        if "audio" in needs and self.audio_rate and clips[0].audio is None and self.missing_audio == "skip":
            raise MediaDecodeError(name, "no audio stream (missing_audio: skip)")
        if self.short_clips == "skip" and any(c.short for c in clips):
            raise MediaDecodeError(name, f"shorter than the clip ({clips[0].video_duration:.2f}s < {self.clip_seconds:.2f}s; short_clips: skip)")
        raws = []
        for clip in clips:
            texts = [query] if query is not None else self._captions(caps, chosen, clip.start, clip.video_duration)
            raw = RawClip(video_id, clip.start, clip.duration, train, clip.frames, clip.audio, self.audio_rate, texts, clip.short)
            raws.extend(self._crops(raw, train))
        return raws

    def _read(self, source: MediaSource, name: str, needs: frozenset[str], train: bool, rng: np.random.Generator, starts: Any) -> list[Clip]:
        audio_rate = self.audio_rate if "audio" in needs else None
        if starts is None:
            starts = self.starts(train, 0.0, None, rng)
        return read_clips(source, starts, self.num_frames, self.fps, audio_rate, "frames" in needs, self.short_side, train, rng, name)

    def _captions(self, caps: list[Caption], chosen: list[int], start: float, video_duration: float) -> list[str]:
        """Texts for a decoded window; captions outside the video (past its end) are never chosen."""
        if not caps:
            return []
        inside = [i for i, c in enumerate(caps) if c.start < video_duration + 1e-3 and c.end > 0]
        if chosen and all(i in inside for i in chosen):
            return [caps[i].text for i in chosen]
        if not inside:
            return []
        sub = [caps[i] for i in inside]
        return [sub[i].text for i in nearest_captions(sub, start, start + self.clip_seconds, self.num_candidates)]

    def _crops(self, raw: RawClip, train: bool) -> list[RawClip]:
        m = 1 if train else self.eval_crops
        if m == 1 or raw.frames is None:
            return [raw] * m
        h, w = raw.frames.shape[1:3]
        out = []
        for top, left, size in crop_squares(h, w, m):
            frames = np.ascontiguousarray(raw.frames[:, top : top + size, left : left + size])
            out.append(RawClip(raw.video_id, raw.start, raw.duration, raw.train, frames, raw.audio, raw.audio_rate, raw.captions, raw.padded))
        return out


def apply_transforms(
    transforms: dict[str, ModalityTransform], raws: list[RawClip], stack: bool, single: frozenset[str] = frozenset()
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Each transform on each view.

    Returns ``{m: [*input]}`` (one view) or ``{m: [V, *input]}`` (``stack``); masks ``[K]`` per view,
    stacked to ``[V]`` when K = 1, else ``[V, K]``. Modalities in ``single`` are transformed once (view 0)
    and never stacked (a retrieval query caption).
    """
    inputs: dict[str, Tensor] = {}
    masks: dict[str, Tensor] = {}
    for modality, transform in transforms.items():
        if modality in single or not stack:
            inputs[modality], masks[modality] = transform(raws[0])
            continue
        outs = [transform(raw) for raw in raws]
        inputs[modality] = torch.stack([o[0] for o in outs])
        view_masks = [o[1].reshape(-1) for o in outs]
        masks[modality] = torch.stack([m[0] if m.numel() == 1 else m for m in view_masks])
    return inputs, masks


def needs_of(transforms: dict[str, ModalityTransform]) -> frozenset[str]:
    """What the transforms need decoded (``frames``, ``audio``, ``captions``)."""
    return frozenset().union(*(t.needs for t in transforms.values())) if transforms else frozenset()
