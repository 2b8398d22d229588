"""Videos with audio tracks and time-stamped captions (HowTo100M layout): dataset and data modules.

Layout under ``root`` (what ``versanet toy-data`` writes, and HowTo100M's own shape)::

    videos/<video_id>.mp4          video with its audio track
    captions.csv | caption.json    video_id,start,end,text  (or HowTo100M's JSON)
    splits/train.txt, splits/val.txt   one video id per line (optional: see train_split)
    labels.csv                     optional: video_id,<label columns...> for probes

A sample is a dict: each modality's tensor (see its transform), ``mask[m]`` (bool ``[K]``),
``index`` (dataset index), ``label`` (label column -> class index, when labels exist) and
``bad_count`` (reads that failed before this sample, see :mod:`versanet.data.failures`).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from versanet.data.captions import Caption, read_captions
from versanet.data.datasets.base import ClipDataModule, ClipDataset, VideoItem, stable_fraction
from versanet.data.failures import TooManyBadSamples
from versanet.data.sampling import ClipSampler
from versanet.data.toy import ToyWorldConfig, generate_toy_world
from versanet.data.transforms import Corpus, ModalityTransform
from versanet.registry import register

__all__ = ["CaptionedVideoDataModule", "CaptionedVideoDataset", "HowTo100MDataModule", "VideoFolderDataModule", "TooManyBadSamples", "read_labels", "read_split"]

log = logging.getLogger("versanet.data")


def read_split(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_labels(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """``labels.csv`` -> ({video_id: {column: class index}}, {column: class names}); classes sorted by name."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in (rows[0].keys() if rows else []) if c != "video_id"]
    classes = {c: sorted({row[c] for row in rows}) for c in columns}
    index = {c: {name: i for i, name in enumerate(names)} for c, names in classes.items()}
    return {row["video_id"]: {c: index[c][row[c]] for c in columns} for row in rows}, classes


class CaptionedVideoDataset(ClipDataset):
    """Clips of ``num_frames`` frames at ``fps`` with the same window's audio and the K nearest captions.

    Train: a random caption, its tightest K-window of consecutive captions, a random clip inside
    the window's span (MIL-NCE sampling); videos without captions get a random clip and a False
    text mask. Eval: the centred clip (``eval_clips > 1``: evenly spaced clips, stacked) and the K
    captions nearest its centre, nearest first; captions past the video's end are never chosen.
    A file that cannot be decoded is logged with its path, counted, and replaced by another
    sample; past ``max_bad_fraction`` of the samples tried, :class:`TooManyBadSamples` stops the run.
    """

    def __init__(
        self,
        root: str | Path,
        video_ids: list[str],
        captions: dict[str, list[Caption]],
        transforms: dict[str, ModalityTransform],
        train: bool,
        num_frames: int = 8,
        fps: float = 10.0,
        audio_rate: int = 16000,
        num_candidates: int = 4,
        short_side: int | None = None,
        labels: dict[str, dict[str, int]] | None = None,
        video_dir: str = "videos",
        video_ext: str = ".mp4",
        seed: int = 0,
        max_bad_fraction: float = 0.05,
        name: str = "dataset",
        eval_clips: int = 1,
        missing_audio: str = "silence",
    ) -> None:
        self.video_ids, self.captions, self.labels = list(video_ids), captions, labels
        self.video_dir, self.video_ext = video_dir, video_ext
        root = Path(root)
        items = [
            VideoItem(vid, str(root / video_dir / f"{vid}{video_ext}"), (labels.get(vid, {}) if labels is not None else None), captions.get(vid, []))
            for vid in self.video_ids
        ]
        sampler = ClipSampler(num_frames, fps, audio_rate, short_side, eval_clips, 1, num_candidates, missing_audio)
        super().__init__(items, transforms, sampler, train, name=name, root=root, max_bad_fraction=max_bad_fraction, seed=seed)

    def path(self, index: int) -> Path:
        return Path(self.items[index].path)


