"""Decode time windows of a media file with PyAV: frames at a target fps and the audio of the same windows.

One container open per call, and one seek per *run* of nearby windows: the demuxer reads video and
audio packets of a run in a single pass (several evenly spaced evaluation clips of a short video
cost one pass over it, not one seek each). Frames are picked by timestamp (the decoded frame
nearest each target time ``start + i/fps``) and converted to RGB (optionally resized) in C by
libswscale; audio is mixed to mono float and resampled in C by libswresample. Timing uses each
frame's own ``pts``, so AAC priming samples and streams that start late are handled.

A source is a path, the file's bytes, or a binary file object (``av.open`` reads all three), so
WebDataset shards decode the original compressed bytes without temporary files.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Sequence, Union

import av
import numpy as np
from av.video.reformatter import VideoReformatter

MediaSource = Union[str, Path, bytes, BinaryIO]

#: windows further apart than this (seconds) get their own seek instead of decoding the gap
SEEK_GAP = 4.0
#: frames missing more than this many seconds before the declared end mean a truncated file
TRUNCATION_SLACK = 1.0


class MediaDecodeError(RuntimeError):
    """A media file that cannot be read; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class Clip:
    """A decoded window: ``frames [T, H, W, 3]`` uint8, ``audio [S]`` float32 mono (None without an audio stream).

    ``short``: the file is shorter than the window (by more than half a frame): its last frame repeats
    and its audio is zero-padded to fill the window.
    """

    frames: np.ndarray | None
    audio: np.ndarray | None
    start: float
    duration: float
    video_duration: float
    short: bool = False


@dataclass
class MediaInfo:
    """What the container header says: duration (s), streams, frame size (0 without video)."""

    duration: float
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    audio_rate: int = 0


def source_name(source: MediaSource, name: str | None = None) -> str:
    """How errors name a source: ``name`` when given, else the path, else ``<bytes>``."""
    if name is not None:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    return getattr(source, "name", None) or "<bytes>"


def open_media(source: MediaSource, name: str | None = None) -> av.container.InputContainer:
    """``av.open`` on a path, bytes or file object; :class:`MediaDecodeError` naming it when that fails."""
    label = source_name(source, name)
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            return av.open(io.BytesIO(bytes(source)))
        if isinstance(source, (str, Path)):
            return av.open(str(source))
        return av.open(source)
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as err:
        raise MediaDecodeError(label, f"cannot open: {err}") from err


def container_duration(container: av.container.InputContainer) -> float:
    """Duration in seconds from the container, else the longest stream, else 0."""
    if container.duration is not None:
        return container.duration / av.time_base
    best = 0.0
    for stream in container.streams:
        if stream.duration is not None and stream.time_base is not None:
            best = max(best, float(stream.duration * stream.time_base))
    return best


def probe(source: MediaSource, name: str | None = None) -> MediaInfo:
    """Header facts of a media file without decoding (raises :class:`MediaDecodeError` when it cannot be opened)."""
    with open_media(source, name) as container:
        v = container.streams.video[0] if container.streams.video else None
        a = container.streams.audio[0] if container.streams.audio else None
        return MediaInfo(
            duration=container_duration(container), has_video=v is not None, has_audio=a is not None,
            width=v.codec_context.width if v else 0, height=v.codec_context.height if v else 0,
            fps=float(v.average_rate) if v is not None and v.average_rate else 0.0,
            audio_rate=a.codec_context.sample_rate if a is not None else 0,
        )


def _stream_duration(stream: av.stream.Stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


def _resize_to_short_side(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    if short_side is None:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale / 2) * 2), max(1, round(height * scale / 2) * 2)


