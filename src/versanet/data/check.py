"""``versanet data check``: inspect a corpus before a long run.

Reports files found, missing files, unreadable or truncated files, videos without video frames
(zero-length), videos without audio, clips shorter than the clip length, captions outside the
video's duration, caption rows whose video does not exist, captions dropped at read time (empty,
or ending before they start), caption-file problems (invalid UTF-8, bad rows), and files in the
media folder that are not read (not a media container, or a second container of the same id),
each with a count and the first offenders by path. Files are checked in parallel processes; a
check demuxes every packet (cheap: no decoding) to find truncation and decodes the first frame.

The command exits with status 1 when it found a problem (:data:`INFO` kinds aside: handled by the
``missing_audio``/``short_clips`` policies), so scripts can gate a run on it; ``--strict false`` only reports.
"""

from __future__ import annotations

import multiprocessing
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from versanet.data.captions import Caption, captions_outside, dropped_captions, read_captions_report
from versanet.data.datasets.base import AUDIO_EXTS, VIDEO_EXTS, FileIndex
from versanet.data.video_io import MediaDecodeError, container_duration, open_media

#: problem kinds in report order, with their headings
KINDS = {
    "missing": "listed but not found",
    "unreadable": "unreadable (cannot be opened or decoded)",
    "truncated": "truncated (packets end before the declared duration, or demuxing fails)",
    "zero_length": "zero-length (no video frame)",
    "no_audio": "videos without an audio stream",
    "short": "shorter than the clip length",
    "captions_outside": "captions outside the video's duration",
    "captions_no_video": "caption rows for videos that do not exist",
    "captions_empty": "empty captions (dropped)",
    "captions_reversed": "captions ending before they start (dropped)",
    "caption_file": "caption file problems",
    "not_read": "files in the media folder that are not read (not a media container, or a second container of the same id)",
}
#: kinds that are reported but handled by a policy (missing_audio: silence, short_clips: pad), not problems
INFO = ("no_audio", "short")


@dataclass
class CheckReport:
    """What :func:`check_corpus` found: file counts and ``problems[kind] = [(path, detail), ...]``."""

    name: str
    files: int = 0
    checked: int = 0
    clip_seconds: float = 0.0
    problems: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))

    strict: bool = True

    def count(self, kind: str) -> int:
        return len(self.problems.get(kind, []))

    @property
    def problem_count(self) -> int:
        """Reported offenders of every kind that is a problem (not :data:`INFO`)."""
        return sum(self.count(k) for k in self.problems if k not in INFO)

    @property
    def exit_code(self) -> int:
        """1 when problems were found (and ``strict``), else 0: the ``versanet data check`` exit status."""
        return int(self.strict and self.problem_count > 0)

    def format(self, max_report: int = 10) -> str:
        lines = [f"{self.name}: {self.files} files listed, {self.checked} checked (clip length {self.clip_seconds:.2f} s)"]
        for kind, heading in KINDS.items():
            found = self.problems.get(kind, [])
            lines.append(f"  {heading}: {len(found)}")
            for path, detail in found[:max_report]:
                lines.append(f"    {path}: {detail}")
            if len(found) > max_report:
                lines.append(f"    ... and {len(found) - max_report} more")
        bad = sum(self.count(k) for k in ("unreadable", "truncated", "zero_length"))
        lines.append(f"  => {bad} of {self.checked} files cannot be used; they are skipped and counted during training")
        if self.problem_count:
            lines.append(f"  => {self.problem_count} problem(s) found" + ("" if self.strict else " (--strict false: exit status 0)"))
        return "\n".join(lines)


