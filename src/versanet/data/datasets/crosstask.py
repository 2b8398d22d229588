"""CrossTask step localisation (MCN's zero-shot protocol): per-second clips of a video and its task's step texts.

Layout (``crosstask_release/`` as released, ``root`` may be that folder or its parent):
``tasks_primary.txt`` (blocks of: task id, name, URL, number of steps, comma-separated steps, blank
line), ``videos.csv`` and ``videos_val.csv`` (``task,youtube_id,url``, no header),
``annotations/<task>_<youtube_id>.csv`` (``step,start,end``, steps 1-based, no header). Videos are
found by YouTube id anywhere under ``video_dir``.

A sample (one video; use batch size 1): ``video [S, *input]`` (one clip centred on every second,
S = whole seconds of the video, at most ``max_seconds``), other modalities likewise, ``steps``
(the task's step texts, list[str]), ``step_ids`` (int64 ``[n_steps]``, 0-based), ``annotation``
(bool ``[S, n_steps]``: CrossTask's ground truth, seconds ``floor(start) .. ceil(end) - 1`` of each
annotated segment, :func:`~versanet.eval.crosstask.step_annotation`), ``task`` (str), ``index``;
``text`` ``[n_steps, L]`` when a text transform is configured.
Batches keep ``steps``/``task`` as lists (one entry per video) and stack the tensors.
``test`` and ``val``: the videos of ``videos_val.csv`` that have an annotation file; ``train``: the others.

:class:`CrossTaskFeatureDataModule` is the same benchmark on pre-extracted features (MCN's
zero-shot protocol): per second, the video feature streams max-pooled and L2-normalised and an
audio window of MCN's size around it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, default_collate

from versanet.data.datasets.base import ClipDataModule, ClipDataset, FileIndex, VideoItem, read_lines
from versanet.data.failures import SkipBadSamples
from versanet.data.features import DEFAULT_STREAMS, N_MELS, audio_window, context_window, per_second_rows, read_npz
from versanet.data.loaders import make_loader, sample_rng
from versanet.data.sampling import apply_transforms, per_second_starts
from versanet.data.transforms import Corpus, ModalityTransform
from versanet.data.video_io import MediaDecodeError, MediaSource
from versanet.eval.crosstask import step_annotation
from versanet.registry import register

Segments = list[tuple[int, float, float]]


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


def read_crosstask_videos(release: Path, name: str, tasks: dict[str, tuple[str, list[str]]]) -> list[tuple[str, str]]:
    """``(task, youtube_id)`` rows of a video list (``videos.csv``, ``videos_val.csv``: ``task,youtube_id,url``) whose task is known."""
    rows = [r for r in csv.reader(read_lines(release / name)) if len(r) >= 2]
    return [(r[0].strip(), r[1].strip()) for r in rows if r[0].strip() in tasks]


def read_crosstask_segments(release: Path, task: str, vid: str) -> Segments | None:
    """``[(step, start, end)]`` of ``annotations/<task>_<vid>.csv`` (step 1-based), None when the video has no annotation."""
    path = release / "annotations" / f"{task}_{vid}.csv"
    if not path.is_file():
        return None
    return [(int(float(r[0])), float(r[1]), float(r[2])) for r in csv.reader(read_lines(path)) if len(r) >= 3]


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
        raws = self.sampler.decode(source, item.path or item.key, self.needs, False, sample_rng(False, self.seed, index),
                                   starts=lambda d: per_second_starts(d, clip, self.max_seconds), video_id=item.key)  # type: ignore[arg-type]
        transforms = {m: t for m, t in self.transforms.items() if "captions" not in t.needs}
        inputs, masks = apply_transforms(transforms, raws, stack=True)
        annotation = step_annotation(segments, len(raws), len(steps))
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

    def list_items(self, split: str) -> list[VideoItem]:
        val = read_crosstask_videos(self.release, "videos_val.csv", self.tasks)
        if split == "train":
            held = set(val)
            pairs = [p for p in read_crosstask_videos(self.release, "videos.csv", self.tasks) if p not in held]
        else:
            pairs = val
        items = []
        for task, vid in pairs:
            segments = read_crosstask_segments(self.release, task, vid)
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


# ---------------------------------------------------------------------------- on pre-extracted features (MCN)
class CrossTaskFeatureDataset(SkipBadSamples, Dataset):
    """One sample per annotated video from its feature files (see :class:`CrossTaskFeatureDataModule`)."""

    def __init__(self, videos: list[tuple[str, str, Segments]], tasks: dict[str, tuple[str, list[str]]], features_root: Path,
                 audio_root: Path, streams: dict[str, float], text: ModalityTransform | None, audio_context: int, audio_frames: int,
                 name: str, root: Path, max_bad_fraction: float, seed: int) -> None:
        self.videos, self.tasks, self.features_root, self.audio_root = videos, tasks, features_root, audio_root
        self.streams, self.text, self.audio_context, self.audio_frames = streams, text, audio_context, audio_frames
        self.name, self.root, self.max_bad_fraction, self.seed = name, root, max_bad_fraction, seed
        self.init_failures()

    def __len__(self) -> int:
        return len(self.videos)

    def load(self, index: int) -> dict[str, Any]:
        task, vid, segments = self.videos[index]
        feats = {s: torch.from_numpy(read_npz(self.features_root / f"{vid}_{s}.npz", "features", f"{s} video features")) for s in self.streams}
        spec_path = self.audio_root / f"{vid}_spec.npz"
        spec = torch.from_numpy(read_npz(spec_path, "arr_0", "audio spectrogram"))
        if spec.shape[0] != N_MELS:
            raise MediaDecodeError(spec_path, f"spectrogram has {spec.shape[0]} mel rows, expected {N_MELS} ([40, frames])")
        first, rate = next(iter(self.streams.items()))
        seconds = max(1, round(feats[first].shape[0] / rate))
        steps = self.tasks[task][1]
        windows = [context_window(t, seconds, self.audio_context) for t in range(seconds)]
        sample: dict[str, Any] = {
            "video": torch.cat([per_second_rows(f, seconds) for f in feats.values()], dim=1),
            "audio": torch.stack([audio_window(spec, a, b, self.audio_frames) for a, b in windows]),
            "annotation": step_annotation(segments, seconds, len(steps)),
            "steps": list(steps), "step_ids": torch.arange(len(steps)), "task": task, "index": index,
            "mask": {m: torch.ones(seconds, dtype=torch.bool) for m in ("video", "audio")},
        }
        if self.text is not None:
            sample["text"] = self.text.encode(list(steps))
        return sample


@register("dataset")
class CrossTaskFeatureDataModule(LightningDataModule):
    """CrossTask step localisation on pre-extracted features, as MCN evaluates it zero-shot (test only, one video per batch).

    Per annotated video of ``videos`` (``videos_val.csv``, as :class:`CrossTaskDataModule`'s test set):
    ``video [S, D]``, S = the video's seconds (the first stream's rows over its rate), each stream
    max-pooled to one row per second and L2-normalised, the streams concatenated (MCN: 2 x 2048);
    ``audio [S, 41, audio_frames]``: per second ``s`` the spectrogram from ``s - audio_context`` to
    ``s + audio_context`` seconds (moved inside the video at its ends; MCN: 8 s), zero-padded or cut
    to ``audio_frames`` (1024), with the row of real frames; ``text [K, L]``: the task's steps
    tokenised; ``annotation [S, K]``, ``steps``, ``task``, ``index``. Files are those ``versanet
    features extract`` writes (flat, ``<youtube_id>_2d.npz`` ...); a missing or unreadable file is
    counted and named like a bad video.

    Args:
        root: folder holding ``crosstask_release/`` (or the release folder itself).
        transforms: ``{"text": ...}``: the pretraining's tokenizer.
        features_dir, audio_dir: folders of the feature and spectrogram files (relative to ``root``).
        streams: video feature streams and their rows per second (``{2d: 1.0, 3d: 1.5}``).
        audio_context: seconds of audio on each side of a second (4).
        audio_frames: spectrogram frames per second's window (1024).
        videos: the video list evaluated (``videos_val.csv``; ``videos.csv`` for every annotated video).
    """

    def __init__(
        self, root: str, transforms: dict[str, ModalityTransform], features_dir: str = "features", audio_dir: str | None = None,
        streams: dict[str, float] | None = None, audio_context: int = 4, audio_frames: int = 1024, videos: str = "videos_val.csv",
        batch_size: int = 1, num_workers: int = 2, max_bad_fraction: float = 0.05, seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size != 1:
            raise ValueError("CrossTaskFeatureDataModule: batch_size must be 1 (videos differ in length)")
        self.root, self.transforms = Path(root), transforms
        self.features_dir, self.audio_dir = features_dir, audio_dir or features_dir
        self.streams = dict(streams or DEFAULT_STREAMS)
        self.audio_context, self.audio_frames, self.videos_file = audio_context, audio_frames, videos
        self.batch_size, self.num_workers, self.max_bad_fraction, self.seed = batch_size, num_workers, max_bad_fraction, seed
        self._set: CrossTaskFeatureDataset | None = None

    @property
    def release(self) -> Path:
        return self.root / "crosstask_release" if (self.root / "crosstask_release").is_dir() else self.root

    def corpus(self) -> Corpus:
        """The step texts (what a text transform may learn a vocabulary from)."""
        tasks = read_crosstask_tasks(self.release / "tasks_primary.txt")
        return Corpus(self.root, [s for _, steps in tasks.values() for s in steps])

    def prepare_data(self) -> None:
        corpus = self.corpus()
        for t in self.transforms.values():
            t.prepare(corpus)

    def setup(self, stage: str | None = None) -> None:
        corpus = self.corpus()
        for t in self.transforms.values():
            t.setup(corpus)

    def dataset(self, split: str = "test") -> CrossTaskFeatureDataset:
        if self._set is None:
            tasks = read_crosstask_tasks(self.release / "tasks_primary.txt")
            videos = []
            for task, vid in read_crosstask_videos(self.release, self.videos_file, tasks):
                segments = read_crosstask_segments(self.release, task, vid)
                if segments is not None:
                    videos.append((task, vid, segments))
            if not videos:
                raise ValueError(f"CrossTaskFeatureDataModule: no video of {self.release / self.videos_file} has an annotation file")
            self._set = CrossTaskFeatureDataset(
                videos, tasks, self.root / self.features_dir, self.root / self.audio_dir, self.streams, self.transforms.get("text"),
                self.audio_context, self.audio_frames, f"{type(self).__name__} test", self.root, self.max_bad_fraction, self.seed,
            )
        return self._set

    def test_dataloader(self) -> DataLoader:
        return make_loader(self.dataset(), 1, False, self.num_workers, collate_videos)

    def val_dataloader(self) -> DataLoader:
        return self.test_dataloader()
