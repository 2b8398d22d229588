"""Audio corpora: ESC-50 (single-label, 5 folds) and AudioSet (multi-label evaluation, and pretraining without text).

ESC-50: ``audio/*.wav`` (5 s, 44.1 kHz) and ``meta/esc50.csv`` (``filename,fold,target,category,esc10,src_file,take``).
``test`` = fold ``fold``; train = the other four; ``val`` holds out ``val_fraction`` of the training
recordings by ``src_file`` (clips cut from one freesound recording stay together), or with
``val_fraction: 0`` is the test fold. Labels: ``target`` (0-49), names from ``category``.

AudioSet: segment CSVs ``YTID, start_seconds, end_seconds, positive_labels`` (the release's
``balanced_train_segments.csv``, ``unbalanced_train_segments.csv``, ``eval_segments.csv``, with
their ``#`` header lines) and ``class_labels_indices.csv`` (``index,mid,display_name``). Clips are
found under ``video_dir`` by YouTube id (``<YTID>.mp4``, ``<YTID>_<start>_<end>.mp4``, .wav, ...).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from versanet.data.datasets.base import ClipDataModule, FileIndex, VideoItem, hold_out
from versanet.data.transforms import ModalityTransform
from versanet.registry import register


@register("dataset")
class ESC50DataModule(ClipDataModule):
    """ESC-50 environmental sounds (50 classes, 5 folds): ``audio/*.wav`` + ``meta/esc50.csv``."""

    def __init__(self, root: str, transforms: dict[str, ModalityTransform], fold: int = 1, val_fraction: float = 0.0, audio_dir: str = "audio", meta: str = "meta/esc50.csv", **kwargs) -> None:
        super().__init__(root, transforms, **kwargs)
        if fold not in range(1, 6):
            raise ValueError(f"ESC50DataModule: fold must be 1-5, got {fold}")
        self.fold, self.val_fraction, self.audio_dir, self.meta = fold, val_fraction, audio_dir, meta

    def read_metadata(self) -> None:
        path = self.root / self.meta
        if not path.is_file():
            raise FileNotFoundError(f"ESC-50 metadata not found: {path}")
        with path.open(newline="", encoding="utf-8") as f:
            self._rows = list(csv.DictReader(f))
        names = {int(r["target"]): r["category"] for r in self._rows}
        self.class_names = [names.get(i, str(i)) for i in range(max(names) + 1 if names else 0)]

    def list_items(self, split: str) -> list[VideoItem]:
        def items(test: bool) -> list[VideoItem]:
            return [
                VideoItem(Path(r["filename"]).stem, str(self.root / self.audio_dir / r["filename"]), int(r["target"]), query=None)
                for r in self._rows if (int(r["fold"]) == self.fold) == test
            ]

        if split == "test" or (split == "val" and self.val_fraction <= 0):
            return self.existing(items(True), "test")
        src = {Path(r["filename"]).stem: r.get("src_file", r["filename"]) for r in self._rows}
        train, held = hold_out(items(False), self.val_fraction, lambda it: src[it.key], self.seed)
        return self.existing(train if split == "train" else held, split)


def read_audioset_segments(path: Path) -> list[tuple[str, float, float, list[str]]]:
    """``(YTID, start, end, [mid, ...])`` rows of an AudioSet segments CSV (``#`` lines skipped)."""
    if not path.is_file():
        raise FileNotFoundError(f"AudioSet segments file not found: {path}")
    text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#"))
    rows = []
    for line, row in enumerate(csv.reader(io.StringIO(text), skipinitialspace=True), start=1):
        if len(row) < 4:
            raise ValueError(f"{path}: row {line} has {len(row)} fields; expected YTID, start_seconds, end_seconds, positive_labels")
        rows.append((row[0], float(row[1]), float(row[2]), [m for m in row[3].split(",") if m]))
    return rows


@register("dataset")
class AudioSetDataModule(ClipDataModule):
    """AudioSet evaluation (527 classes, multi-label, ``label`` float32 multi-hot): train/eval segment CSVs + clips.

    ``train_segments`` (default the balanced set) is split into train and a held-out ``val``
    (``val_fraction`` of its clips; 0: val is the eval set); ``test`` is ``eval_segments.csv``.
    ``trimmed``: files hold the 10 s segment (else the full video, and the segment is sampled).
    """

    multilabel = True

    def __init__(
        self, root: str, transforms: dict[str, ModalityTransform], train_segments: str = "balanced_train_segments.csv",
        eval_segments: str = "eval_segments.csv", class_labels: str = "class_labels_indices.csv", video_dir: str = "videos",
        val_fraction: float = 0.05, trimmed: bool = True, **kwargs,
    ) -> None:
        super().__init__(root, transforms, **kwargs)
        self.train_segments, self.eval_segments, self.class_labels = train_segments, eval_segments, class_labels
        self.video_dir, self.val_fraction, self.trimmed = video_dir, val_fraction, trimmed

    def read_metadata(self) -> None:
        path = self.root / self.class_labels
        if not path.is_file():
            raise FileNotFoundError(f"AudioSet class list not found: {path}")
        with path.open(newline="", encoding="utf-8") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
        self.class_names = [r["display_name"] for r in rows]
        self._mid = {r["mid"]: int(r["index"]) for r in rows}
        self._files = FileIndex(self.root / self.video_dir)

    def segment_items(self, name: str) -> list[VideoItem]:
        items = []
        for ytid, t0, t1, mids in read_audioset_segments(self.root / name):
            path = self._files.find(f"{ytid}_{int(t0)}_{int(t1)}") or self._files.find(ytid, youtube=True)
            segment = (0.0, t1 - t0) if self.trimmed else (t0, t1)
            items.append(VideoItem(ytid, str(path) if path else ytid, [self._mid[m] for m in mids if m in self._mid], segment=segment))
        return items

    def list_items(self, split: str) -> list[VideoItem]:
        if split == "test" or (split == "val" and self.val_fraction <= 0):
            return self.existing(self.segment_items(self.eval_segments), "test")
        train, held = hold_out(self.segment_items(self.train_segments), self.val_fraction, lambda it: it.key, self.seed)
        return self.existing(train if split == "train" else held, split)


@register("dataset")
class AudioSetPretrainDataModule(AudioSetDataModule):
    """AudioSet for self-supervised pretraining: video + audio, no text (a text transform yields a False text mask), no labels.

    Train: ``train_segments`` (default the unbalanced set); val: ``val_segments`` (default the eval set).
    Mix it with HowTo100M through :class:`~versanet.data.mixing.MixedDataModule`.
    """

    def __init__(self, root: str, transforms: dict[str, ModalityTransform], train_segments: str = "unbalanced_train_segments.csv", val_segments: str = "eval_segments.csv", **kwargs) -> None:
        super().__init__(root, transforms, train_segments=train_segments, eval_segments=val_segments, val_fraction=0.0, **kwargs)

    def list_items(self, split: str) -> list[VideoItem]:
        items = super().list_items(split)
        for it in items:
            it.label = None
        return items

    def corpus(self):  # noqa: ANN201 - no captions at all
        from versanet.data.transforms import Corpus

        return Corpus(self.root, [])

    def prepare_data(self) -> None:
        """No captions to learn a vocabulary from: a text transform must load one (``model_path``), or mix this corpus
        with a captioned one (:class:`~versanet.data.mixing.MixedDataModule` prepares the shared transforms on its captions)."""
        self.check_root()