def check_file(job: tuple[str, float, bool, list[tuple[float, float, str]]]) -> list[tuple[str, str, str]]:
    """Problems ``(kind, path, detail)`` of one media file (``job = (path, clip_seconds, expect_video, captions)``)."""
    path, clip_seconds, expect_video, caps = job
    if Path(path).suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
        from versanet.data.datasets.images import decode_image

        try:
            decode_image(path, path)
        except MediaDecodeError as err:
            return [("unreadable", path, err.reason)]
        return []
    if Path(path).stat().st_size == 0:
        return [("zero_length", path, "empty file (0 bytes)")]
    try:
        container = open_media(path)
    except MediaDecodeError as err:
        return [("unreadable", path, err.reason)]
    out: list[tuple[str, str, str]] = []
    with container:
        duration = container_duration(container)
        vstream = container.streams.video[0] if container.streams.video else None
        astream = container.streams.audio[0] if container.streams.audio else None
        if duration == 0 and (vstream is None or vstream.frames == 0) and astream is None:
            return [("zero_length", path, "the container holds no frames (duration 0)")]
        if expect_video and vstream is None:
            return [("unreadable", path, "no video stream")]
        main = vstream or astream
        if main is None:
            return [("unreadable", path, "no audio or video stream")]
        packets, last, first_frame = 0, 0.0, False
        try:
            for packet in container.demux(main):
                if packet.size == 0 or packet.pts is None:
                    continue
                packets += 1
                end = packet.pts + (packet.duration or 0)
                last = max(last, float(end * packet.time_base))
                if not first_frame:
                    first_frame = bool(packet.decode())
        except (av.FFmpegError, OSError, ValueError) as err:
            return [("truncated", path, f"demuxing failed after {packets} packets ({last:.2f}s of {duration:.2f}s): {err}")]
        if packets == 0 or (vstream is not None and not first_frame):
            what = "video frame" if vstream is not None else "audio"
            if duration > 0:
                return [("truncated", path, f"no decodable {what} although the file declares {duration:.2f}s")]
            return [("zero_length", path, f"no decodable {what} (declared duration 0)")]
        if duration > 0 and last < 0.9 * duration - 0.5:
            out.append(("truncated", path, f"packets end at {last:.2f}s but the file declares {duration:.2f}s"))
        if vstream is not None and astream is None:
            out.append(("no_audio", path, "no audio stream"))
        length = min(duration, last) if duration > 0 else last
        if length + 1e-3 < clip_seconds:
            out.append(("short", path, f"{length:.2f}s < clip length {clip_seconds:.2f}s"))
        outside = captions_outside([Caption(*c) for c in caps], length)
        if outside:
            first = outside[0]
            out.append(("captions_outside", path, f"{len(outside)} caption(s) outside 0-{length:.2f}s, e.g. {first.start:.2f}-{first.end:.2f}s {first.text[:40]!r}"))
    return out


def data_section(path: Path) -> Any:
    """The ``data`` section of a config: a top-level ``data:`` (a mapping, or a nested file relative to the config),
    or the file itself when it is a data-module file (``class_path`` at the top)."""
    import yaml

    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    node = config.get("data") if "data" in config else (config if "class_path" in config else None)
    if node is None:
        raise ValueError(f"{path}: no `data` section")
    return _resolve_files(node, path.parent)


def _resolve_files(node: Any, base: Path) -> Any:
    """Nested config files (``data: x.yaml``, ``datamodules: [a.yaml, ...]``) read relative to the file naming them."""
    import yaml

    if isinstance(node, str) and node.endswith((".yaml", ".yml")):
        nested = base / node
        if not nested.is_file():
            raise FileNotFoundError(f"config file {node!r} not found (looked for {nested})")
        return _resolve_files(yaml.safe_load(nested.read_text(encoding="utf-8")) or {}, nested.parent)
    if isinstance(node, dict):
        return {k: _resolve_files(v, base) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_files(v, base) for v in node]
    return node


def load_datamodule(target: str) -> Any:
    """A data module from a config YAML (its ``data`` section) or from a corpus folder (layout detected)."""
    from versanet import registry

    registry.load_builtin()
    import versanet.data.captioned_video  # noqa: F401 - registers
    import versanet.data.datasets as ds

    path = Path(target)
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        from jsonargparse import ArgumentParser
        from lightning.pytorch import LightningDataModule

        parser = ArgumentParser(exit_on_error=False)
        parser.add_subclass_arguments(LightningDataModule, "data")
        cfg = parser.parse_object({"data": data_section(path)})
        instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
        return instantiate(cfg).data
    if not path.is_dir():
        raise FileNotFoundError(f"versanet data check: {target} is neither a config file nor a folder")
    from versanet.data.captioned_video import CaptionedVideoDataModule, VideoFolderDataModule

    detect = [
        ("ucfTrainTestlist", ds.UCF101DataModule), ("testTrainMulti_7030_splits", ds.HMDB51DataModule), ("meta/esc50.csv", ds.ESC50DataModule),
        ("class_labels_indices.csv", ds.AudioSetDataModule), ("MSRVTT_JSFUSION_test.csv", ds.MSRVTTDataModule),
        ("youcookii_annotations_trainval.json", ds.YouCook2DataModule), ("crosstask_release", ds.CrossTaskDataModule),
        ("tasks_primary.txt", ds.CrossTaskDataModule), ("JPEGImages", ds.VOC2007DataModule), ("annotations/train.csv", ds.KineticsDataModule),
    ]
    for marker, cls in detect:
        if (path / marker).exists():
            return cls(str(path), {})
    captions = next((c for c in ("captions.csv", "caption.json", "raw_caption.json") if (path / c).is_file()), "captions.csv")
    if (path / "splits" / "train.txt").is_file():
        return CaptionedVideoDataModule(str(path), {}, captions=captions, labels=None,
                                        val_split="splits/val.txt" if (path / "splits" / "val.txt").is_file() else None)
    return VideoFolderDataModule(str(path), {}, captions=captions)


