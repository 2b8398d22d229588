"""Image corpora for the deflated video networks: class folders (ImageNet, any ImageFolder tree) and PASCAL VOC 2007 (multi-label, mAP).

Still frames of a video corpus (e.g. the toy world) are images too:
:class:`~versanet.data.captioned_video.VideoStillsDataModule` decodes them through the same transforms.

A sample is ``{"image": float [3, crop, crop] in [0, 1], "mask": {"image": [1]}, "label", "index"}``
(plus ``"difficult"`` multi-hot for VOC). Images are decoded with ``torchvision.io`` and go
through the configured transforms as a one-frame :class:`RawClip` (``frames [1, H, W, 3]``), so
:class:`ImageTransform` or any frame transform (input inflation: a video transform) applies.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision import io as tvio
from torchvision import tv_tensors
from torchvision.transforms import v2

from versanet.data.datasets.base import ClipDataModule, ClipDataset, VideoItem, hold_out, read_lines
from versanet.data.failures import DataNotFound
from versanet.data.sampling import apply_transforms
from versanet.data.transforms import ModalityTransform, RawClip
from versanet.data.video_io import MediaDecodeError, MediaSource
from versanet.registry import register

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


@register("transform")
class ImageTransform(ModalityTransform):
    """One RGB image (a one-frame clip) -> ``[3, crop, crop]`` float in [0, 1] (torchvision v2).

    Train: ``RandomResizedCrop(crop, scale)`` and a horizontal flip; eval: short side ``resize``, centre ``crop``.
    ``augment: false`` uses the eval path in training too (e.g. BN recalibration of a deflated network, which
    compares the image network with the video network on the same deterministic view).
    ``value_range``: the output's range, ``(0, 1)`` by default; ``(-1, 1)`` for VATT (``2 x - 1``).
    """

    needs = frozenset({"frames"})

    def __init__(
        self, crop: int = 224, resize: int = 256, scale: tuple[float, float] = (0.08, 1.0), flip_prob: float = 0.5, augment: bool = True,
        value_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.crop, self.resize, self.augment = crop, resize, augment
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.train_ops = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.RandomResizedCrop(crop, scale=scale, antialias=True), v2.RandomHorizontalFlip(flip_prob)])
        self.eval_ops = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Resize(resize, antialias=True), v2.CenterCrop(crop)])

    def spec(self) -> dict[str, Any]:
        return {"crop": self.crop, "value_range": self.value_range}

    def __call__(self, clip: RawClip) -> tuple[Tensor, Tensor]:
        """-> ``[3, crop, crop]``, mask ``[1]``."""
        image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(clip.frames[0])).permute(2, 0, 1))
        out = (self.train_ops if clip.train and self.augment else self.eval_ops)(image).as_subclass(Tensor).contiguous()
        lo, hi = self.value_range
        if (lo, hi) != (0.0, 1.0):
            out = out * (hi - lo) + lo
        return out, torch.ones(1, dtype=torch.bool)


def decode_image(source: MediaSource, name: str) -> np.ndarray:
    """JPEG/PNG file or bytes -> uint8 ``[H, W, 3]``; :class:`MediaDecodeError` naming the file otherwise."""
    try:
        data = tvio.read_file(str(source)) if isinstance(source, (str, Path)) else torch.frombuffer(bytearray(source), dtype=torch.uint8)  # type: ignore[arg-type]
        image = tvio.decode_image(data, mode=tvio.ImageReadMode.RGB)
    except (RuntimeError, OSError, ValueError) as err:
        raise MediaDecodeError(name, f"cannot decode image: {err}") from err
    return image.permute(1, 2, 0).numpy()


class ImageDataset(ClipDataset):
    """Items are image files; the transforms see a one-frame clip."""

    def load_item(self, item: VideoItem, source: MediaSource, index: int) -> dict[str, Any]:
        frames = decode_image(source, item.path or item.key)[None]
        raw = RawClip(item.key, 0.0, 0.0, self.train, frames=frames)
        inputs, masks = apply_transforms(self.transforms, [raw], stack=False)
        sample: dict[str, Any] = {**inputs, "mask": masks, "index": index}
        label = item.label
        if self.multilabel:
            positive, difficult = label
            sample["label"] = self.encode_label(positive)
            sample["difficult"] = self.encode_label(difficult)
        else:
            sample["label"] = self.encode_label(label)
        return sample


class _ImageDataModule(ClipDataModule):
    """Image data modules: default transform ``{"image": ImageTransform()}``."""

    dataset_class = ImageDataset

    def __init__(self, root: str, transforms: dict[str, ModalityTransform] | None = None, **kwargs) -> None:
        super().__init__(root, transforms or {"image": ImageTransform()}, **kwargs)


@register("dataset")
class VOC2007DataModule(_ImageDataModule):
    """PASCAL VOC 2007 classification (20 classes, multi-label): ``JPEGImages/``, ``Annotations/*.xml``, ``ImageSets/Main/*.txt``.

    ``label``: float32 multi-hot of the classes with at least one non-difficult object; ``difficult``:
    classes present only as difficult objects (the VOC protocol ignores them when scoring that class).
    ``train``: ``train_split`` (default ``trainval``, the protocol's training set), ``val``: ``val.txt``,
    ``test``: ``test.txt``. ``root`` is the ``VOC2007`` folder (``VOCdevkit/VOC2007``).
    """

    multilabel = True

    def __init__(self, root: str, transforms: dict[str, ModalityTransform] | None = None, train_split: str = "trainval", **kwargs) -> None:
        super().__init__(root, transforms, **kwargs)
        self.train_split = train_split

    def read_metadata(self) -> None:
        self.class_names = list(VOC_CLASSES)

    def _ids(self, name: str) -> list[str]:
        path = self.root / "ImageSets" / "Main" / f"{name}.txt"
        if name == "trainval" and not path.is_file():
            return self._ids("train") + self._ids("val")
        return [line.split()[0] for line in read_lines(path)]

    def _labels(self, image_id: str) -> tuple[list[int], list[int]]:
        path = self.root / "Annotations" / f"{image_id}.xml"
        try:
            tree = ET.parse(path)
        except (ET.ParseError, OSError):
            return [], []  # counted at read time: the image is still read, with no labels
        positive, difficult = set(), set()
        for obj in tree.getroot().iter("object"):
            name = (obj.findtext("name") or "").strip()
            if name in VOC_CLASSES:
                (difficult if (obj.findtext("difficult") or "0").strip() == "1" else positive).add(VOC_CLASSES.index(name))
        return sorted(positive), sorted(difficult - positive)

    def list_items(self, split: str) -> list[VideoItem]:
        name = {"train": self.train_split, "val": "val", "test": "test"}[split]
        items = [VideoItem(i, str(self.root / "JPEGImages" / f"{i}.jpg"), self._labels(i)) for i in self._ids(name)]
        return self.existing(items, split)


@register("dataset")
class ImageFolderDataModule(_ImageDataModule):
    """Images in class folders (torchvision's ImageFolder layout): ``<train_dir>/<class>/*.jpg|png|...`` and ``<val_dir>/<class>/...``.

    Classes are the training folder's subfolders, sorted by name. ``test`` and ``val`` = ``val_dir``
    unless ``val_fraction > 0``, which holds out that fraction of the training images as ``val``.
    """

    def __init__(self, root: str, transforms: dict[str, ModalityTransform] | None = None, train_dir: str = "train", val_dir: str = "val", val_fraction: float = 0.0, **kwargs) -> None:
        super().__init__(root, transforms, **kwargs)
        self.train_dir, self.val_dir, self.val_fraction = train_dir, val_dir, val_fraction

    def read_metadata(self) -> None:
        folder = self.root / self.train_dir
        if not folder.is_dir():
            raise DataNotFound(f"{type(self).__name__}: training folder not found: {folder} (set --data.init_args.train_dir)")
        self.class_names = sorted(p.name for p in folder.iterdir() if p.is_dir())

    def _folder(self, name: str) -> list[VideoItem]:
        items = []
        for label, cls in enumerate(self.class_names):
            folder = self.root / name / cls
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS) if folder.is_dir() else []
            items += [VideoItem(p.stem, str(p), label) for p in files]
        return items

    def list_items(self, split: str) -> list[VideoItem]:
        if split == "test" or (split == "val" and self.val_fraction <= 0):
            return self._folder(self.val_dir)
        train, held = hold_out(self._folder(self.train_dir), self.val_fraction, lambda it: it.key, self.seed)
        return train if split == "train" else held


@register("dataset")
class ImageNetDataModule(ImageFolderDataModule):
    """ImageNet (class folders): ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG``; classes sorted by folder name.

    ``test`` and ``val`` = the official validation set (test labels are not public) unless
    ``val_fraction > 0``, which holds out that fraction of the training images as ``val``.
    """
