"""Text-to-video retrieval corpora: MSR-VTT (1k-A test) and YouCook2 (validation clips).

A sample is one (video or segment, caption) pair: ``video [V, *input]`` (V = ``eval_clips`` evenly
spaced clips, 4 by default as in the papers), ``audio`` likewise when a transform asks for it,
``text [1, L]`` (the query caption through the text transform), ``mask``, ``index``. The model
averages the V clip embeddings and ranks videos for each caption.
"""

from __future__ import annotations

import csv
import json

from versanet.data.captions import Caption
from versanet.data.datasets.base import ClipDataModule, FileIndex, VideoItem
from versanet.data.transforms import ModalityTransform
from versanet.registry import register


@register("dataset")
class MSRVTTDataModule(ClipDataModule):
    """MSR-VTT zero-shot retrieval on the 1k-A test set: ``MSRVTT_JSFUSION_test.csv`` (``key,vid_key,video_id,sentence``) + ``video<N>.mp4``.

    ``test`` (and ``val``) = the 1,000 1k-A pairs. ``train`` (optional): the videos of
    ``train_list`` (``MSRVTT_train.9k.csv``, column ``video_id``) with their captions from
    ``MSRVTT_data.json`` (``sentences: [{video_id, caption}]``), one random caption per sample.
    Videos are found by name anywhere under ``video_dir``.
    """

    retrieval = True

    def __init__(
        self, root: str, transforms: dict[str, ModalityTransform], test_csv: str = "MSRVTT_JSFUSION_test.csv", video_dir: str = "videos",
        train_list: str = "MSRVTT_train.9k.csv", data_json: str = "MSRVTT_data.json", eval_clips: int = 4, **kwargs,
    ) -> None:
        super().__init__(root, transforms, eval_clips=eval_clips, **kwargs)
        self.test_csv, self.video_dir, self.train_list, self.data_json = test_csv, video_dir, train_list, data_json

    def read_metadata(self) -> None:
        self._files = FileIndex(self.root / self.video_dir)

    def _path(self, video_id: str) -> str:
        found = self._files.find(video_id)
        return str(found) if found else video_id

    def list_items(self, split: str) -> list[VideoItem]:
        if split in ("val", "test"):
            path = self.root / self.test_csv
            if not path.is_file():
                raise FileNotFoundError(f"MSR-VTT 1k-A test list not found: {path}")
            with path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
            items = [VideoItem(r["video_id"], self._path(r["video_id"]), query=r["sentence"]) for r in rows]
            return self.existing(items, split)
        for name in (self.train_list, self.data_json):
            if not (self.root / name).is_file():
                raise FileNotFoundError(f"MSR-VTT training needs {self.root / name} (zero-shot evaluation needs only {self.test_csv})")
        with (self.root / self.train_list).open(newline="", encoding="utf-8") as f:
            train_ids = {r["video_id"] for r in csv.DictReader(f)}
        sentences: dict[str, list[Caption]] = {}
        for s in json.loads((self.root / self.data_json).read_text(encoding="utf-8"))["sentences"]:
            if s["video_id"] in train_ids:
                sentences.setdefault(s["video_id"], []).append(Caption(0.0, 1e9, s["caption"]))
        items = [VideoItem(v, self._path(v), captions=caps) for v, caps in sorted(sentences.items())]
        return self.existing(items, split)


@register("dataset")
class YouCook2DataModule(ClipDataModule):
    """YouCook2 retrieval: ``youcookii_annotations_trainval.json`` segments (``segment [start, end]``, ``sentence``) + raw videos.

    One sample per annotated segment: clips are sampled inside the segment, the query is its
    sentence. ``val`` and ``test`` = the ``validation`` subset (the test annotations are not public;
    about 3,350 segments); ``train`` = the ``training`` subset (the segment's sentence is the caption).
    Videos are found by YouTube id anywhere under ``video_dir`` (``raw_videos/<split>/<recipe>/<id>.mp4``).
    """

    retrieval = True

    def __init__(
        self, root: str, transforms: dict[str, ModalityTransform], annotations: str = "youcookii_annotations_trainval.json",
        video_dir: str = "raw_videos", eval_clips: int = 4, **kwargs,
    ) -> None:
        super().__init__(root, transforms, eval_clips=eval_clips, **kwargs)
        self.annotations, self.video_dir = annotations, video_dir

    def read_metadata(self) -> None:
        path = self.root / self.annotations
        if not path.is_file():
            raise FileNotFoundError(f"YouCook2 annotations not found: {path}")
        self._db = json.loads(path.read_text(encoding="utf-8"))["database"]
        self._files = FileIndex(self.root / self.video_dir)

    def list_items(self, split: str) -> list[VideoItem]:
        subset = "training" if split == "train" else "validation"
        items = []
        for vid, entry in sorted(self._db.items()):
            if entry.get("subset") != subset:
                continue
            path = self._files.find(vid)
            for ann in entry.get("annotations", []):
                lo, hi = (float(x) for x in ann["segment"])
                cap = Caption(lo, hi, ann["sentence"])
                items.append(VideoItem(f"{vid}_{ann.get('id', len(items))}", str(path) if path else vid, segment=(lo, hi), query=ann["sentence"], captions=[cap]))
        return self.existing(items, split)
