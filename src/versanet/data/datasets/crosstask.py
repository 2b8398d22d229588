"""CrossTask step localisation (MCN's zero-shot protocol): per-second clips of a video and its task's step texts.

Layout (``crosstask_release/`` as released, ``root`` may be that folder or its parent):
``tasks_primary.txt`` (blocks of: task id, name, URL, number of steps, comma-separated steps, blank
line), ``videos.csv`` and ``videos_val.csv`` (``task,youtube_id,url``, no header),
``annotations/<task>_<youtube_id>.csv`` (``step,start,end``, steps 1-based, no header). Videos are
found by YouTube id anywhere under ``video_dir``.

A sample (one video; use batch size 1): ``video [S, *input]`` (one clip centred on every second,
S = whole seconds of the video, at most ``max_seconds``), other modalities likewise, ``steps``
(the task's step texts, list[str]), ``step_ids`` (int64 ``[n_steps]``, 0-based), ``annotation``
(bool ``[S, n_steps]``: second ``s``'s centre ``s + 0.5`` lies inside a ground-truth segment of step
k), ``task`` (str), ``index``; ``text`` ``[n_steps, L]`` when a text transform is configured.
Batches keep ``steps``/``task`` as lists (one entry per video) and stack the tensors.
``test`` and ``val``: the videos of ``videos_val.csv`` that have an annotation file; ``train``: the others.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import default_collate

from versanet.data.datasets.base import ClipDataModule, ClipDataset, FileIndex, VideoItem, read_lines
from versanet.data.sampling import apply_transforms, per_second_starts
from versanet.data.transforms import Corpus, ModalityTransform
from versanet.data.video_io import MediaSource
from versanet.registry import register


def read_crosstask_tasks(path: Path) -> dict[str, tuple[str, list[str]]]:
    """``{task_id: (name, [step texts])}`` from ``tasks_primary.txt``."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else None
    if lines is None:
        raise FileNotFoundError(f"CrossTask task file not found: {path}")
    tasks, i = {}, 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        if i + 4 >= len(lines):
            raise ValueError(f"{path}, line {i + 1}: incomplete task block (id, name, url, number of steps, steps)")
        task, name, n = lines[i].strip(), lines[i + 1].strip(), int(lines[i + 3])
        steps = [s.strip() for s in lines[i + 4].split(",")]
        if len(steps) != n:
            raise ValueError(f"{path}: task {task} says {n} steps but lists {len(steps)}")
        tasks[task] = (name, steps)
        i += 5
    return tasks


def collate_videos(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Tensors stacked (one video per batch, or equal lengths), ``steps`` and ``task`` kept as lists."""
    lists = ("steps", "task")
    out = {k: [s[k] for s in batch] for k in lists}
    out.update(default_collate([{k: v for k, v in s.items() if k not in lists} for s in batch]))
    return out


class CrossTaskDataset(ClipDataset):
    """One per-second-clips sample per video (see module docstring)."""

    def __init__(self, *args: Any, tasks: dict[str, tuple[str, list[str]]], max_seconds: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tasks, self.max_seconds = tasks, max_seconds

    def load_item(self, item: VideoItem, source: MediaSource, index: int) -> dict[str, Any]:
        task, segments = item.label["task"], item.label["segments"]
        steps = self.tasks[task][1]
        clip = self.sampler.clip_seconds
        raws = self.sampler.decode(source, item.path or item.key, self.needs, False, self._rng(index),
                                   starts=lambda d: per_second_starts(d, clip, self.max_seconds), video_id=item.key)  # type: ignore[arg-type]
        transforms = {m: t for m, t in self.transforms.items() if "captions" not in t.needs}
        inputs, masks = apply_transforms(transforms, raws, stack=True)
        seconds = len(raws)
        annotation = torch.zeros(seconds, len(steps), dtype=torch.bool)
        centres = torch.arange(seconds) + 0.5
        for step, lo, hi in segments:
            if 1 <= step <= len(steps):
                annotation[:, step - 1] |= (centres >= lo) & (centres <= hi)
        sample: dict[str, Any] = {**inputs, "mask": masks, "index": index, "steps": list(steps), "step_ids": torch.arange(len(steps)),
                                  "annotation": annotation, "task": task}
        for m, t in self.transforms.items():
            if "captions" in t.needs and hasattr(t, "encode"):
                sample[m] = t.encode(steps)
        return sample


@register("dataset")
class CrossTaskDataModule(ClipDataModule):
    """CrossTask (MCN step localisation): per-second clips of each video, its task's steps, and the ground-truth step segments."""

    def __init__(
        self, root: str, transforms: dict[str, ModalityTransform], video_dir: str = "videos", max_seconds: int | None = None,
        batch_size: int = 1, num_frames: int = 16, **kwargs,
    ) -> None:
        super().__init__(root, transforms, batch_size=batch_size, num_frames=num_frames, **kwargs)
        self.video_dir, self.max_seconds = video_dir, max_seconds

    @property
    def release(self) -> Path:
        return self.root / "crosstask_release" if (self.root / "crosstask_release").is_dir() else self.root

    def read_metadata(self) -> None:
        self.tasks = read_crosstask_tasks(self.release / "tasks_primary.txt")
        self.class_names = sorted(self.tasks)
        self._files = FileIndex(self.root / self.video_dir)

    def corpus(self) -> Corpus:
        """The step texts (what a text transform may learn a vocabulary from)."""
        self._load()
        return Corpus(self.root, [s for _, steps in self.tasks.values() for s in steps])

    def _videos(self, name: str) -> list[tuple[str, str]]:
        rows = [r for r in csv.reader(read_lines(self.release / name)) if len(r) >= 2]
        return [(r[0].strip(), r[1].strip()) for r in rows if r[0].strip() in self.tasks]

    def _segments(self, task: str, vid: str) -> list[tuple[int, float, float]] | None:
        path = self.release / "annotations" / f"{task}_{vid}.csv"
        if not path.is_file():
            return None
        return [(int(float(r[0])), float(r[1]), float(r[2])) for r in csv.reader(read_lines(path)) if len(r) >= 3]

    def list_items(self, split: str) -> list[VideoItem]:
        val = self._videos("videos_val.csv")
        if split == "train":
            held = set(val)
            pairs = [p for p in self._videos("videos.csv") if p not in held]
        else:
            pairs = val
        items = []
        for task, vid in pairs:
            segments = self._segments(task, vid)
            if segments is None and split != "train":
                continue
            path = self._files.find(vid, youtube=True)
            items.append(VideoItem(vid, str(path) if path else vid, {"task": task, "segments": segments or []}))
        return self.existing(items, split)

    def dataset(self, split: str) -> ClipDataset:
        if split not in self._sets:
            self._load()
            self._sets[split] = CrossTaskDataset(
                self.list_items(split), self.transforms, self.sampler(), train=False, name=f"{type(self).__name__} {split}",
                root=self.root, max_bad_fraction=self.max_bad_fraction, seed=self.seed, tasks=self.tasks, max_seconds=self.max_seconds,
            )
        return self._sets[split]

    def collate_fn(self):  # noqa: ANN201
        return collate_videos
