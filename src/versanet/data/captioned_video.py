"""Videos with audio tracks and time-stamped captions (HowTo100M layout): dataset and data module.

Layout under ``root`` (what ``versanet toy-data`` writes, and HowTo100M's own shape)::

    videos/<video_id>.mp4          video with its audio track
    captions.csv | caption.json    video_id,start,end,text  (or HowTo100M's JSON)
    splits/train.txt, splits/val.txt   one video id per line
    labels.csv                     optional: video_id,<label columns...> for probes

A sample is a dict: each modality's tensor (see its transform), ``mask[m]`` (bool ``[K]``),
``index`` (dataset index) and ``label`` (label column -> class index, when labels exist).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, get_worker_info

from versanet.data.captions import Caption, nearest_captions, read_captions, sample_train_window
from versanet.data.toy import ToyWorldConfig, generate_toy_world
from versanet.data.transforms import Corpus, ModalityTransform, RawClip
from versanet.data.video_io import MediaDecodeError, read_clip
from versanet.registry import register

log = logging.getLogger(__name__)


class TooManyBadSamples(RuntimeError):
    """More than ``max_bad_fraction`` of the samples tried in one process could not be read."""


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


class CaptionedVideoDataset(Dataset):
    """Clips of ``num_frames`` frames at ``fps`` with the same window's audio and the K nearest captions.

    Train: a random caption, its tightest K-window of consecutive captions, a random clip inside
    the window's span (MIL-NCE sampling); videos without captions get a random clip and a False
    text mask. Eval: the centred clip and the K captions nearest its centre, nearest first.
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
    ) -> None:
        self.root, self.video_ids, self.captions = Path(root), list(video_ids), captions
        self.transforms, self.train = transforms, train
        self.num_frames, self.fps, self.audio_rate, self.num_candidates = num_frames, fps, audio_rate, num_candidates
        self.short_side, self.labels = short_side, labels
        self.video_dir, self.video_ext, self.seed = video_dir, video_ext, seed
        self.max_bad_fraction, self.name = max_bad_fraction, name
        self.needs = frozenset().union(*(t.needs for t in transforms.values()))
        self.tried = 0  # reads attempted in this process
        self.failed = 0  # reads that failed in this process
        self.bad: dict[str, str] = {}  # path -> reason, each unreadable file once
        self._epoch_draws = 0

    def __len__(self) -> int:
        return len(self.video_ids)

    def path(self, index: int) -> Path:
        return self.root / self.video_dir / f"{self.video_ids[index]}{self.video_ext}"

    def _rng(self, index: int) -> np.random.Generator:
        if not self.train:
            return np.random.default_rng([self.seed, index])
        worker = get_worker_info()
        self._epoch_draws += 1
        return np.random.default_rng([self.seed, index, torch.initial_seed() % 2**32, self._epoch_draws, worker.id if worker else 0])

    def load(self, index: int) -> dict[str, Any]:
        """Decode and transform sample ``index`` (raises :class:`MediaDecodeError` for a bad file)."""
        vid = self.video_ids[index]
        rng = self._rng(index)
        caps = self.captions.get(vid, [])
        duration = self.num_frames / self.fps
        start, chosen = None, []
        if self.train and caps and "captions" in self.needs:
            # the window needs the video's duration only to clamp; read_clip clamps again with the real one
            start, chosen = sample_train_window(caps, self.num_candidates, duration, float("inf"), rng)
        clip = read_clip(
            self.path(index), start, self.num_frames, self.fps,
            self.audio_rate if "audio" in self.needs else None,
            with_video="frames" in self.needs, short_side=self.short_side, train=self.train, rng=rng,
        )
        if caps and not chosen:
            chosen = nearest_captions(caps, clip.start, clip.start + duration, self.num_candidates)
        raw = RawClip(vid, clip.start, duration, self.train, clip.frames, clip.audio, self.audio_rate, [caps[i].text for i in chosen])
        sample: dict[str, Any] = {"index": index, "mask": {}}
        for modality, transform in self.transforms.items():
            sample[modality], sample["mask"][modality] = transform(raw)
        if self.labels is not None:
            sample["label"] = self.labels.get(vid, {})
        return sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        for attempt in range(10):
            self.tried += 1
            try:
                return self.load(index)
            except MediaDecodeError as err:
                self.failed += 1
                self.bad[err.path] = err.reason
                log.warning("%s: skipping unreadable sample %s (%d failed of %d tried)", self.name, err, self.failed, self.tried)
                if self.tried >= 20 and self.failed / self.tried > self.max_bad_fraction:
                    raise TooManyBadSamples(
                        f"{self.name} under {self.root}: {self.failed} of {self.tried} samples tried could not be read, "
                        f"{len(self.bad)} distinct files (> max_bad_fraction {self.max_bad_fraction}); last: {err}"
                    ) from err
                index = int(np.random.default_rng([self.seed, index, attempt, self.tried]).integers(len(self)))
        raise TooManyBadSamples(f"{self.name} under {self.root}: 10 samples in a row could not be read")


@register("dataset")
class CaptionedVideoDataModule(LightningDataModule):
    """Videos + audio tracks + time-stamped captions (HowTo100M layout), or the generated toy world.

    Args:
        root: corpus folder (layout in the module docstring).
        transforms: modality -> transform; the keys are the batch keys the encoders read.
        toy: generate the toy world into ``root`` first (once; skipped when already complete).
        num_frames, fps: clip length and frame rate; the audio covers the same window.
        short_side: resize frames while decoding (cheaper than resizing decoded full-size frames).
    """

    def __init__(
        self,
        root: str,
        transforms: dict[str, ModalityTransform],
        captions: str = "captions.csv",
        train_split: str = "splits/train.txt",
        val_split: str = "splits/val.txt",
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
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.transforms = transforms
        self.kw = dict(num_frames=num_frames, fps=fps, audio_rate=audio_rate, short_side=short_side,
                       video_dir=video_dir, video_ext=video_ext, seed=seed, max_bad_fraction=max_bad_fraction)
        self.captions_file, self.labels_file = captions, labels
        self.train_split, self.val_split = train_split, val_split
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.num_workers, self.toy = num_workers, toy
        self.label_classes: dict[str, list[str]] = {}
        self._corpus: Corpus | None = None

    @property
    def num_candidates(self) -> int:
        text = [t for t in self.transforms.values() if "captions" in t.needs]
        return getattr(text[0], "num_candidates", 1) if text else 1

    def corpus(self) -> Corpus:
        """Training captions (what a tokenizer may learn from)."""
        if self._corpus is None:
            caps = read_captions(self.root / self.captions_file)
            train = set(read_split(self.root / self.train_split))
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
        captions = read_captions(self.root / self.captions_file)
        labels = None
        if self.labels_file and (self.root / self.labels_file).is_file():
            labels, self.label_classes = read_labels(self.root / self.labels_file)
        common = dict(captions=captions, transforms=self.transforms, num_candidates=self.num_candidates, labels=labels, **self.kw)
        self.train_set = CaptionedVideoDataset(self.root, read_split(self.root / self.train_split), train=True, name="train", **common)
        self.val_set = CaptionedVideoDataset(self.root, read_split(self.root / self.val_split), train=False, name="val", **common)

    def modality_specs(self) -> dict[str, dict[str, Any]]:
        """Modality -> what its transform says about the input (checked against the encoders)."""
        return {m: t.spec() for m, t in self.transforms.items()}

    def _loader(self, dataset: Dataset, batch_size: int, train: bool) -> DataLoader:
        return DataLoader(
            dataset, batch_size=batch_size, shuffle=train, drop_last=train, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.val_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
