"""The shared machinery of every corpus: listed items -> decoded, transformed samples; the data module around them.

A corpus reader only lists :class:`VideoItem` s per split (file, label, captions, segment, query
caption) and its class names; :class:`ClipDataset` turns an item into a sample with the shared
:class:`~versanet.data.sampling.ClipSampler`, the modality transforms and the failure policy, and
:class:`ClipDataModule` provides the Lightning plumbing (splits, loaders, multi-view evaluation,
WebDataset shards in place of files).

Sample layout (``V = eval_clips * eval_crops`` views at val/test, 1 in training)::

    {modality: [*input] or [V, *input], "mask": {modality: [K] or [V]}, "index": int,
     "label": int64 scalar | float32 [num_classes] multi-hot | {column: int},
     "bad_count": int, "bad_files": str, "short_files": str}

``bad_files``/``short_files``: newline-joined paths of files found unreadable while producing the
sample, and of the sample's own file when it is shorter than the clip (``""`` otherwise); see
:mod:`versanet.data.failures`.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from versanet.data.captions import Caption
from versanet.data.failures import DataNotFound, SkipBadSamples
from versanet.data.loaders import fit_progress, make_loader
from versanet.data.sampling import ClipSampler, apply_transforms, needs_of
from versanet.data.transforms import Corpus, ModalityTransform
from versanet.data.video_io import MediaSource

log = logging.getLogger("versanet.data")

#: containers read as video (everything PyAV/FFmpeg opens that corpora ship in); other files in a media folder are skipped and named
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".mts", ".3gp", ".ogv", ".wmv", ".mxf", ".vob")
AUDIO_EXTS = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".aac")
SPLITS = ("train", "val", "test")


@dataclass
class VideoItem:
    """One listed sample: a media file and what goes with it.

    ``label``: class index, list of class indices (multi-label), ``{column: index}`` or None;
    ``segment``: ``(lo, hi)`` seconds inside the file to sample from (None: the whole file);
    ``query``: the one caption of a retrieval pair.
    """

    key: str
    path: str
    label: Any = None
    captions: list[Caption] = field(default_factory=list)
    segment: tuple[float, float] | None = None
    query: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON metadata stored beside the media bytes in a shard."""
        out = asdict(self)
        out["captions"] = [[c.start, c.end, c.text] for c in self.captions]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VideoItem:
        caps = [Caption(float(s), float(e), str(t)) for s, e, t in data.get("captions", [])]
        seg = data.get("segment")
        return cls(data["key"], data.get("path", ""), data.get("label"), caps, tuple(seg) if seg else None, data.get("query"))


def stable_fraction(key: str, seed: int = 0) -> float:
    """A deterministic number in [0, 1) from a string (hash-based held-out splits)."""
    return zlib.crc32(f"{seed}:{key}".encode()) / 2**32


def hold_out(items: list[VideoItem], fraction: float, group: Callable[[VideoItem], str], seed: int = 0) -> tuple[list[VideoItem], list[VideoItem]]:
    """Split items into (kept, held out) by group, about ``fraction`` of the groups held out, deterministically."""
    if fraction <= 0:
        return items, []
    held = [stable_fraction(group(it), seed) < fraction for it in items]
    return [it for it, h in zip(items, held) if not h], [it for it, h in zip(items, held) if h]


