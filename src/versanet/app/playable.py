"""Which indexed videos a browser plays as they are, and short H.264 excerpts of the moments in those it cannot.

The index holds every container PyAV opens (``.avi``, ``.mkv``, MPEG-4 Part 2, ...), but a browser's
``<video>`` element plays only a few: MP4/MOV with H.264, VP9 or AV1 video (AAC, MP3 or Opus audio), and
WebM/Ogg with VP8/VP9/AV1/Theora video (Vorbis or Opus audio). The page plays those from the file itself,
seeking to the moment; for any other file the server decodes the moment (plus :data:`EXCERPT_TAIL`
seconds after it) and encodes it once as H.264 + AAC in an mp4, kept next to the index.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import av

from versanet.data.mp4_writer import write_mp4
from versanet.data.video_io import MediaDecodeError, open_media, probe, read_clip

#: container (PyAV format name) -> the video and audio codecs a browser decodes in it
BROWSER_FORMATS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "mov,mp4,m4a,3gp,3g2,mj2": (frozenset({"h264", "vp9", "av1"}), frozenset({"aac", "mp3", "opus"})),
    "matroska,webm": (frozenset({"vp8", "vp9", "av1"}), frozenset({"vorbis", "opus"})),
    "ogg": (frozenset({"theora", "vp8"}), frozenset({"vorbis", "opus"})),
}
#: seconds of video after the moment's end that an excerpt keeps
EXCERPT_TAIL = 8.0
#: an excerpt's frame rate at most, and its frames' shorter side at most (pixels)
EXCERPT_MAX_FPS = 30
EXCERPT_MAX_SHORT_SIDE = 480
EXCERPT_AUDIO_RATE = 48000


@lru_cache(maxsize=4096)
def _playable(path: str, mtime_ns: int) -> bool:
    if Path(path).suffix.lower() == ".mkv":  # Chromium plays WebM's subset of Matroska, but not from .mkv reliably
        return False
    try:
        with open_media(path) as container:
            video, audio = BROWSER_FORMATS.get(container.format.name, (frozenset(), frozenset()))
            return (bool(container.streams.video) and all(s.codec_context.name in video for s in container.streams.video)
                    and all(s.codec_context.name in audio for s in container.streams.audio))
    except (MediaDecodeError, av.FFmpegError, OSError):
        return False


def browser_playable(path: str | Path) -> bool:
    """Whether a browser's ``<video>`` plays ``path`` as it is (container and every stream's codec; cached per file version)."""
    try:
        return _playable(str(path), os.stat(path).st_mtime_ns)
    except OSError:
        return False


def write_excerpt(source: Path, start: float, end: float, out: Path) -> Path:
    """Decode ``source`` from ``start`` to ``end + EXCERPT_TAIL`` (clamped to the file) into an H.264 + AAC mp4 at ``out``.

    The moment starts at the excerpt's time 0.

    Written to a temporary name and renamed, so a concurrent reader never sees half a file.
    Raises :class:`MediaDecodeError` naming the file when it cannot be decoded.
    """
    info = probe(source)
    fps = min(EXCERPT_MAX_FPS, max(1, round(info.fps or EXCERPT_MAX_FPS)))
    stop = min(end + EXCERPT_TAIL, info.duration) if info.duration > 0 else end + EXCERPT_TAIL
    num_frames = max(1, round((stop - start) * fps))
    short = min(info.width, info.height) if info.width and info.height else None
    clip = read_clip(source, start, num_frames=num_frames, fps=fps, audio_rate=EXCERPT_AUDIO_RATE if info.has_audio else None,
                     short_side=min(short, EXCERPT_MAX_SHORT_SIDE) if short else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    write_mp4(partial, clip.frames, clip.audio, fps, EXCERPT_AUDIO_RATE)
    os.replace(partial, out)
    return out
