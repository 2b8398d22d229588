"""Decode a time window of a video file with PyAV: frames at a target fps and the audio of the same window.

One container open and one seek per clip: the demuxer reads video and audio packets of the window
in a single pass. Frames are picked by timestamp (the decoded frame nearest each target time
``start + i/fps``) and converted to RGB (optionally resized) in C by libswscale; audio is mixed to
mono float and resampled in C by libswresample. Timing uses each frame's own ``pts``, so AAC
priming samples and streams that start late are handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


class MediaDecodeError(RuntimeError):
    """A media file that cannot be read; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class Clip:
    """A decoded window: ``frames [T, H, W, 3]`` uint8, ``audio [S]`` float32 mono (None without an audio stream)."""

    frames: np.ndarray | None
    audio: np.ndarray | None
    start: float
    duration: float
    video_duration: float


def _duration(container: av.container.InputContainer) -> float:
    if container.duration is not None:
        return container.duration / av.time_base
    for stream in container.streams:
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
    return 0.0


def _resize_to_short_side(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    if short_side is None:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale / 2) * 2), max(1, round(height * scale / 2) * 2)


class _FramePicker:
    """Streams decoded frames and keeps, for each target time, the nearest frame (converted once)."""

    def __init__(self, targets: np.ndarray, size: tuple[int, int] | None) -> None:
        self.targets = targets
        self.size = size
        self.out: list[np.ndarray] = []
        self.prev: tuple[float, av.VideoFrame] | None = None

    @property
    def done(self) -> bool:
        return len(self.out) == len(self.targets)

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        if self.size is None:
            return frame.to_ndarray(format="rgb24")
        return frame.reformat(width=self.size[0], height=self.size[1], format="rgb24").to_ndarray()

    def push(self, time: float, frame: av.VideoFrame) -> None:
        while not self.done and time >= self.targets[len(self.out)]:
            target = self.targets[len(self.out)]
            use_prev = self.prev is not None and (target - self.prev[0]) < (time - target)
            self.out.append(self._convert(self.prev[1] if use_prev else frame))
        self.prev = (time, frame)

    def finish(self) -> list[np.ndarray]:
        """Targets past the last frame repeat it (a clip that runs over the end of the video)."""
        if self.prev is not None:
            last = self._convert(self.prev[1]) if not self.done else None
            while not self.done:
                self.out.append(last)
        return self.out


def read_clip(
    path: str | Path,
    start: float | None = None,
    num_frames: int = 8,
    fps: float = 10.0,
    audio_rate: int | None = 16000,
    with_video: bool = True,
    short_side: int | None = None,
    train: bool = False,
    rng: np.random.Generator | None = None,
) -> Clip:
    """Decode ``num_frames`` frames at ``fps`` and the mono audio of the same window from ``path``.

    Args:
        start: window start in seconds; None picks it: uniformly at random when ``train`` (with
            ``rng``), else centred in the video. Clamped so the window fits when the video is long enough.
        audio_rate: resample audio to this rate; None skips audio.
        with_video: False skips frame decoding (audio-only use).
        short_side: resize frames so the shorter side has this many pixels, during conversion.

    Returns a :class:`Clip` with ``frames [num_frames, H, W, 3]`` and ``audio [round(num_frames/fps*audio_rate)]``.
    Raises :class:`MediaDecodeError` naming the file when it cannot be opened or holds no decodable frame.
    """
    duration = num_frames / fps
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise MediaDecodeError(path, f"cannot open: {err}") from err
    with container:
        vstream = container.streams.video[0] if container.streams.video else None
        astream = container.streams.audio[0] if (container.streams.audio and audio_rate) else None
        if with_video and vstream is None:
            raise MediaDecodeError(path, "no video stream")
        video_duration = _duration(container)
        if start is None:
            room = max(video_duration - duration, 0.0)
            start = float((rng or np.random.default_rng()).uniform(0.0, room)) if train else room / 2
        start = max(0.0, min(start, max(video_duration - duration, 0.0)))
        end = start + duration

        picker = None
        if with_video and vstream is not None:
            vstream.thread_type = "AUTO"
            size = _resize_to_short_side(vstream.codec_context.width, vstream.codec_context.height, short_side)
            picker = _FramePicker(start + np.arange(num_frames) / fps, None if short_side is None else size)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=audio_rate) if astream is not None else None
        audio_chunks: list[np.ndarray] = []
        audio_t0: float | None = None
        audio_done = astream is None

        streams = [s for s in (vstream if picker else None, astream) if s is not None]
        try:
            if start > 0:
                container.seek(int(start * av.time_base), backward=True, any_frame=False)
            for packet in container.demux(*streams) if streams else ():
                for frame in packet.decode():
                    if frame.pts is None or frame.time_base is None:
                        continue
                    time = float(frame.pts * frame.time_base)
                    if packet.stream is vstream and picker is not None and not picker.done:
                        picker.push(time, frame)
                    elif packet.stream is astream and not audio_done:
                        if time + frame.samples / frame.sample_rate < start:
                            continue
                        for out in resampler.resample(frame):
                            if audio_t0 is None:
                                audio_t0 = time
                            audio_chunks.append(out.to_ndarray().reshape(-1))
                        if time > end:
                            audio_done = True
                if (picker is None or picker.done) and audio_done:
                    break
            if resampler is not None and audio_t0 is not None:
                audio_chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
        except (av.FFmpegError, OSError, ValueError) as err:
            raise MediaDecodeError(path, f"decoding failed near {start:.2f}s: {err}") from err

        frames = None
        if picker is not None:
            decoded = picker.finish()
            if not decoded:
                raise MediaDecodeError(path, f"no decodable video frame at or after {start:.2f}s (duration {video_duration:.2f}s)")
            frames = np.stack(decoded)
        audio = None
        if astream is not None:
            audio = _window(audio_chunks, audio_t0, start, duration, audio_rate)
    return Clip(frames, audio, start, duration, video_duration)


def _window(chunks: list[np.ndarray], t0: float | None, start: float, duration: float, rate: int) -> np.ndarray:
    """Samples ``[start, start+duration)`` from a signal that begins at ``t0``; zero-padded where missing."""
    n = round(duration * rate)
    out = np.zeros(n, dtype=np.float32)
    if t0 is None or not chunks:
        return out
    signal = np.concatenate(chunks)
    offset = round((start - t0) * rate)
    src_lo, dst_lo = max(offset, 0), max(-offset, 0)
    length = min(n - dst_lo, len(signal) - src_lo)
    if length > 0:
        out[dst_lo : dst_lo + length] = signal[src_lo : src_lo + length]
    return out
