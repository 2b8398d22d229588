"""Action recognition corpora in their released layouts: UCF101, HMDB51, Kinetics.

Splits: ``test`` is the official test split (Kinetics: the official validation set, see below);
``val`` is a held-out part of the training split (``val_fraction``, by UCF101 group, HMDB51 source
video, Kinetics video), or, with ``val_fraction: 0``, the test split again while training uses
the whole training split (the papers' linear/fine-tune protocols train on all of it).
Labels: class index (int64) in the release's class order (UCF101: ``classInd.txt``; HMDB51 and
Kinetics: class names sorted).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from versanet.data.datasets.base import ClipDataModule, FileIndex, VideoItem, hold_out, read_lines
from versanet.data.transforms import ModalityTransform
from versanet.registry import register


class _ActionDataModule(ClipDataModule):
    """Shared: held-out validation and the official split number."""

    def __init__(self, root: str, transforms: dict[str, ModalityTransform], split: int = 1, val_fraction: float = 0.1, **kwargs) -> None:
        super().__init__(root, transforms, **kwargs)
        if split not in (1, 2, 3):
            raise ValueError(f"{type(self).__name__}: split must be 1, 2 or 3, got {split}")
        self.split, self.val_fraction = split, val_fraction

    def group(self, item: VideoItem) -> str:
        return item.key

    def official(self, split: str) -> list[VideoItem]:
        raise NotImplementedError

    def list_items(self, split: str) -> list[VideoItem]:
        if split == "test" or (split == "val" and self.val_fraction <= 0):
            return self.existing(self.official("test"), "test")
        train, held = hold_out(self.official("train"), self.val_fraction, self.group, self.seed)
        return self.existing(train if split == "train" else held, split)


@register("dataset")
class UCF101DataModule(_ActionDataModule):
    """UCF101 (101 classes, splits 1-3): ``<video_dir>/<Class>/v_<Class>_gXX_cYY.avi`` with ``ucfTrainTestlist``.

    Layout under ``root`` (the release's archive names): ``UCF-101/<Class>/*.avi`` and
    ``ucfTrainTestlist/{classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt}``.
    ``val_fraction`` holds out whole groups (``gXX`` of a class: clips of one source video).
    """

    def __init__(self, root: str, transforms: dict[str, ModalityTransform], split: int = 1, video_dir: str = "UCF-101", split_dir: str = "ucfTrainTestlist", **kwargs) -> None:
        super().__init__(root, transforms, split, **kwargs)
        self.video_dir, self.split_dir = video_dir, split_dir

    def read_metadata(self) -> None:
        rows = [line.split() for line in read_lines(self.root / self.split_dir / "classInd.txt")]
        ordered = sorted(rows, key=lambda r: int(r[0]))
        self.class_names = [r[1] for r in ordered]
        self._class_index = {name.lower(): i for i, name in enumerate(self.class_names)}

    def group(self, item: VideoItem) -> str:
        match = re.search(r"_g(\d+)_c\d+", item.key)
        return f"{item.label}:{match.group(1) if match else item.key}"

    def official(self, split: str) -> list[VideoItem]:
        name = f"{'trainlist' if split == 'train' else 'testlist'}0{self.split}.txt"
        items = []
        for line in read_lines(self.root / self.split_dir / name):
            rel = line.split()[0]
            cls = rel.split("/")[0]
            if cls.lower() not in self._class_index:
                raise ValueError(f"{self.root / self.split_dir / name}: class {cls!r} of {rel} is not in classInd.txt")
            items.append(VideoItem(Path(rel).stem, str(self.root / self.video_dir / rel), self._class_index[cls.lower()]))
        return items


@register("dataset")
class HMDB51DataModule(_ActionDataModule):
    """HMDB51 (51 classes, splits 1-3): ``<video_dir>/<class>/*.avi`` with ``<class>_test_split{1,2,3}.txt``.

    Split files (``testTrainMulti_7030_splits``) list ``<video>.avi <id>``: 1 train, 2 test, 0 unused.
    ``val_fraction`` holds out whole source videos (clips ``..._N.avi`` cut from one video stay together).
    """

    def __init__(self, root: str, transforms: dict[str, ModalityTransform], split: int = 1, video_dir: str = "hmdb51_org", split_dir: str = "testTrainMulti_7030_splits", **kwargs) -> None:
        super().__init__(root, transforms, split, **kwargs)
        self.video_dir, self.split_dir = video_dir, split_dir

    def read_metadata(self) -> None:
        folder = self.root / self.split_dir
        files = sorted(folder.glob(f"*_test_split{self.split}.txt")) if folder.is_dir() else []
        if not files:
            raise FileNotFoundError(f"HMDB51: no *_test_split{self.split}.txt files in {folder}")
        self._files = {f.name[: -len(f"_test_split{self.split}.txt")]: f for f in files}
        self.class_names = sorted(self._files)

    def group(self, item: VideoItem) -> str:
        return re.sub(r"_\d+$", "", item.key)

    def official(self, split: str) -> list[VideoItem]:
        want = "1" if split == "train" else "2"
        items = []
        for label, cls in enumerate(self.class_names):
            for line in read_lines(self._files[cls]):
                parts = line.split()
                if len(parts) >= 2 and parts[1] == want:
                    items.append(VideoItem(Path(parts[0]).stem, str(self.root / self.video_dir / cls / parts[0]), label))
        return items


@register("dataset")
class KineticsDataModule(ClipDataModule):
    """Kinetics-400/600/700: annotation CSVs ``label,youtube_id,time_start,time_end,split`` and downloaded clips.

    Layout under ``root``: ``annotations/{train,validate,test}.csv`` and clips anywhere under
    ``video_dir``, found by YouTube id (the official downloader's ``<split>/<label>/<id>_<start:06d>_<end:06d>.mp4``,
    or ``<id>.mp4``). ``trimmed``: the files hold the 10 s clip (else the full video, and the
    annotated ``time_start..time_end`` segment is sampled). ``test``: the official validation set
    (``test_split: validate``, what the papers report), or ``test_split: test`` when its labels
    exist; ``val`` holds out ``val_fraction`` of the training videos (0: the test split again).
    Listed clips missing on disk (common for Kinetics) are skipped and counted in ``missing``.
    """

    def __init__(
        self, root: str, transforms: dict[str, ModalityTransform], annotation_dir: str = "annotations", video_dir: str = "videos",
        test_split: str = "validate", val_fraction: float = 0.0, trimmed: bool = True, **kwargs,
    ) -> None:
        super().__init__(root, transforms, **kwargs)
        self.annotation_dir, self.video_dir, self.test_split = annotation_dir, video_dir, test_split
        self.val_fraction, self.trimmed = val_fraction, trimmed

    def _rows(self, name: str) -> list[dict[str, str]]:
        path = self.root / self.annotation_dir / f"{name}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"Kinetics annotation file not found: {path}")
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        missing = {"label", "youtube_id", "time_start", "time_end"} - set(rows[0] if rows else {})
        if rows and missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected label,youtube_id,time_start,time_end,split")
        return rows

    def read_metadata(self) -> None:
        self.class_names = sorted({r["label"] for r in self._rows("train")})
        self._index = {n: i for i, n in enumerate(self.class_names)}
        self._files = FileIndex(self.root / self.video_dir)

    def _items(self, name: str) -> list[VideoItem]:
        items = []
        for r in self._rows(name):
            ytid, t0, t1 = r["youtube_id"], float(r["time_start"]), float(r["time_end"])
            if r["label"] not in self._index:
                continue
            key = f"{ytid}_{int(t0):06d}_{int(t1):06d}"
            path = self._files.find(key) or self._files.find(ytid, youtube=True)
            segment = None if self.trimmed else (t0, t1)
            items.append(VideoItem(key, str(path) if path else key, self._index[r["label"]], segment=segment))
        return items

    def list_items(self, split: str) -> list[VideoItem]:
        if split == "test" or (split == "val" and self.val_fraction <= 0):
            return self.existing(self._items(self.test_split), "test")
        train, held = hold_out(self._items("train"), self.val_fraction, lambda it: it.key, self.seed)
        return self.existing(train if split == "train" else held, split)
