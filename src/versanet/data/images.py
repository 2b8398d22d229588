"""Image data: an ImageFolder tree, or still frames of the toy world's videos (for deflation and image probes).

Layouts:
- ImageFolder (torchvision): ``root/<train_dir>/<class>/*.jpg|png`` and ``root/<val_dir>/<class>/...``.
- Toy frames (``toy_frames_from``): a corpus folder with ``videos/<id>.mp4`` and
  ``splits/{train,val}.txt`` (what ``versanet toy-data`` writes); each video gives
  ``frames_per_video`` stills at ``(i + 0.5) * frame_spacing`` seconds, decoded on demand with
  PyAV, labelled by ``labels.csv``'s ``toy_label`` column when present (else -1).

A sample is ``{"image": float [3, crop, crop] in [0, 1], "label": int, "index": int}``; images are
resized (short side ``resize``) and centre-cropped, like the video transform's eval path, so an
image network sees what the video network saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets
from torchvision.transforms import v2

from versanet.data.captioned_video import read_labels, read_split
from versanet.data.toy import ToyWorldConfig, generate_toy_world
from versanet.data.video_io import read_clip
from versanet.registry import register


def image_transform(resize: int, crop: int, flip_prob: float = 0.0) -> Callable[[Any], torch.Tensor]:
    """PIL image / uint8 ``[H, W, 3]`` array / ``[3, H, W]`` tensor -> float ``[3, crop, crop]`` in [0, 1]."""
    ops: list[Any] = [v2.ToImage(), v2.Resize(resize, antialias=True), v2.CenterCrop(crop)]
    if flip_prob > 0:
        ops.append(v2.RandomHorizontalFlip(flip_prob))
    ops.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(ops)


class ImageFolderDataset(Dataset):
    """torchvision ``ImageFolder`` as versanet sample dicts."""

    def __init__(self, root: str | Path, transform: Callable[[Any], torch.Tensor]) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder not found: {root}")
        self.folder = datasets.ImageFolder(str(root))
        self.transform = transform
        self.classes = list(self.folder.classes)

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, label = self.folder[index]
        return {"image": self.transform(image), "label": int(label), "index": index}


class VideoFramesDataset(Dataset):
    """Still frames of videos: sample ``i`` is frame ``i % frames_per_video`` of video ``i // frames_per_video``."""

    def __init__(
        self,
        root: str | Path,
        video_ids: list[str],
        transform: Callable[[Any], torch.Tensor],
        frames_per_video: int = 4,
        frame_spacing: float = 1.0,
        labels: dict[str, int] | None = None,
        video_dir: str = "videos",
        video_ext: str = ".mp4",
    ) -> None:
        self.root, self.video_ids, self.transform = Path(root), list(video_ids), transform
        self.frames_per_video, self.frame_spacing = frames_per_video, frame_spacing
        self.labels = labels or {}
        self.video_dir, self.video_ext = video_dir, video_ext

    def __len__(self) -> int:
        return len(self.video_ids) * self.frames_per_video

    def __getitem__(self, index: int) -> dict[str, Any]:
        vid = self.video_ids[index // self.frames_per_video]
        start = (index % self.frames_per_video + 0.5) * self.frame_spacing
        clip = read_clip(self.root / self.video_dir / f"{vid}{self.video_ext}", start=start, num_frames=1, fps=25.0, audio_rate=None)
        return {"image": self.transform(clip.frames[0]), "label": int(self.labels.get(vid, -1)), "index": index}


@register("dataset")
class ImageFolderDataModule(LightningDataModule):
    """Images ``[3, H, W]`` with labels: an ImageFolder tree (train/val class folders), or stills of the toy world's videos.

    Args:
        root: folder holding ``train_dir`` and ``val_dir`` (ImageFolder layout).
        resize, crop: short side resize, then centre crop (train and val alike).
        flip_prob: horizontal flips of training images (0 = none).
        toy_frames_from: instead of ``root``, a video corpus (``videos/*.mp4``, ``splits/{train,val}.txt``).
        frames_per_video, frame_spacing: stills per video and their spacing in seconds (toy frames).
        toy_label: ``labels.csv`` column used as the label of toy frames.
        toy: generate the toy world into ``toy_frames_from`` first (once), as the pretraining data module does.
    """

    def __init__(
        self,
        root: str | None = None,
        train_dir: str = "train",
        val_dir: str = "val",
        resize: int = 224,
        crop: int = 200,
        flip_prob: float = 0.0,
        batch_size: int = 64,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        toy_frames_from: str | None = None,
        frames_per_video: int = 4,
        frame_spacing: float = 1.0,
        toy_label: str = "shape",
        toy: ToyWorldConfig | None = None,
    ) -> None:
        super().__init__()
        if (root is None) == (toy_frames_from is None):
            raise ValueError("ImageFolderDataModule: give exactly one of root (ImageFolder layout) or toy_frames_from (a video corpus)")
        self.root, self.train_dir, self.val_dir = root, train_dir, val_dir
        self.resize, self.crop, self.flip_prob = resize, crop, flip_prob
        self.batch_size, self.val_batch_size, self.num_workers = batch_size, val_batch_size or batch_size, num_workers
        self.toy_frames_from, self.frames_per_video, self.frame_spacing = toy_frames_from, frames_per_video, frame_spacing
        self.toy_label, self.toy = toy_label, toy
        self.classes: list[str] = []

    def prepare_data(self) -> None:
        if self.toy is not None and self.toy_frames_from is not None:
            generate_toy_world(self.toy_frames_from, self.toy, workers=max(1, self.num_workers), progress=True)

    def setup(self, stage: str | None = None) -> None:
        train_tf = image_transform(self.resize, self.crop, self.flip_prob)
        val_tf = image_transform(self.resize, self.crop)
        if self.toy_frames_from is None:
            root = Path(self.root)  # type: ignore[arg-type]
            self.train_set: Dataset = ImageFolderDataset(root / self.train_dir, train_tf)
            self.val_set: Dataset = ImageFolderDataset(root / self.val_dir, val_tf)
            self.classes = self.train_set.classes  # type: ignore[attr-defined]
            return
        root = Path(self.toy_frames_from)
        labels: dict[str, int] = {}
        if (root / "labels.csv").is_file():
            per_video, classes = read_labels(root / "labels.csv")
            if self.toy_label in classes:
                labels = {vid: cols[self.toy_label] for vid, cols in per_video.items()}
                self.classes = classes[self.toy_label]
        common = dict(frames_per_video=self.frames_per_video, frame_spacing=self.frame_spacing, labels=labels)
        self.train_set = VideoFramesDataset(root, read_split(root / "splits" / "train.txt"), train_tf, **common)
        self.val_set = VideoFramesDataset(root, read_split(root / "splits" / "val.txt"), val_tf, **common)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _loader(self, dataset: Dataset, batch_size: int, train: bool) -> DataLoader:
        return DataLoader(
            dataset, batch_size=batch_size, shuffle=train, drop_last=train and len(dataset) >= batch_size,  # type: ignore[arg-type]
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.val_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
