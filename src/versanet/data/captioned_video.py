"""Captioned video corpora (the HowTo100M layout): videos with audio tracks and time-stamped captions.

Layout under ``root``::

    videos/<video_id>.<container>  video with its audio track, in any container FFmpeg opens (mp4, mkv,
                                   webm, avi, mov, ...: :data:`~versanet.data.datasets.base.VIDEO_EXTS`);
                                   other files there are skipped and named by ``versanet data check``
    captions.csv | caption.json    video_id,start,end,text  (or HowTo100M's released JSON)
    splits/train.txt, splits/val.txt   optional: one video id per line (else a hash of the id holds out val)
    labels.csv                     optional: video_id,<label columns...> for probes

These modules only list :class:`~versanet.data.datasets.base.VideoItem` s (file, captions, labels):
decoding, MIL-NCE caption sampling, transforms, the failure policy and the loaders are the shared
:class:`~versanet.data.datasets.base.ClipDataModule`'s. A sample is a dict: each modality's tensor
(see its transform), ``mask[m]`` (bool ``[K]``), ``index``, ``label`` (label column -> class index,
when labels exist), ``bad_count``/``bad_files``/``short_files`` (see :mod:`versanet.data.failures`).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from versanet.data.captions import Caption, read_captions
from versanet.data.datasets.base import VIDEO_EXTS, ClipDataModule, FileIndex, VideoItem, read_lines, stable_fraction
from versanet.data.failures import DataNotFound, TooManyBadSamples
from versanet.data.toy import ToyWorldConfig, generate_toy_world
from versanet.data.transforms import ModalityTransform
from versanet.registry import register

__all__ = [
    "CaptionedVideoCorpus", "CaptionedVideoDataModule", "HowTo100MDataModule", "VideoFolderDataModule", "VideoStillsDataModule",
    "TooManyBadSamples", "read_labels", "read_split",
]

log = logging.getLogger("versanet.data")


def read_split(path: Path) -> list[str]:
    """Video ids of a split file, one per line (clear error naming the file when it is missing)."""
    return read_lines(path)


def read_labels(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """``labels.csv`` -> ({video_id: {column: class index}}, {column: class names}); classes sorted by name."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in (rows[0].keys() if rows else []) if c != "video_id"]
    classes = {c: sorted({row[c] for row in rows}) for c in columns}
    index = {c: {name: i for i, name in enumerate(names)} for c, names in classes.items()}
    return {row["video_id"]: {c: index[c][row[c]] for c in columns} for row in rows}, classes


class CaptionedVideoCorpus(ClipDataModule):
    """The reader of the captioned-video layout (module docstring); the registered modules below set its defaults.

    Args:
        root: corpus folder.
        transforms: modality -> transform; the keys are the batch keys the encoders read.
        captions: caption file (``.csv`` video_id,start,end,text or HowTo100M ``.json``), relative to root.
        train_split, val_split: files of video ids; ``train_split: null`` uses every video under
            ``video_dir`` (minus the val ids); ``val_split: null`` holds out ``val_fraction`` of them by a
            hash of the id. ``test`` is ``val``.
        labels: ``labels.csv`` (optional; ``label`` = {column: class index}).
        video_dir: the media folder (searched recursively; any container in ``VIDEO_EXTS``).
        val_fraction: held out for validation when there is no ``val_split``.
        caption_errors: ``replace`` (invalid UTF-8 bytes replaced, bad rows skipped, each logged) or ``strict``.
        **kwargs: the clip, loader and failure settings of :class:`~versanet.data.datasets.base.ClipDataModule`.
    """

    def __init__(
        self, root: str, transforms: dict[str, ModalityTransform], captions: str = "captions.csv", train_split: str | None = "splits/train.txt",
        val_split: str | None = "splits/val.txt", labels: str | None = "labels.csv", video_dir: str = "videos", val_fraction: float = 0.01,
        caption_errors: str = "replace", **kwargs: Any,
    ) -> None:
        super().__init__(root, transforms, **kwargs)
        self.captions_file, self.labels_file = captions, labels
        self.train_split, self.val_split, self.val_fraction = train_split, val_split, val_fraction
        self.video_dir, self.caption_errors = video_dir, caption_errors
        self.label_classes: dict[str, list[str]] = {}
        self.captions: dict[str, list[Caption]] = {}
        self.labels: dict[str, dict[str, int]] | None = None

    def read_metadata(self) -> None:
        path = self.root / self.captions_file
        if path.is_file() or self.caption_errors == "strict":
            self.captions = read_captions(path, errors=self.caption_errors)
        else:
            log.warning("%s: caption file %s not found: no text", type(self).__name__, path)
        if self.labels_file and (self.root / self.labels_file).is_file():
            self.labels, self.label_classes = read_labels(self.root / self.labels_file)
        self.files = FileIndex(self.root / self.video_dir, VIDEO_EXTS)

    def read_captions(self) -> dict[str, list[Caption]]:
        """The caption file's usable captions per video (read once; dropped rows are logged)."""
        self._load()
        return self.captions

    def split_ids(self, split: str) -> list[str]:
        """Video ids of ``train`` or ``val`` (``test`` = ``val``): the split file, else every video file (see Args)."""
        self._load()
        split = "val" if split == "test" else split
        listed = self.train_split if split == "train" else self.val_split
        if listed is not None:
            return read_split(self.root / listed)
        ids = sorted(self.files.by_stem)
        if split == "train" and self.val_split is not None:
            val = set(read_split(self.root / self.val_split))
        else:
            val = {v for v in ids if stable_fraction(v, self.seed) < self.val_fraction}
        return sorted(val) if split == "val" else [v for v in ids if v not in val]

    def list_items(self, split: str) -> list[VideoItem]:
        ids = self.split_ids(split)
        folder = self.root / self.video_dir
        items = []
        for vid in ids:
            path = self.files.find(vid)
            label = self.labels.get(vid, {}) if self.labels is not None else None
            items.append(VideoItem(vid, str(path) if path else str(folder / vid), label, self.captions.get(vid, [])))
        items = self.existing(items, "val" if split == "test" else split)
        if split == "train" and not items:
            where = f"{folder} does not exist" if not folder.is_dir() else f"no video file under {folder} ({len(ids)} ids listed)"
            raise DataNotFound(f"{type(self).__name__}: no training videos: {where} (set --data.init_args.video_dir or the split files)")
        return items


