"""Which files of a folder are videos, and how one video is cut into the moments a search returns.

A *moment* is a span ``[start, end)`` of a video, ``every`` seconds long (the last one runs to the
end). It is represented by one model clip (``num_frames`` frames at ``fps``, the length the
checkpoint was trained with) centred in it, so each moment's vector describes its middle. With
``every`` at or below the clip length the clips overlap or tile the video; above it they sample it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: containers and extensions PyAV (FFmpeg) reads that hold video; other files in the folder are ignored
VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".wmv", ".asf", ".mpg", ".mpeg", ".m2v", ".ts",
    ".mts", ".m2ts", ".3gp", ".3g2", ".ogv", ".ogg", ".vob", ".mxf", ".dv", ".f4v", ".gif",
)


@dataclass(frozen=True)
class FileStat:
    """What identifies one version of a file: a change of size or modification time means re-embedding it."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Scan:
    """A folder's videos (relative POSIX path -> :class:`FileStat`) and what was passed over, with why."""

    videos: dict[str, FileStat]
    skipped: dict[str, str]


def scan_videos(root: str | Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS, exclude: tuple[Path, ...] = ()) -> Scan:
    """Every file under ``root`` (recursively) whose extension is in ``extensions``, keyed by its path relative to ``root``.

    Hidden files and folders (``.name``) and the folders in ``exclude`` (the index itself, when it lies
    inside the video folder) are not entered. A symbolic link is followed only when its target lies
    inside ``root``; others are listed in ``skipped`` (the web page serves only files inside the folder).
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"video folder not found: {root}")
    excluded = {p.resolve() for p in exclude}
    wanted = {e.lower() for e in extensions}
    videos: dict[str, FileStat] = {}
    skipped: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() not in excluded)
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or path.suffix.lower() not in wanted:
                continue
            rel = path.relative_to(root).as_posix()
            real = path.resolve()
            if not real.is_relative_to(root):
                skipped[rel] = f"a link to {real}, outside the folder"
                continue
            try:
                stat = real.stat()
            except OSError as err:
                skipped[rel] = f"cannot stat: {err}"
                continue
            videos[rel] = FileStat(stat.st_size, stat.st_mtime_ns)
    return Scan(videos, skipped)


@dataclass(frozen=True)
class ClipGrid:
    """How videos are cut: moments of ``every`` seconds, each embedded from a ``num_frames``-frame clip at ``fps`` in its middle."""

    num_frames: int
    fps: float
    every: float = 4.0
    audio_rate: int | None = 16000

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.fps <= 0 or self.every <= 0:
            raise ValueError(f"num_frames, fps and every must be positive, got {self.num_frames}, {self.fps}, {self.every}")

    @property
    def clip_seconds(self) -> float:
        return self.num_frames / self.fps

    def moments(self, duration: float) -> list[tuple[float, float]]:
        """``[(start, end)]`` covering ``[0, duration)`` in steps of ``every``; a last piece shorter than half a step joins the one before."""
        if duration <= 0:
            return [(0.0, self.clip_seconds)]
        count = max(1, math.ceil(duration / self.every - 1e-9))
        bounds = [min(k * self.every, duration) for k in range(count)] + [duration]
        if count > 1 and bounds[-1] - bounds[-2] < self.every / 2:
            del bounds[-2]
        return [(round(a, 3), round(b, 3)) for a, b in zip(bounds[:-1], bounds[1:])]

    def clip_start(self, start: float, end: float, duration: float) -> float:
        """Start of the clip centred in the moment ``[start, end)``, kept inside the video."""
        centre = (start + end) / 2
        return max(0.0, min(centre - self.clip_seconds / 2, duration - self.clip_seconds))

    def config(self) -> dict[str, Any]:
        return {"num_frames": self.num_frames, "fps": self.fps, "every": self.every, "audio_rate": self.audio_rate}


def training_clip_geometry(ckpt: str | Path, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{num_frames, fps}`` the checkpoint was trained with, where it can be found; ``{}`` when it cannot.

    Looked for in the checkpoint's ``versanet.clip`` block (``stored``), then in the LightningCLI
    ``config.yaml`` of the run that wrote it (``<run>/config.yaml`` beside ``<run>/checkpoints/``).
    """
    found = {k: stored[k] for k in ("num_frames", "fps") if stored and stored.get(k)}
    if len(found) == 2:
        return found
    config = Path(ckpt).resolve().parent.parent / "config.yaml"
    if config.is_file():
        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            return found
        args = (data.get("data") or {}).get("init_args") if isinstance(data.get("data"), dict) else None
        if isinstance(args, dict):
            found = {**{k: args[k] for k in ("num_frames", "fps") if args.get(k)}, **found}
    return found