def check_corpus(dm: Any, workers: int = 2, splits: tuple[str, ...] = ("train", "val", "test"), strict: bool = True) -> CheckReport:
    """Check every file a data module lists (splits that cannot be listed are reported, not fatal); a mixed module's corpora each."""
    if hasattr(dm, "datamodules"):
        parts = [check_corpus(child, workers, splits, strict) for child in dm.datamodules]
        report = CheckReport(f"{type(dm).__name__} of " + " + ".join(p.name for p in parts), strict=strict,
                             clip_seconds=max((p.clip_seconds for p in parts), default=0.0))
        for part in parts:
            report.files, report.checked = report.files + part.files, report.checked + part.checked
            for kind, found in part.problems.items():
                report.problems[kind] += found
        return report
    if hasattr(dm, "_load"):
        dm._load()
    clip_kw = getattr(dm, "clip_kw", {})
    clip_seconds = clip_kw.get("num_frames", 8) / clip_kw.get("fps", 10.0)
    report = CheckReport(f"{type(dm).__name__} under {dm.root}", clip_seconds=clip_seconds, strict=strict)
    items: dict[str, Any] = {}
    for split in splits:
        try:
            for item in dm.list_items(split):
                items.setdefault(item.path, item)
        except (FileNotFoundError, NotImplementedError) as err:
            report.problems["missing"].append((split, f"split not available: {err}"))
    for paths in getattr(dm, "missing", {}).values():
        for p in paths:
            report.problems["missing"].append((p, "file not found"))
    _check_captions(dm, report)
    for index in [v for v in vars(dm).values() if isinstance(v, FileIndex)]:
        for path in index.skipped:
            report.problems["not_read"].append((str(path), f"not a media container versanet reads ({', '.join(VIDEO_EXTS + AUDIO_EXTS)})"))
        for ignored, used in index.duplicates:
            report.problems["not_read"].append((str(ignored), f"same id as {used.name}, which is read instead"))
    jobs = [(p, clip_seconds, Path(p).suffix.lower() not in AUDIO_EXTS, [(c.start, c.end, c.text) for c in it.captions]) for p, it in sorted(items.items()) if Path(p).is_file()]
    report.files = len(items)
    report.checked = len(jobs)
    if workers > 1 and len(jobs) > 1:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(min(workers, len(jobs))) as pool:
            results = pool.map(check_file, jobs, chunksize=max(1, len(jobs) // (8 * workers)))
    else:
        results = [check_file(j) for j in jobs]
    for found in results:
        for kind, path, detail in found:
            report.problems[kind].append((path, detail))
    return report


def _check_captions(dm: Any, report: CheckReport) -> None:
    """Caption-file problems, dropped captions, and caption rows whose video does not exist."""
    captions_file = getattr(dm, "captions_file", None)
    path = dm.root / captions_file if captions_file else None
    if path is None or not path.is_file():
        return
    _, problems = read_captions_report(path, report_dropped=False)
    report.problems["caption_file"] += [(str(path), p.split(": ", 1)[-1]) for p in problems]
    for kind, rows in dropped_captions(path).items():
        report.problems[kind] += [(vid, f"{cap.start:.2f}-{cap.end:.2f}s {cap.text[:40]!r} in {path.name}") for vid, cap in rows]
    files = getattr(dm, "files", None)
    captions = getattr(dm, "captions", None)
    if isinstance(files, FileIndex) and isinstance(captions, dict):
        dropped = {vid for rows in dropped_captions(path).values() for vid, _ in rows}
        for vid in sorted((set(captions) | dropped) - set(files.by_stem)):
            report.problems["captions_no_video"].append((vid, f"{len(captions.get(vid, []))} caption(s) in {path.name}, no video file under {files.folder}"))


def data_check(target: str, max_report: int = 10, workers: int = 2, strict: bool = True) -> CheckReport:
    """Check a corpus before training: missing/unreadable/truncated/short files, videos without audio, caption problems, files not read.

    Exits with status 1 when it found a problem (videos without audio and short clips are reported but
    handled by the ``missing_audio``/``short_clips`` policies).

    Args:
        target: a config YAML (its ``data`` section, nested files read relative to it) or a corpus folder (layout detected).
        max_report: offenders listed per kind.
        workers: processes checking files in parallel.
        strict: exit with status 1 when problems are found (false: report only).
    """
    dm = load_datamodule(target)
    report = check_corpus(dm, workers=workers, strict=strict)
    print(report.format(max_report))
    return report