@register("dataset")
class CaptionedVideoDataModule(CaptionedVideoCorpus):
    """Videos + audio tracks + time-stamped captions with split files and ``labels.csv`` (the toy world's layout, HowTo100M-shaped folders).

    Args (besides :class:`CaptionedVideoCorpus`'s):
        toy: write the toy world into ``root`` first (once; skipped when already complete). The toy
            world is an ordinary corpus in this layout: everything after writing it is the general path.
        num_frames, fps: clip length and frame rate (8 frames at 10 fps here); the audio covers the same window.
    """

    def __init__(self, root: str, transforms: dict[str, ModalityTransform], toy: ToyWorldConfig | None = None, num_frames: int = 8, fps: float = 10.0, **kwargs: Any) -> None:
        super().__init__(root, transforms, num_frames=num_frames, fps=fps, **kwargs)
        self.toy = toy

    def prepare_data(self) -> None:
        if self.toy is not None:
            generate_toy_world(self.root, self.toy, workers=max(1, self.num_workers), progress=True)
        super().prepare_data()


@register("dataset")
class HowTo100MDataModule(CaptionedVideoCorpus):
    """HowTo100M as released: ``videos/<video_id>.<container>`` + ``caption.json`` (ASR captions); MMV/VATT's text corpus.

    Defaults follow the release: ``caption.json``; no split files (every video is used for training,
    ``val_fraction`` of them held out by a hash of the id); no labels. Clips of 32 frames at 10 fps.
    """

    def __init__(
        self, root: str, transforms: dict[str, ModalityTransform], captions: str = "caption.json", train_split: str | None = None,
        val_split: str | None = None, labels: str | None = None, num_frames: int = 32, fps: float = 10.0, val_fraction: float = 0.001, **kwargs: Any,
    ) -> None:
        super().__init__(root, transforms, captions=captions, train_split=train_split, val_split=val_split, labels=labels,
                         num_frames=num_frames, fps=fps, val_fraction=val_fraction, **kwargs)


@register("dataset")
class VideoFolderDataModule(CaptionedVideoCorpus):
    """Your own folder of videos (any container) and a captions CSV (``video_id,start,end,text``): pretraining data, no other files needed.

    Every video under ``root/video_dir`` is used; ``val_fraction`` of them (by a hash of the id) are
    held out for validation, unless split files are given. Videos without captions get a False text mask.
    """

    def __init__(
        self, root: str, transforms: dict[str, ModalityTransform], captions: str = "captions.csv", train_split: str | None = None,
        val_split: str | None = None, labels: str | None = None, val_fraction: float = 0.05, **kwargs: Any,
    ) -> None:
        super().__init__(root, transforms, captions=captions, train_split=train_split, val_split=val_split, labels=labels,
                         val_fraction=val_fraction, **kwargs)


@register("dataset")
class VideoStillsDataModule(CaptionedVideoCorpus):
    """Still images of a captioned video corpus (e.g. the toy world), labelled by a ``labels.csv`` column: image data for deflation.

    Video ``v`` gives ``frames_per_video`` stills at ``(i + 0.5) * frame_spacing`` seconds, decoded on
    demand; a sample is ``{"image": [3, crop, crop], "mask": {"image": [1]}, "label": int (-1 without a
    label), "index"}`` through the ``image`` transform (default :class:`~versanet.data.datasets.images.ImageTransform`).

    Args (besides :class:`CaptionedVideoCorpus`'s):
        frames_per_video, frame_spacing: stills per video and their spacing in seconds.
        label_column: the ``labels.csv`` column used as the label.
    """

    def __init__(
        self, root: str, transforms: dict[str, ModalityTransform] | None = None, frames_per_video: int = 4, frame_spacing: float = 1.0,
        label_column: str = "shape", batch_size: int = 64, **kwargs: Any,
    ) -> None:
        from versanet.data.datasets.images import ImageTransform

        kwargs.update(num_frames=1, fps=25.0, audio_rate=None)
        super().__init__(root, transforms or {"image": ImageTransform()}, batch_size=batch_size, **kwargs)
        self.frames_per_video, self.frame_spacing, self.label_column = frames_per_video, frame_spacing, label_column

    def read_metadata(self) -> None:
        super().read_metadata()
        self.class_names = self.label_classes.get(self.label_column, [])

    def list_items(self, split: str) -> list[VideoItem]:
        items = []
        for video in super().list_items(split):
            label = video.label.get(self.label_column, -1) if isinstance(video.label, dict) else -1
            for i in range(self.frames_per_video):
                t = (i + 0.5) * self.frame_spacing
                items.append(VideoItem(f"{video.key}@{t:g}", video.path, label, segment=(t, t)))
        return items