@register("dataset")
class CaptionedVideoDataModule(ClipDataModule):
    """Videos + audio tracks + time-stamped captions (HowTo100M layout), or the generated toy world.

    Args:
        root: corpus folder (layout in the module docstring).
        transforms: modality -> transform; the keys are the batch keys the encoders read.
        captions: caption file (``.csv`` video_id,start,end,text or HowTo100M ``.json``), relative to root.
        train_split, val_split: files of video ids; ``train_split: null`` uses every video file under
            ``video_dir`` (minus the val ids); ``val_split: null`` holds out ``val_fraction`` of them.
        caption_errors: ``replace`` (invalid UTF-8 bytes replaced, bad rows skipped, each logged) or ``strict``.
        toy: generate the toy world into ``root`` first (once; skipped when already complete).
        num_frames, fps: clip length and frame rate; the audio covers the same window.
        short_side: resize frames while decoding (cheaper than resizing decoded full-size frames).
        eval_clips: evenly spaced clips per validation sample (1: the centred clip, no view axis).
    """

    def __init__(
        self,
        root: str,
        transforms: dict[str, ModalityTransform],
        captions: str = "captions.csv",
        train_split: str | None = "splits/train.txt",
        val_split: str | None = "splits/val.txt",
        labels: str | None = "labels.csv",
        video_dir: str = "videos",
        video_ext: str = ".mp4",
        num_frames: int = 8,
        fps: float = 10.0,
        audio_rate: int = 16000,
        short_side: int | None = None,
        batch_size: int = 32,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        toy: ToyWorldConfig | None = None,
        max_bad_fraction: float = 0.05,
        seed: int = 0,
        eval_clips: int = 1,
        missing_audio: str = "silence",
        val_fraction: float = 0.01,
        caption_errors: str = "replace",
        shards: str | None = None,
        samples_per_epoch: int | None = None,
    ) -> None:
        super().__init__(
            root, transforms, batch_size=batch_size, val_batch_size=val_batch_size, num_workers=num_workers, num_frames=num_frames,
            fps=fps, audio_rate=audio_rate, short_side=short_side, eval_clips=eval_clips, missing_audio=missing_audio,
            max_bad_fraction=max_bad_fraction, seed=seed, shards=shards, samples_per_epoch=samples_per_epoch,
        )
        self.kw = dict(num_frames=num_frames, fps=fps, audio_rate=audio_rate, short_side=short_side, video_dir=video_dir,
                       video_ext=video_ext, seed=seed, max_bad_fraction=max_bad_fraction, eval_clips=eval_clips, missing_audio=missing_audio)
        self.captions_file, self.labels_file = captions, labels
        self.train_split, self.val_split, self.val_fraction = train_split, val_split, val_fraction
        self.video_dir, self.video_ext, self.caption_errors = video_dir, video_ext, caption_errors
        self.toy = toy
        self.label_classes: dict[str, list[str]] = {}
        self._corpus: Corpus | None = None
        self._captions: dict[str, list[Caption]] | None = None

    def read_captions(self) -> dict[str, list[Caption]]:
        """The caption file (read once)."""
        if self._captions is None:
            path = self.root / self.captions_file
            self._captions = read_captions(path, errors=self.caption_errors) if path.is_file() or self.caption_errors == "strict" else {}
            if not path.is_file():
                log.warning("%s: caption file %s not found: no text", type(self).__name__, path)
        return self._captions

    def split_ids(self, split: str) -> list[str]:
        """Video ids of ``train`` or ``val`` (``test`` = ``val``): the split file, else every video file (see Args)."""
        split = "val" if split == "test" else split
        listed = self.train_split if split == "train" else self.val_split
        if listed is not None:
            return read_split(self.root / listed)
        folder = self.root / self.video_dir
        ids = sorted(p.stem for p in folder.glob(f"*{self.video_ext}") if not p.name.startswith(".")) if folder.is_dir() else []
        if split == "train" and self.val_split is not None:
            val = set(read_split(self.root / self.val_split))
        else:
            val = {v for v in ids if stable_fraction(v, self.seed) < self.val_fraction}
        return sorted(val) if split == "val" else [v for v in ids if v not in val]

    def corpus(self) -> Corpus:
        """Training captions (what a tokenizer may learn from)."""
        if self._corpus is None:
            caps = self.read_captions()
            train = set(self.split_ids("train"))
            self._corpus = Corpus(self.root, [c.text for vid, cs in caps.items() if vid in train for c in cs])
        return self._corpus

    def prepare_data(self) -> None:
        if self.toy is not None:
            generate_toy_world(self.root, self.toy, workers=max(1, self.num_workers), progress=True)
        for transform in self.transforms.values():
            transform.prepare(self.corpus())

    def setup(self, stage: str | None = None) -> None:
        for transform in self.transforms.values():
            transform.setup(self.corpus())
        self._sets.clear()
        self.dataset("train")
        self.dataset("val")

    def _labels(self) -> dict[str, dict[str, int]] | None:
        if self.labels_file and (self.root / self.labels_file).is_file():
            labels, self.label_classes = read_labels(self.root / self.labels_file)
            return labels
        return None

    def dataset(self, split: str) -> CaptionedVideoDataset:
        split = "val" if split == "test" else split
        if split not in self._sets:
            self._sets[split] = CaptionedVideoDataset(
                self.root, self.split_ids(split), self.read_captions(), self.transforms, train=split == "train",
                num_candidates=self.num_candidates, labels=self._labels(), name=f"{type(self).__name__} {split}", **self.kw,
            )
        return self._sets[split]  # type: ignore[return-value]

    def list_items(self, split: str) -> list[VideoItem]:
        return self.dataset(split).items

    def _loader(self, dataset: Dataset, batch_size: int, train: bool, collate_fn: Any = None) -> DataLoader:
        return DataLoader(
            dataset, batch_size=batch_size, shuffle=train, drop_last=train, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
        )

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()