class FileIndex:
    """Media files under a folder, found once: by stem, and by YouTube id (first 11 characters); any container in ``exts``.

    ``skipped``: files that are not media (other extensions; hidden and partial files aside) and
    ``duplicates``: a stem found in several containers (the first by sorted path is used).
    """

    def __init__(self, folder: Path, exts: Iterable[str] = VIDEO_EXTS + AUDIO_EXTS) -> None:
        self.folder = folder
        exts = {e.lower() for e in exts}
        self.by_stem: dict[str, Path] = {}
        self.by_ytid: dict[str, Path] = {}
        self.skipped: list[Path] = []
        self.duplicates: list[tuple[Path, Path]] = []  # (ignored, used)
        if folder.is_dir():
            for dirpath, _, files in sorted(os.walk(folder)):
                for f in sorted(files):
                    p = Path(dirpath) / f
                    if f.startswith(".") or f.endswith((".partial", ".part")):
                        continue
                    if p.suffix.lower() not in exts:
                        self.skipped.append(p)
                        continue
                    if p.stem in self.by_stem:
                        self.duplicates.append((p, self.by_stem[p.stem]))
                        continue
                    self.by_stem[p.stem] = p
                    if len(p.stem) >= 11:
                        self.by_ytid.setdefault(p.stem[:11], p)

    def __len__(self) -> int:
        return len(self.by_stem)

    def find(self, key: str, youtube: bool = False) -> Path | None:
        """The file named ``key`` (any extension), else (``youtube``) one whose name starts with the 11-character id."""
        hit = self.by_stem.get(key)
        if hit is None and youtube:
            hit = self.by_ytid.get(key[:11]) if len(key) >= 11 else None
        return hit


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a text file (clear error when it is missing)."""
    if not path.is_file():
        raise FileNotFoundError(f"split/annotation file not found: {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]


class ClipDataset(SkipBadSamples, Dataset):
    """Items -> samples: decode the item's views, run the transforms, attach label and index.

    Args:
        items: what to read (see :class:`VideoItem`).
        transforms: modality -> transform (keys are batch keys).
        sampler: window/view/caption sampling shared by all corpora.
        train: training sampling (one random window, train augmentations) or evaluation (views).
        name: names the dataset in logs and errors, e.g. ``"UCF101DataModule train"``.
        num_classes, multilabel: label encoding (int64 scalar, or float32 multi-hot ``[num_classes]``).
        retrieval: one (clip, caption) pair per item: video ``[V, *input]`` even for V = 1, text ``[1, L]``.

    Training randomness (the window, the caption window, the augmentations) comes from torch's RNG, which
    the training loader seeds per sample from ``(seed, epoch, index)`` (:mod:`versanet.data.loaders`);
    evaluation sampling is deterministic.
    """

    def __init__(
        self, items: list[VideoItem], transforms: dict[str, ModalityTransform], sampler: ClipSampler, train: bool,
        name: str = "dataset", root: str | Path = "", num_classes: int = 0, multilabel: bool = False,
        retrieval: bool = False, max_bad_fraction: float = 0.05, seed: int = 0,
    ) -> None:
        self.items, self.transforms, self.sampler, self.train = list(items), transforms, sampler, train
        self.name, self.root, self.num_classes, self.multilabel, self.retrieval = name, root, num_classes, multilabel, retrieval
        self.max_bad_fraction, self.seed = max_bad_fraction, seed
        self.stop_on_bad_fraction = train  # evaluation sets report their bad files, never stop a run on them
        self.needs = needs_of(transforms)
        self.init_failures()

    def __len__(self) -> int:
        return len(self.items)

    def item_path(self, index: int) -> str | None:
        item = self.items[index]
        return item.path or item.key

    def _rng(self, index: int) -> np.random.Generator:
        """Evaluation: a function of the index; training: drawn from torch's RNG (seeded per sample by the training loader)."""
        if not self.train:
            return np.random.default_rng([self.seed, index])
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))

    def encode_label(self, label: Any) -> Any:
        """int -> int64 scalar; list -> float32 multi-hot ``[num_classes]`` (multilabel); dict -> as is."""
        if label is None or isinstance(label, dict):
            return label
        if self.multilabel:
            hot = torch.zeros(self.num_classes, dtype=torch.float32)
            hot[list(label)] = 1.0
            return hot
        return torch.tensor(int(label), dtype=torch.long)

    def load(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        sample = self.load_item(item, item.path, index)
        sample.setdefault("short_files", "")
        return sample

    def load_item(self, item: VideoItem, source: MediaSource, index: int) -> dict[str, Any]:
        """Decode and transform one item from ``source`` (its path or its bytes); raises MediaDecodeError."""
        views = self.sampler.views(self.train)
        raws = self.sampler.decode(
            source, item.path or item.key, self.needs, self.train, self._rng(index), segment=item.segment,
            captions=item.captions, query=item.query, video_id=item.key,
        )
        single = frozenset(m for m, t in self.transforms.items() if "captions" in t.needs) if self.retrieval else frozenset()
        inputs, masks = apply_transforms(self.transforms, raws, stack=views > 1 or self.retrieval, single=single)
        if self.retrieval:
            for m in single:
                inputs[m], masks[m] = inputs[m][:1], masks[m][:1]
        sample: dict[str, Any] = {**inputs, "mask": masks, "index": index, "short_files": (item.path or item.key) if any(r.padded for r in raws) else ""}
        label = self.encode_label(item.label)
        if label is not None:
            sample["label"] = label
        return sample


class ClipDataModule(LightningDataModule):
    """Base of the corpus data modules: subclasses list items per split (:meth:`list_items`) and class names.

    Args:
        root: the corpus folder, laid out as the public release (see each subclass).
        transforms: modality -> transform; keys are batch keys; each decodes only what it needs.
        batch_size, val_batch_size, num_workers: loaders (val/test use ``val_batch_size``).
        num_frames, fps, audio_rate, short_side: clip decoding (audio covers the same window).
        eval_clips, eval_crops: views per val/test sample (see :mod:`versanet.data.sampling`).
        missing_audio: ``silence`` (zeros + False audio mask) or ``skip`` (count as unreadable).
        short_clips: a file shorter than the clip: ``pad`` (repeat its last frame, zero-pad its audio;
            counted by ``DataHealth`` as ``data/short_clips``) or ``skip`` (count it as unreadable, replace it).
        max_bad_fraction: stop a training run when more than this fraction of the reads in a process fail.
        seed: the training order and the per-sample randomness derive from ``(seed, epoch, index)``.
        shards: WebDataset URL pattern (``/data/x/train-{000000..000099}.tar``, ``pipe:...``): train from
            shards written by ``versanet data shard`` instead of the files.
        samples_per_epoch: with ``shards``, samples per epoch over all ranks (equal batches on every rank).
    """

    multilabel: bool = False
    retrieval: bool = False
    dataset_class: type[ClipDataset] = ClipDataset

    def __init__(
        self,
        root: str,
        transforms: dict[str, ModalityTransform],
        batch_size: int = 32,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        num_frames: int = 32,
        fps: float = 10.0,
        audio_rate: int = 16000,
        short_side: int | None = None,
        eval_clips: int = 1,
        eval_crops: int = 1,
        missing_audio: str = "silence",
        short_clips: str = "pad",
        max_bad_fraction: float = 0.05,
        seed: int = 0,
        shards: str | None = None,
        samples_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.transforms = transforms
        self.batch_size, self.val_batch_size, self.num_workers = batch_size, val_batch_size or batch_size, num_workers
        self.clip_kw = dict(num_frames=num_frames, fps=fps, audio_rate=audio_rate, short_side=short_side, missing_audio=missing_audio, short_clips=short_clips)
        ClipSampler(**self.clip_kw)  # type: ignore[arg-type]  # a bad policy name fails here, before any data is read
        self.eval_clips, self.eval_crops = eval_clips, eval_crops
        self.max_bad_fraction, self.seed = max_bad_fraction, seed
        self.shards, self.samples_per_epoch = shards, samples_per_epoch
        self.class_names: list[str] = []
        self.missing: dict[str, list[str]] = {}
        self.owns_transforms = True  # False when a MixedDataModule prepares the transforms it shares
        self._sets: dict[str, Dataset] = {}
        self._loaded = False

    # ------------------------------------------------------------------ to implement per corpus
    def read_metadata(self) -> None:
        """Read class names and annotations (once, in :meth:`setup`)."""

    def list_items(self, split: str) -> list[VideoItem]:
        """The items of ``split`` (train/val/test)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_candidates(self) -> int:
        text = [t for t in self.transforms.values() if "captions" in t.needs]
        return getattr(text[0], "num_candidates", 1) if text else 1

    def sampler(self) -> ClipSampler:
        return ClipSampler(eval_clips=self.eval_clips, eval_crops=self.eval_crops, num_candidates=self.num_candidates, **self.clip_kw)  # type: ignore[arg-type]

    def check_root(self) -> None:
        """:class:`DataNotFound` naming the root when it does not exist (one line, before anything is read)."""
        if not self.root.is_dir():
            raise DataNotFound(f"{type(self).__name__}: data root {self.root} does not exist (set --data.init_args.root)")

    def existing(self, items: list[VideoItem], split: str) -> list[VideoItem]:
        """Items whose file exists; the others are counted in ``missing[split]`` and logged once."""
        kept = [it for it in items if it.path and Path(it.path).is_file()]
        missing = [it.path or it.key for it in items if not (it.path and Path(it.path).is_file())]
        if missing:
            self.missing[split] = missing
            log.warning("%s %s: %d of %d listed files not found (first: %s)", type(self).__name__, split, len(missing), len(items), missing[0])
        return kept

    def corpus(self) -> Corpus:
        """Captions a text transform may learn a vocabulary from (the training split's, else all listed)."""
        self._load()
        texts: list[str] = []
        for split in SPLITS:
            try:
                items = self.list_items(split)
            except DataNotFound:
                raise
            except (FileNotFoundError, NotImplementedError):
                continue
            texts += [c.text for it in items for c in it.captions] + [it.query for it in items if it.query]
            if texts and split == "train":
                break
        return Corpus(self.root, texts)

    def _load(self) -> None:
        if not self._loaded:
            self.check_root()
            self.read_metadata()
            self._loaded = True

    def needs_corpus(self) -> bool:
        return any("captions" in t.needs for t in self.transforms.values())

    def prepare_data(self) -> None:
        self.check_root()
        if self.owns_transforms and self.needs_corpus():
            corpus = self.corpus()
            for transform in self.transforms.values():
                transform.prepare(corpus)

    def setup_transforms(self) -> None:
        """Per-process setup of the transforms on this corpus (a tokenizer loads what ``prepare`` wrote)."""
        corpus = self.corpus() if self.needs_corpus() else Corpus(self.root, [])
        for transform in self.transforms.values():
            transform.setup(corpus)

    def setup(self, stage: str | None = None) -> None:
        self._load()
        if self.owns_transforms:
            self.setup_transforms()
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}.get(stage or "", SPLITS)
        for split in wanted:
            self.dataset(split)

    def dataset_kwargs(self, split: str) -> dict[str, Any]:
        """Extra arguments of :attr:`dataset_class` (subclasses add theirs)."""
        return {}

    def dataset(self, split: str) -> ClipDataset:
        """The (cached) dataset of ``split``."""
        if split not in self._sets:
            self._load()
            self._sets[split] = self.dataset_class(
                self.list_items(split), self.transforms, self.sampler(), train=split == "train", name=f"{type(self).__name__} {split}",
                root=self.root, num_classes=self.num_classes, multilabel=self.multilabel, retrieval=self.retrieval,
                max_bad_fraction=self.max_bad_fraction, seed=self.seed, **self.dataset_kwargs(split),
            )
        return self._sets[split]  # type: ignore[return-value]

    def remember_bad_files(self, paths: list[str]) -> None:
        """Files known to be unreadable (a checkpoint's): never read again by this process's datasets."""
        for dataset in self._sets.values():
            if isinstance(dataset, SkipBadSamples):
                dataset.remember_bad(paths)

    @property
    def train_set(self) -> ClipDataset:
        return self.dataset("train")

    @property
    def val_set(self) -> ClipDataset:
        return self.dataset("val")

    @property
    def test_set(self) -> ClipDataset:
        return self.dataset("test")

    def modality_specs(self) -> dict[str, dict[str, Any]]:
        return {m: t.spec() for m, t in self.transforms.items()}

    def collate_fn(self) -> Callable | None:
        """How samples become batches (None: torch's default collate)."""
        return None

    def train_dataloader(self) -> DataLoader:
        if self.shards:
            from versanet.data.shards import shard_loader

            return shard_loader(self, self.shards)
        return make_loader(self.train_set, self.batch_size, True, self.num_workers, self.collate_fn(), seed=self.seed, progress=fit_progress(self))

    def val_dataloader(self) -> DataLoader:
        return make_loader(self.val_set, self.val_batch_size, False, self.num_workers, self.collate_fn())

    def test_dataloader(self) -> DataLoader:
        return make_loader(self.test_set, self.val_batch_size, False, self.num_workers, self.collate_fn())