class _FramePicker:
    """Streams decoded frames and keeps, for each (sorted) target time, the nearest frame, converted once.

    Converted frames are written straight into one preallocated ``[U, H, W, 3]`` uint8 array (``rows``, U = the
    number of targets), by one reused libswscale context with one thread: ``VideoFrame.to_ndarray(format=...)``
    builds a new, multi-threaded context per frame and copies the pixels twice (into its own array, then into the
    stacked clip), which costs as much CPU time per clip as everything the transforms do.
    """

    def __init__(self, targets: np.ndarray, size: tuple[int, int] | None) -> None:
        self.targets = targets
        self.size = size
        self.index: list[int] = []  # per target reached so far: its frame's row in ``rows``
        self.rows: np.ndarray | None = None
        self.count = 0
        self.prev: tuple[float, av.VideoFrame, int | None] | None = None
        self.reformatter = VideoReformatter()

    @property
    def done(self) -> bool:
        return len(self.index) == len(self.targets)

    def _convert(self, frame: av.VideoFrame) -> int:
        """Write ``frame`` as RGB (resized to ``size``) into the next row; return the row."""
        width, height = self.size or (frame.width, frame.height)
        rgb = self.reformatter.reformat(frame, width=width, height=height, format="rgb24", threads=1)
        if self.rows is None:
            self.rows = np.empty((len(self.targets), height, width, 3), dtype=np.uint8)
        plane = rgb.planes[0]
        self.rows[self.count] = np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)[:, : width * 3].reshape(height, width, 3)
        self.count += 1
        return self.count - 1

    def push(self, time: float, frame: av.VideoFrame) -> None:
        converted: int | None = None
        while not self.done and time >= self.targets[len(self.index)]:
            target = self.targets[len(self.index)]
            if self.prev is not None and (target - self.prev[0]) < (time - target):
                if self.prev[2] is None:
                    self.prev = (self.prev[0], self.prev[1], self._convert(self.prev[1]))
                self.index.append(self.prev[2])
            else:
                converted = self._convert(frame) if converted is None else converted
                self.index.append(converted)
        self.prev = (time, frame, converted)

    def finish(self) -> bool:
        """Targets past the last frame repeat it (a clip that runs over the end of the video); False if nothing was decoded."""
        if self.prev is not None and not self.done:
            last = self.prev[2] if self.prev[2] is not None else self._convert(self.prev[1])
            while not self.done:
                self.index.append(last)
        return self.prev is not None

    def frames(self, order: np.ndarray) -> np.ndarray:
        """``[len(order), H, W, 3]``: the frames of targets ``order`` (a view of ``rows`` when that is all of them in turn)."""
        rows = np.asarray(self.index)[order]
        if np.array_equal(rows, np.arange(len(rows))):
            return self.rows[: len(rows)]
        return self.rows[rows]


def _mono_float(frame: av.AudioFrame, rate: int) -> np.ndarray | None:
    """The frame's samples as float32 ``[S]`` when it already is mono float at ``rate`` (nothing to resample), else None."""
    if frame.sample_rate != rate or frame.layout.nb_channels != 1 or frame.format.name not in ("flt", "fltp"):
        return None
    return frame.to_ndarray().reshape(-1)


def _window(chunks: list[np.ndarray], t0: float | None, start: float, duration: float, rate: int) -> np.ndarray:
    """Samples ``[start, start+duration)`` from a signal that begins at ``t0``; zero-padded where missing."""
    n = round(duration * rate)
    out = np.zeros(n, dtype=np.float32)
    if t0 is None or not chunks:
        return out
    signal = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    offset = round((start - t0) * rate)
    src_lo, dst_lo = max(offset, 0), max(-offset, 0)
    length = min(n - dst_lo, len(signal) - src_lo)
    if length > 0:
        out[dst_lo : dst_lo + length] = signal[src_lo : src_lo + length]
    return out


def fit_start(start: float | None, clip_duration: float, video_duration: float, train: bool, rng: np.random.Generator | None) -> float:
    """Clamp ``start`` so the window fits; None picks it (uniform at random when ``train``, else centred)."""
    room = max(video_duration - clip_duration, 0.0)
    if start is None:
        start = float((rng or np.random.default_rng()).uniform(0.0, room)) if train else room / 2
    return max(0.0, min(start, room))