@register("dataset")
class HowTo100MDataModule(CaptionedVideoDataModule):
    """HowTo100M: ``videos/<video_id>.mp4`` + the released ``caption.json`` (ASR captions); MMV/VATT's text corpus.

    Defaults follow the release: ``caption.json``; no split files (every video is used for training,
    ``val_fraction`` of them held out by a hash of the id); no labels. Clips of 32 frames at 10 fps.
    """

    def __init__(
        self, root: str, transforms: dict[str, ModalityTransform], captions: str = "caption.json", train_split: str | None = None,
        val_split: str | None = None, labels: str | None = None, num_frames: int = 32, fps: float = 10.0, val_fraction: float = 0.001, **kwargs,
    ) -> None:
        super().__init__(root, transforms, captions=captions, train_split=train_split, val_split=val_split, labels=labels,
                         num_frames=num_frames, fps=fps, val_fraction=val_fraction, **kwargs)


@register("dataset")
class VideoFolderDataModule(CaptionedVideoDataModule):
    """Your own folder of videos and a captions CSV (``video_id,start,end,text``): pretraining data, no other files needed.

    Every ``video_ext`` file under ``root/video_dir`` is used; ``val_fraction`` of them (by a hash of
    the id) are held out for validation, unless split files are given. Videos without captions get
    a False text mask.
    """

    def __init__(
        self, root: str, transforms: dict[str, ModalityTransform], captions: str = "captions.csv", video_dir: str = "videos",
        video_ext: str = ".mp4", train_split: str | None = None, val_split: str | None = None, labels: str | None = None,
        val_fraction: float = 0.05, **kwargs,
    ) -> None:
        super().__init__(root, transforms, captions=captions, video_dir=video_dir, video_ext=video_ext, train_split=train_split,
                         val_split=val_split, labels=labels, val_fraction=val_fraction, **kwargs)
