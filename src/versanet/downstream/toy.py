"""The toy world as benchmark data: classification (video, audio or a still frame) and step localisation.

Both data modules read what ``versanet toy-data`` writes (``videos/``, ``labels.csv``, ``captions.csv``,
``splits/``) through the same PyAV path as pretraining, and give samples in the benchmark data
contract of docs/benchmarks.md:

- :class:`ToyClassificationDataModule`: ``{modality: tensor, "mask": {...}, "label": int64, "index"}``
  for one ``labels.csv`` column (``label_key``: ``shape``, ``colour``), or ``label_key: direction``,
  the motion of the object at the clip's centre (the segment's direction: a label that needs
  temporal features); test samples carry ``eval_clips`` evenly spaced clips, ``[V, *input]`` when
  ``eval_clips > 1`` (one centred clip for ``direction``, whose label changes along the video). The toy world has no separate validation split:
  ``val_dataloader`` is the test split (fine-tuning reports it as it trains).
- :class:`ToyStepsDataModule`: a CrossTask-shaped toy. A video's "task" is its shape, its steps are
  its segments' motions in order (``"the red circle moves left"``, one per segment), the video is
  cut into one clip per second and the annotation marks the seconds whose centre lies in each
  segment (the true motion times, not the jittered caption times).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, get_worker_info

from versanet.data.captioned_video import read_labels, read_split
from versanet.data.captions import read_captions
from versanet.data.toy import DIRECTIONS, ToyWorldConfig, generate_toy_world
from versanet.data.transforms import Corpus, ModalityTransform, RawClip
from versanet.data.video_io import read_clip
from versanet.registry import register


def _needs(transforms: dict[str, ModalityTransform]) -> frozenset[str]:
    return frozenset().union(*(t.needs for t in transforms.values()))


class ToyClipsDataset(Dataset):
    """Labelled clips of toy videos: one random augmented clip (train) or ``eval_clips`` evenly spaced clips (eval)."""

    def __init__(
        self, root: Path, video_ids: list[str], labels: list[int], transforms: dict[str, ModalityTransform], train: bool,
        num_frames: int, fps: float, audio_rate: int, short_side: int | None, eval_clips: int, seed: int,
        video_dir: str = "videos", video_ext: str = ".mp4",
    ) -> None:
        self.root, self.video_ids, self.labels, self.transforms, self.train = root, video_ids, labels, transforms, train
        self.segment_labels: list[list[int]] | None = None  # per video, the label of each segment (label_key "direction")
        self.num_frames, self.fps, self.audio_rate, self.short_side = num_frames, fps, audio_rate, short_side
        self.eval_clips, self.seed, self.video_dir, self.video_ext = eval_clips, seed, video_dir, video_ext
        self.needs = _needs(transforms)
        self._draws = 0

    def __len__(self) -> int:
        return len(self.video_ids)

    def _read(self, index: int, start: float | None, rng: np.random.Generator | None) -> Any:
        return read_clip(
            self.root / self.video_dir / f"{self.video_ids[index]}{self.video_ext}", start, self.num_frames, self.fps,
            self.audio_rate if "audio" in self.needs else None, with_video="frames" in self.needs,
            short_side=self.short_side, train=self.train, rng=rng,
        )

    def _transform(self, index: int, clip: Any) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        raw = RawClip(self.video_ids[index], clip.start, self.num_frames / self.fps, self.train, clip.frames, clip.audio, self.audio_rate, [])
        out, masks = {}, {}
        for modality, transform in self.transforms.items():
            out[modality], masks[modality] = transform(raw)
        return out, masks

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.train:
            worker = get_worker_info()
            self._draws += 1
            rng = np.random.default_rng([self.seed, index, torch.initial_seed() % 2**32, self._draws, worker.id if worker else 0])
            clip = self._read(index, None, rng)
            views, views_start, duration = [self._transform(index, clip)], [clip.start], clip.video_duration
        else:
            first = self._read(index, None if self.eval_clips == 1 else 0.0, None)
            duration = first.video_duration
            room = max(duration - self.num_frames / self.fps, 0.0)
            starts = np.linspace(0.0, room, self.eval_clips) if self.eval_clips > 1 else [first.start]
            views = [self._transform(index, first)] + [self._transform(index, self._read(index, float(s), None)) for s in starts[1:]]
            views_start = [first.start]
        label = self.labels[index]
        if self.segment_labels is not None:  # the segment under the (first) clip's centre
            segs = self.segment_labels[index]
            centre = views_start[0] + self.num_frames / self.fps / 2
            label = segs[min(int(centre / (duration / len(segs))), len(segs) - 1)]
        sample: dict[str, Any] = {"index": index, "label": torch.tensor(label, dtype=torch.long)}
        for modality in self.transforms:
            tensors = [v[0][modality] for v in views]
            sample[modality] = tensors[0] if len(tensors) == 1 else torch.stack(tensors)
        sample["mask"] = views[0][1]
        return sample


@register("dataset")
class ToyClassificationDataModule(LightningDataModule):
    """Toy-world clips labelled by one ``labels.csv`` column (``shape``, ``colour``) or by the motion at the clip's centre (``direction``).

    Args:
        root: toy world folder (``versanet toy-data``); ``toy`` generates it there first when given.
        transforms: modality -> transform (``video``: VideoClipTransform, ``audio``: LogMelTransform,
            ``image``: ImageTransform with ``num_frames: 1``, a still of the clip); the keys are the batch keys.
        label_key: the ``labels.csv`` column to classify, or ``direction`` (the motion at the clip's centre).
        eval_clips: evenly spaced clips per test video (multi-view testing).
        train_split, test_split: split files under ``root``.
    """

    def __init__(
        self,
        root: str,
        transforms: dict[str, ModalityTransform],
        label_key: str = "shape",
        num_frames: int = 8,
        fps: float = 5.0,
        audio_rate: int = 16000,
        short_side: int | None = None,
        eval_clips: int = 1,
        train_split: str = "splits/train.txt",
        test_split: str = "splits/val.txt",
        labels: str = "labels.csv",
        captions: str = "captions.csv",
        batch_size: int = 16,
        num_workers: int = 0,
        toy: ToyWorldConfig | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root, self.transforms, self.label_key = Path(root), transforms, label_key
        self.num_frames, self.fps, self.audio_rate, self.short_side = num_frames, fps, audio_rate, short_side
        self.eval_clips, self.train_split, self.test_split = eval_clips, train_split, test_split
        self.labels_file, self.captions_file = labels, captions
        self.batch_size, self.num_workers, self.toy, self.seed = batch_size, num_workers, toy, seed
        self.class_names: list[str] = []
        self.multilabel = False

    def _corpus(self) -> Corpus:
        caps = read_captions(self.root / self.captions_file)
        train = set(read_split(self.root / self.train_split))
        return Corpus(self.root, [c.text for vid, cs in caps.items() if vid in train for c in cs])

    def prepare_data(self) -> None:
        if self.toy is not None:
            generate_toy_world(self.root, self.toy, workers=max(1, self.num_workers), progress=True)
        if any("captions" in t.needs for t in self.transforms.values()):
            corpus = self._corpus()
            for transform in self.transforms.values():
                transform.prepare(corpus)

    def setup(self, stage: str | None = None) -> None:
        if any("captions" in t.needs for t in self.transforms.values()):
            corpus = self._corpus()
            for transform in self.transforms.values():
                transform.setup(corpus)
        per_video, classes = read_labels(self.root / self.labels_file)
        direction = self.label_key == "direction"
        if direction:
            if self.eval_clips != 1:
                raise ValueError("label_key 'direction' changes along a video: use eval_clips 1 (the centred clip)")
            self.class_names = sorted(DIRECTIONS)
            with (self.root / self.labels_file).open(newline="", encoding="utf-8") as f:
                segments = {r["video_id"]: [self.class_names.index(d) for d in r["directions"].split("|")] for r in csv.DictReader(f)}
        elif self.label_key not in classes:
            raise KeyError(f"{self.root / self.labels_file}: no label column {self.label_key!r}; columns: {', '.join(classes)} (or direction)")
        else:
            self.class_names = classes[self.label_key]
        common = dict(transforms=self.transforms, num_frames=self.num_frames, fps=self.fps, audio_rate=self.audio_rate,
                      short_side=self.short_side, eval_clips=self.eval_clips, seed=self.seed)

        def dataset(split: str, train: bool) -> ToyClipsDataset:
            ids = read_split(self.root / split)
            ds = ToyClipsDataset(self.root, ids, [0 if direction else per_video[v][self.label_key] for v in ids], train=train, **common)
            if direction:
                ds.segment_labels = [segments[v] for v in ids]
            return ds

        self.train_set = dataset(self.train_split, True)
        self.test_set = dataset(self.test_split, False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def modality_specs(self) -> dict[str, dict[str, Any]]:
        return {m: t.spec() for m, t in self.transforms.items()}

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=train, drop_last=train and len(dataset) > self.batch_size,  # type: ignore[arg-type]
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)


class ToyStepsDataset(Dataset):
    """One toy video per sample: a clip centred on every second, its steps and the per-second annotation."""

    def __init__(self, root: Path, video_ids: list[str], rows: dict[str, dict[str, str]], transforms: dict[str, ModalityTransform],
                 num_frames: int, fps: float, short_side: int | None, segments: int, step_template: str, task_key: str) -> None:
        self.root, self.video_ids, self.rows, self.transforms = root, video_ids, rows, transforms
        self.num_frames, self.fps, self.short_side, self.segments = num_frames, fps, short_side, segments
        self.step_template, self.task_key = step_template, task_key

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        vid = self.video_ids[index]
        row = self.rows[vid]
        directions = row["directions"].split("|")
        path = self.root / "videos" / f"{vid}.mp4"
        clip_len = self.num_frames / self.fps
        first = read_clip(path, 0.0, self.num_frames, self.fps, None, short_side=self.short_side)
        seconds = max(int(first.video_duration), 1)
        clips = []
        for s in range(seconds):
            start = min(max(s + 0.5 - clip_len / 2, 0.0), max(first.video_duration - clip_len, 0.0))
            clip = first if s == 0 and start == 0.0 else read_clip(path, start, self.num_frames, self.fps, None, short_side=self.short_side)
            raw = RawClip(vid, clip.start, clip_len, False, clip.frames, None, None, [])
            clips.append(self.transforms["video"](raw)[0])
        seg = first.video_duration / len(directions)
        centres = torch.arange(seconds) + 0.5
        annotation = torch.stack([(centres >= k * seg) & (centres < (k + 1) * seg) for k in range(len(directions))], dim=1)
        steps = [" ".join(self.step_template.format(shape=row["shape"], colour=row["colour"], direction=d).split()) for d in directions]
        return {"video": torch.stack(clips), "text": self.transforms["text"].encode(steps), "steps": steps,  # type: ignore[attr-defined]
                "annotation": annotation, "task": row[self.task_key], "index": index}


def _single_collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch size 1 for videos of different lengths: tensors get a leading 1, everything else is kept as is."""
    if len(batch) != 1:
        raise ValueError("step localisation reads one video per batch (batch_size 1)")
    return {k: v.unsqueeze(0) if isinstance(v, Tensor) else v for k, v in batch[0].items()}


@register("dataset")
class ToyStepsDataModule(LightningDataModule):
    """CrossTask-shaped toy (test only): per-second clips, ordered steps (segment motions), per-second annotation.

    Args:
        root: toy world folder; ``transforms`` needs ``video`` and ``text`` (the pretraining tokenizer,
            e.g. TokenizeText with the same vocab_size, which finds ``root/tokenizer/spm_<vocab>.model``).
        step_template: the text of a step, formatted with ``shape``, ``colour`` and ``direction``.
        task_key: the ``labels.csv`` column that names a video's task (recall is averaged over tasks).
    """

    def __init__(
        self,
        root: str,
        transforms: dict[str, ModalityTransform],
        split: str = "splits/val.txt",
        num_frames: int = 8,
        fps: float = 5.0,
        short_side: int | None = None,
        step_template: str = "the {colour} {shape} moves {direction}",
        task_key: str = "shape",
        train_split: str = "splits/train.txt",
        num_workers: int = 0,
        toy: ToyWorldConfig | None = None,
    ) -> None:
        super().__init__()
        if "video" not in transforms or "text" not in transforms:
            raise ValueError("ToyStepsDataModule needs transforms for video and text")
        self.root, self.transforms, self.split = Path(root), transforms, split
        self.num_frames, self.fps, self.short_side = num_frames, fps, short_side
        self.step_template, self.task_key, self.train_split = step_template, task_key, train_split
        self.num_workers, self.toy = num_workers, toy

    def _corpus(self) -> Corpus:
        caps = read_captions(self.root / "captions.csv")
        train = set(read_split(self.root / self.train_split))
        return Corpus(self.root, [c.text for vid, cs in caps.items() if vid in train for c in cs])

    def prepare_data(self) -> None:
        if self.toy is not None:
            generate_toy_world(self.root, self.toy, workers=max(1, self.num_workers), progress=True)
        corpus = self._corpus()
        for transform in self.transforms.values():
            transform.prepare(corpus)

    def setup(self, stage: str | None = None) -> None:
        corpus = self._corpus()
        for transform in self.transforms.values():
            transform.setup(corpus)
        with (self.root / "labels.csv").open(newline="", encoding="utf-8") as f:
            rows = {row["video_id"]: row for row in csv.DictReader(f)}
        segments = len(next(iter(rows.values()))["directions"].split("|")) if rows else 0
        self.test_set = ToyStepsDataset(self.root, read_split(self.root / self.split), rows, self.transforms, self.num_frames, self.fps,
                                        self.short_side, segments, self.step_template, self.task_key)

    def modality_specs(self) -> dict[str, dict[str, Any]]:
        return {m: t.spec() for m, t in self.transforms.items()}

    def tokenize(self, texts: list[str]) -> Tensor:
        """Step texts -> token ids ``[K, L]`` with the text transform (what the text encoder was trained on)."""
        return self.transforms["text"].encode(texts)  # type: ignore[attr-defined]

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=1, shuffle=False, num_workers=self.num_workers, collate_fn=_single_collate)