def _runs(starts: list[float], clip_duration: float) -> list[list[int]]:
    """Window indices grouped into runs decoded in one pass (sorted by start, gaps below :data:`SEEK_GAP`)."""
    order = sorted(range(len(starts)), key=lambda i: starts[i])
    runs: list[list[int]] = []
    for i in order:
        if runs and starts[i] - (starts[runs[-1][-1]] + clip_duration) <= SEEK_GAP:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _decode_run(
    container: av.container.InputContainer, label: str, starts: list[float], num_frames: int, fps: float,
    audio_rate: int | None, with_video: bool, short_side: int | None, first: bool,
) -> tuple[list[np.ndarray] | None, tuple[list[np.ndarray], float | None] | None]:
    """Decode one run: the frames ``[num_frames, H, W, 3]`` of each window and the audio spanning the run."""
    vstream = container.streams.video[0] if (with_video and container.streams.video) else None
    astream = container.streams.audio[0] if (container.streams.audio and audio_rate) else None
    lo, hi = min(starts), max(starts) + num_frames / fps
    picker = None
    targets = np.concatenate([s + np.arange(num_frames) / fps for s in starts]) if vstream is not None else np.zeros(0)
    unique, inverse = np.unique(targets, return_inverse=True)
    if vstream is not None:
        vstream.thread_type = "AUTO"
        size = _resize_to_short_side(vstream.codec_context.width, vstream.codec_context.height, short_side)
        picker = _FramePicker(unique, None if short_side is None else size)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=audio_rate) if astream is not None else None
    resampled = False
    chunks: list[np.ndarray] = []
    t0: float | None = None
    audio_done = astream is None
    streams = [s for s in (vstream, astream) if s is not None]
    try:
        if lo > 0 or not first:
            container.seek(int(lo * av.time_base), backward=True, any_frame=False)
        for packet in container.demux(*streams) if streams else ():
            if packet.stream is vstream and picker is not None and picker.done:
                continue  # the window's frames are in; the demuxer still reads on for the audio
            if packet.stream is astream and audio_done:
                continue
            for frame in packet.decode():
                if frame.pts is None or frame.time_base is None:
                    continue
                time = float(frame.pts * frame.time_base)
                if packet.stream is vstream and picker is not None and not picker.done:
                    picker.push(time, frame)
                elif packet.stream is astream and not audio_done:
                    if time + frame.samples / frame.sample_rate < lo:
                        continue
                    samples = _mono_float(frame, audio_rate)
                    if samples is not None:
                        t0 = time if t0 is None else t0
                        chunks.append(samples)
                    else:
                        resampled = True
                        for out in resampler.resample(frame):
                            t0 = time if t0 is None else t0
                            chunks.append(out.to_ndarray().reshape(-1))
                    audio_done = time > hi
            if (picker is None or picker.done) and audio_done:
                break
        if resampled:
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except (av.FFmpegError, OSError, ValueError) as err:
        raise MediaDecodeError(label, f"decoding failed near {lo:.2f}s: {err}") from err
    frames = None
    if picker is not None:
        padded_from = picker.targets[len(picker.index)] if not picker.done else None
        if not picker.finish():
            raise MediaDecodeError(label, f"no decodable video frame at or after {lo:.2f}s (duration {container_duration(container):.2f}s)")
        declared = _stream_duration(vstream) or container_duration(container)
        if padded_from is not None and picker.prev is not None and padded_from < declared - TRUNCATION_SLACK:
            raise MediaDecodeError(label, f"truncated: frames stop at {picker.prev[0]:.2f}s but the video declares {declared:.2f}s")
        frames = [picker.frames(inverse[j * num_frames : (j + 1) * num_frames]) for j in range(len(starts))]
    return frames, ((chunks, t0) if astream is not None else None)


def read_clips(
    source: MediaSource,
    starts: Sequence[float | None] | Callable[[float], Sequence[float]],
    num_frames: int = 8,
    fps: float = 10.0,
    audio_rate: int | None = 16000,
    with_video: bool = True,
    short_side: int | None = None,
    train: bool = False,
    rng: np.random.Generator | None = None,
    name: str | None = None,
    decoder: str = "pyav",
) -> list[Clip]:
    """Decode several windows of ``num_frames`` frames at ``fps`` (and their mono audio) with one open.

    ``starts`` are window starts in seconds (None: random when ``train``, else centred), or a function
    of the video's duration returning them; each is clamped so the window fits when the video is long enough. Windows close together are decoded in one
    pass. Returns one :class:`Clip` per start, in the given order. ``decoder``: who decodes the frames (see
    :func:`resolve_decoder`; audio is always PyAV's).
    Raises :class:`MediaDecodeError` naming the file when it cannot be opened or holds no decodable frame.
    """
    label = source_name(source, name)
    duration = num_frames / fps
    on_gpu = with_video and resolve_decoder(decoder) == "nvdec"
    with open_media(source, name) as container:
        if with_video and not container.streams.video:
            raise MediaDecodeError(label, "no video stream")
        video_duration = container_duration(container)
        if callable(starts):
            starts = starts(video_duration)
        fitted = [fit_start(s, duration, video_duration, train, rng) for s in starts]
        clips: list[Clip | None] = [None] * len(fitted)
        gpu_frames = _nvdec_frames(source, fitted, num_frames, fps, short_side, label) if on_gpu else None
        for k, run in enumerate(_runs(fitted, duration)):
            run_starts = [fitted[i] for i in run]
            frames, audio = _decode_run(container, label, run_starts, num_frames, fps, audio_rate, with_video and not on_gpu, short_side, first=k == 0)
            for j, i in enumerate(run):
                clip_frames = gpu_frames[i] if gpu_frames is not None else frames[j] if frames is not None else None
                clip_audio = _window(audio[0], audio[1], fitted[i], duration, audio_rate) if audio is not None else None
                short = 0 < video_duration < duration - 0.5 / fps
                clips[i] = Clip(clip_frames, clip_audio, fitted[i], duration, video_duration, short)
    return clips  # type: ignore[return-value]


