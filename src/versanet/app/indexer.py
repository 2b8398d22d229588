"""``versanet embed``: a folder of videos -> an index folder, incrementally.

Re-running on the same folder embeds only files that are new or whose size or modification time
changed, and forgets files that are gone. Unreadable files are skipped, counted, named (and
remembered, so an unchanged one is not retried). Each file is committed to the database as soon as
its last clip is embedded: an interruption (Ctrl-C, a crash, a full disk) loses at most the files
in flight, and the next run picks up from there. Decoding runs in DataLoader workers while the
main process runs the model (on the GPU when there is one).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from versanet.app.clips import VIDEO_EXTENSIONS, ClipGrid, FileStat, scan_videos, training_clip_geometry
from versanet.app.embedder import ClipEncoder, DecodedClips, FileChunk, first_item
from versanet.app.store import ClipStore, VideoIndexError
from versanet.checkpoint import load_pretrained, safe_load
from versanet.data.loaders import make_loader
from versanet.downstream.common import checkpoint_fingerprint

log = logging.getLogger("versanet.app")


@dataclass
class EmbedReport:
    """What one ``embed`` run did."""

    embedded: list[str] = field(default_factory=list)
    clips: int = 0
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    bad: dict[str, str] = field(default_factory=dict)  # new this run: path -> reason
    known_bad: dict[str, str] = field(default_factory=dict)  # unchanged files found unreadable before
    skipped: dict[str, str] = field(default_factory=dict)  # passed over by the scan (links out of the folder)
    seconds: float = 0.0
    interrupted: bool = False

    def format(self, max_names: int = 20) -> str:
        rate = f" ({self.clips / self.seconds:.1f} clips/s)" if self.seconds > 0 and self.clips else ""
        lines = [
            f"embedded {len(self.embedded)} files ({self.clips} clips) in {self.seconds:.1f} s{rate}; "
            f"{self.unchanged} unchanged, {len(self.removed)} removed, {len(self.bad) + len(self.known_bad)} unreadable"
        ]
        for title, items in (("unreadable (skipped)", self.bad), ("still unreadable (unchanged, skipped)", self.known_bad), ("not indexed", self.skipped)):
            if items:
                lines.append(f"{title}: {len(items)}")
                lines += [f"  {path}: {reason}" for path, reason in list(items.items())[:max_names]]
                if len(items) > max_names:
                    lines.append(f"  ... and {len(items) - max_names} more")
        if self.interrupted:
            lines.append("interrupted: every file listed as embedded is saved; run the same command again to continue")
        return "\n".join(lines)


def _index_settings(ckpt: Path, encoder: ClipEncoder, grid: ClipGrid, video_dir: Path) -> dict[str, Any]:
    stat = ckpt.stat()
    return {
        "video_dir": str(video_dir), "checkpoint": str(ckpt), "checkpoint_sha256_16": checkpoint_fingerprint(ckpt),
        "checkpoint_size": stat.st_size, "checkpoint_mtime_ns": stat.st_mtime_ns, "grid": grid.config(), **encoder.describe(),
    }


def check_settings(store: ClipStore, settings: dict[str, Any]) -> None:
    """Refuse to mix vectors of another checkpoint, space or clip grid into an index (the message says what differs)."""
    if store.meta("checkpoint_sha256_16") is None:
        return
    keys = ("checkpoint_sha256_16", "space", "dim", "modalities", "grid", "video_dir")
    different = [k for k in keys if store.meta(k) != settings[k]]
    if different:
        was = ", ".join(f"{k}={store.meta(k)!r}" for k in different)
        now = ", ".join(f"{k}={settings[k]!r}" for k in different)
        raise VideoIndexError(
            f"the index in {store.folder} was built with {was}; this run has {now}. Vectors from different settings cannot be "
            "searched together: pass --rebuild to re-embed everything, or use another --index folder"
        )


def resolve_grid(ckpt: Path, every: float, num_frames: int | None, fps: float | None, audio_rate: int | None) -> ClipGrid:
    """The clip grid: explicit values, else the training clip length recorded with the checkpoint (see :func:`training_clip_geometry`)."""
    if not (num_frames and fps):
        found = training_clip_geometry(ckpt, (safe_load(ckpt, "pretraining checkpoint").get("versanet") or {}).get("clip"))
        num_frames, fps = num_frames or found.get("num_frames"), fps or found.get("fps")
    if not (num_frames and fps):
        raise ValueError(
            f"{ckpt} does not say how long its training clips were (no versanet.clip block, no LightningCLI config.yaml beside "
            "its run): pass --num_frames and --fps (the num_frames and fps of the data it was trained on)"
        )
    return ClipGrid(int(num_frames), float(fps), every, audio_rate)


def embed_folder(
    video_dir: str | Path,
    index_dir: str | Path,
    ckpt: str | Path | None = None,
    every: float = 4.0,
    num_frames: int | None = None,
    fps: float | None = None,
    modalities: list[str] | None = None,
    space: str | None = None,
    batch_size: int = 32,
    workers: int = 2,
    device: str = "auto",
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS,
    rebuild: bool = False,
    progress: bool = True,
) -> EmbedReport:
    """Embed every video under ``video_dir`` into the index at ``index_dir`` (see the module docstring).

    ``ckpt`` may be left out when the index exists (its checkpoint is reused).
    """
    video_dir = Path(video_dir).resolve()
    index_dir = Path(index_dir)
    store = ClipStore(index_dir, create=True)
    try:
        if ckpt is None:
            ckpt = store.meta("checkpoint")
            if ckpt is None:
                raise ValueError(f"{index_dir} holds no index yet: pass --ckpt CHECKPOINT")
        ckpt = Path(ckpt).resolve()
        encoder = ClipEncoder(load_pretrained(ckpt), space=space, modalities=modalities, device=device)
        audio = encoder.transforms.get("audio") if "audio" in encoder.modalities else None
        grid = resolve_grid(ckpt, every, num_frames, fps, getattr(audio, "sample_rate", None))
        settings = _index_settings(ckpt, encoder, grid, video_dir)
        if rebuild:
            store.clear()
        else:
            check_settings(store, settings)
        store.set_meta(settings)
        return _run(store, video_dir, index_dir, encoder, grid, batch_size, workers, extensions, progress)
    finally:
        store.close()


def _run(
    store: ClipStore, video_dir: Path, index_dir: Path, encoder: ClipEncoder, grid: ClipGrid, batch_size: int, workers: int,
    extensions: tuple[str, ...], progress: bool,
) -> EmbedReport:
    started = time.perf_counter()
    report = EmbedReport()
    scan = scan_videos(video_dir, extensions, exclude=(index_dir,))
    report.skipped = scan.skipped
    known = store.files()
    report.removed = sorted(set(known) - set(scan.videos))
    store.remove_files(report.removed)
    todo = [p for p, stat in scan.videos.items() if p not in known or known[p][0] != stat]
    bad = store.bad_files()
    for p in scan.videos:
        if p in known and known[p][0] == scan.videos[p]:
            if known[p][1] == "bad":
                report.known_bad[p] = bad.get(p, "")
            else:
                report.unchanged += 1
    if todo:
        try:
            _embed_files(store, video_dir, todo, scan.videos, encoder, grid, batch_size, workers, progress, report)
        except KeyboardInterrupt:
            report.interrupted = True
    report.seconds = time.perf_counter() - started
    if not report.interrupted:
        from versanet.app.vectors import sync

        for modality in store.modalities():
            sync(store, modality)
    return report


def _embed_files(
    store: ClipStore, video_dir: Path, todo: list[str], stats: dict[str, FileStat], encoder: ClipEncoder, grid: ClipGrid,
    batch_size: int, workers: int, progress: bool, report: EmbedReport,
) -> None:
    stream = DecodedClips(video_dir, todo, grid, encoder.transforms, encoder.modalities)
    loader = make_loader(stream, 1, train=False, num_workers=min(workers, len(todo)), collate_fn=first_item)
    pending: list[FileChunk] = []  # decoded, waiting for a model batch
    done: dict[str, list[tuple[FileChunk, dict[str, np.ndarray]]]] = {}  # embedded chunks of files not yet complete
    bar = tqdm(total=len(todo), unit="file", desc="embed", disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def flush() -> None:
        if not pending:
            return
        inputs = {m: torch.cat([c.inputs[m] for c in pending]) for m in encoder.modalities}
        vectors = encoder.embed_clips(inputs)
        offset = 0
        for chunk in pending:
            n = len(chunk.moments)
            done.setdefault(chunk.path, []).append((chunk, {m: v[offset : offset + n] for m, v in vectors.items()}))
            offset += n
            if chunk.last:
                commit(chunk.path)
        pending.clear()

    def commit(path: str) -> None:
        parts = done.pop(path)
        moments = [m for c, _ in parts for m in c.moments]
        vectors = {m: np.concatenate([v[m] for _, v in parts]) for m in encoder.modalities}
        present = {m: np.concatenate([c.present[m].numpy() for c, _ in parts]) for m in encoder.modalities}
        report.clips += store.put_file(path, stats[path], parts[0][0].duration, moments, vectors, present)
        report.embedded.append(path)
        bar.update(1)
        bar.set_postfix(clips=report.clips, unreadable=len(report.bad), refresh=False)

    try:
        for chunk in loader:
            if chunk.error is not None:
                done.pop(chunk.path, None)
                pending[:] = [c for c in pending if c.path != chunk.path]
                report.bad[chunk.path] = chunk.error
                store.put_bad(chunk.path, stats[chunk.path], chunk.error)
                log.warning("embed: skipping unreadable file %s: %s", chunk.path, chunk.error)
                bar.update(1)
                continue
            pending.append(chunk)
            if sum(len(c.moments) for c in pending) >= batch_size:
                flush()
        flush()
    finally:
        bar.close()
