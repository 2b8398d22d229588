"""Corpus readers, one module per family; importing this package registers every data module by name.

Pretraining: ``HowTo100MDataModule``, ``VideoFolderDataModule``, ``CaptionedVideoDataModule`` (toy
world), ``AudioSetPretrainDataModule``, ``MixedDataModule``. Benchmarks: ``UCF101DataModule``,
``HMDB51DataModule``, ``KineticsDataModule``, ``ESC50DataModule``, ``AudioSetDataModule``,
``MSRVTTDataModule``, ``YouCook2DataModule``, ``VOC2007DataModule``, ``ImageFolderDataModule``,
``ImageNetDataModule``, ``CrossTaskDataModule``; ``VideoStillsDataModule`` (images from videos).
Layouts and splits: ``docs/data.md``.

The pretraining modules on captioned videos live in :mod:`versanet.data.captioned_video`, which
builds on :mod:`versanet.data.datasets.base` and so is not imported here (import both to register all).
"""

from versanet.data.datasets.action import HMDB51DataModule, KineticsDataModule, UCF101DataModule
from versanet.data.datasets.audio import AudioSetDataModule, AudioSetPretrainDataModule, ESC50DataModule
from versanet.data.datasets.base import ClipDataModule, ClipDataset, VideoItem
from versanet.data.datasets.crosstask import CrossTaskDataModule
from versanet.data.datasets.images import ImageFolderDataModule, ImageNetDataModule, ImageTransform, VOC2007DataModule
from versanet.data.datasets.retrieval import MSRVTTDataModule, YouCook2DataModule
from versanet.data.mixing import MixedDataModule

__all__ = [
    "AudioSetDataModule", "AudioSetPretrainDataModule", "ClipDataModule", "ClipDataset", "CrossTaskDataModule",
    "ESC50DataModule", "HMDB51DataModule", "ImageFolderDataModule", "ImageNetDataModule", "ImageTransform", "KineticsDataModule",
    "MSRVTTDataModule", "MixedDataModule", "UCF101DataModule", "VOC2007DataModule", "VideoItem", "YouCook2DataModule",
]