def read_clip(
    path: MediaSource,
    start: float | None = None,
    num_frames: int = 8,
    fps: float = 10.0,
    audio_rate: int | None = 16000,
    with_video: bool = True,
    short_side: int | None = None,
    train: bool = False,
    rng: np.random.Generator | None = None,
    name: str | None = None,
    decoder: str = "pyav",
) -> Clip:
    """Decode ``num_frames`` frames at ``fps`` and the mono audio of the same window from ``path``.

    Args:
        path: file path, the file's bytes, or a binary file object.
        start: window start in seconds; None picks it: uniformly at random when ``train`` (with
            ``rng``), else centred in the video. Clamped so the window fits when the video is long enough.
        audio_rate: resample audio to this rate; None skips audio.
        with_video: False skips frame decoding (audio-only use, e.g. a .wav file).
        short_side: resize frames so the shorter side has this many pixels, during conversion.
        name: how errors name a bytes source.
        decoder: ``pyav`` (CPU), ``nvdec`` (torchcodec on the GPU, PyAV when unavailable) or ``auto`` (see :func:`resolve_decoder`).

    Returns a :class:`Clip` with ``frames [num_frames, H, W, 3]`` and ``audio [round(num_frames/fps*audio_rate)]``
    (None when the file has no audio stream).
    Raises :class:`MediaDecodeError` naming the file when it cannot be opened or holds no decodable frame.
    """
    return read_clips(path, [start], num_frames, fps, audio_rate, with_video, short_side, train, rng, name, decoder)[0]


# ---------------------------------------------------------------------------- GPU decoding (optional)
#: who decodes video frames: PyAV on the CPU, torchcodec on an NVIDIA GPU's decoder (NVDEC), or the GPU when possible
DECODERS = ("pyav", "nvdec", "auto")


def nvdec_available() -> bool:
    """True when torchcodec is installed and a CUDA device is visible (torchcodec's CUDA decoding needs both)."""
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed, or installed without a usable FFmpeg
        return False
    import torch

    return torch.cuda.is_available()


def resolve_decoder(decoder: str) -> str:
    """The decoder that runs for a requested one: ``nvdec`` when asked for (or ``auto``) and available, else ``pyav``.

    Asking for ``nvdec`` where it is not available falls back to PyAV with a warning (once per process).
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, not {decoder!r}")
    if decoder == "pyav":
        return "pyav"
    if nvdec_available():
        return "nvdec"
    if decoder == "nvdec" and not _FALLBACK_WARNED:
        warnings.warn("decoder 'nvdec' needs torchcodec and a CUDA device; decoding with PyAV on the CPU instead", stacklevel=3)
        globals()["_FALLBACK_WARNED"] = True
    return "pyav"


_FALLBACK_WARNED = False


def nearest_frame_indices(targets: np.ndarray, average_fps: float, begin: float, num_frames: int) -> np.ndarray:
    """Index of the frame nearest each target time in a constant-frame-rate stream (PyAV's nearest-``pts`` rule).

    Frame ``i`` is shown from ``begin + i / average_fps``; a target half-way between two frames takes the later one
    (as the PyAV path does: a frame at distance ``d`` replaces the previous one unless that is strictly nearer).
    """
    return np.clip(np.floor((targets - begin) * average_fps + 0.5), 0, num_frames - 1).astype(np.int64)


def _nvdec_frames(source: MediaSource, starts: list[float], num_frames: int, fps: float, short_side: int | None, label: str) -> list[np.ndarray]:
    """Every window's frames ``[num_frames, H, W, 3]`` uint8, decoded by torchcodec on the GPU (one batched call), on the host.

    Frames are picked as the PyAV path picks them (:func:`nearest_frame_indices`), resized on the GPU when
    ``short_side`` is given (antialiased bilinear, as libswscale's default), then copied to the host: the
    transforms and the collate see the same arrays as with PyAV, and the CPU is spared the decoding.
    """
    from torchcodec.decoders import VideoDecoder
    from torchvision.transforms.v2 import functional as F

    try:
        media = source if not isinstance(source, Path) else str(source)
        decoder = VideoDecoder(media, dimension_order="NCHW", device="cuda", seek_mode="exact")
        meta = decoder.metadata
        targets = np.concatenate([s + np.arange(num_frames) / fps for s in starts])
        indices = nearest_frame_indices(targets, float(meta.average_fps), float(meta.begin_stream_seconds or 0.0), int(meta.num_frames))
        frames = decoder.get_frames_at(indices=indices.tolist()).data  # [N, 3, H, W] uint8 on the GPU
    except (RuntimeError, ValueError) as err:
        raise MediaDecodeError(label, f"GPU decoding failed: {err}") from err
    if short_side is not None:
        frames = F.resize(frames, list(_resize_to_short_side(frames.shape[-1], frames.shape[-2], short_side)[::-1]), antialias=True)
    host = frames.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return [host[j * num_frames : (j + 1) * num_frames] for j in range(len(starts))]
