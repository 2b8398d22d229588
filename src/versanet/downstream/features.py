"""Frozen-backbone feature extraction with an on-disk cache.

Features are extracted once per (checkpoint, backbone variant, data set-up, split, view settings)
and reused by every classifier setting that reads them (regularisation sweeps, solvers, heads,
a re-run of the same benchmark). The cache key is the SHA-256 of a JSON description of:

- the backbone: the checkpoint file's content hash, ``init`` (pretrained or random, with its seed),
  the modality and how the encoder was derived (e.g. deflation method);
- the data: the data module's class and its configuration (every plain init setting it keeps, the
  transforms' settings; batch sizes and worker counts left out because they do not change features
  in eval mode), the split read (``train``/``test``), the number of augmented passes and the seed
  of the augmentation draw.

A cache file ``<cache_dir>/<key>.pt`` holds ``{"features": [N, V, d], "labels": [N] or [N, C],
"index": [N], "meta": <the description>}``; the description is stored so a file can be told apart
by eye (``versanet.downstream.features.describe_cache``). Features are kept in ``dtype`` in memory
as on disk, so a run that extracts and one that reads the cache see the same numbers.

The cache directory is ``cache_dir`` when given, else ``$VERSANET_FEATURE_CACHE``, else
``runs/feature_cache``. Delete files there to force re-extraction (e.g. after editing a data set on disk).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from versanet.checkpoint import safe_load
from versanet.downstream.common import flatten_views, pick_label

log = logging.getLogger(__name__)

#: data-module attributes that do not change features, or are state rather than settings (left out of the cache key)
IGNORED_DATA_KEYS = frozenset({
    "batch_size", "val_batch_size", "test_batch_size", "num_workers", "pin_memory", "persistent_workers", "trainer",
    "prepare_data_per_node", "allow_zero_length_dataloader_with_multiple_devices", "missing",
})


def default_cache_dir() -> Path:
    return Path(os.environ.get("VERSANET_FEATURE_CACHE", "runs/feature_cache"))


def describe(obj: Any, depth: int = 0) -> Any:
    """A stable JSON-able description of a configuration object (no memory addresses)."""
    if depth > 4:
        return type(obj).__name__
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, os.PathLike):
        return str(obj)
    if isinstance(obj, Tensor):
        return obj.tolist() if obj.numel() <= 16 else f"tensor{tuple(obj.shape)}"
    if isinstance(obj, dict):
        return {str(k): describe(v, depth + 1) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))
                if not str(k).startswith("_") and str(k) not in IGNORED_DATA_KEYS}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [describe(v, depth + 1) for v in items]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"class": type(obj).__qualname__, **describe(dataclasses.asdict(obj), depth + 1)}
    if isinstance(obj, nn.Module):
        return {"class": type(obj).__qualname__, "repr": repr(obj)}
    if callable(obj) and not hasattr(obj, "__dict__"):
        return getattr(obj, "__qualname__", type(obj).__name__)
    attrs = {k: v for k, v in vars(obj).items() if not k.startswith("_")} if hasattr(obj, "__dict__") else {}
    return {"class": f"{type(obj).__module__}.{type(obj).__qualname__}", **describe(attrs, depth + 1)}


def describe_datamodule(datamodule: Any) -> dict[str, Any]:
    """The data module's class and plain settings (what decides which samples and views it produces)."""
    settings = {k: v for k, v in vars(datamodule).items() if not k.startswith("_") and k not in IGNORED_DATA_KEYS
                and not k.endswith("_set") and not k.endswith("_dataset") and k not in ("hparams", "trainer")}
    return {"class": f"{type(datamodule).__module__}.{type(datamodule).__qualname__}", "settings": describe(settings)}


def cache_key(description: dict[str, Any]) -> str:
    blob = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class FeatureSet:
    """Features ``[N, V, d]`` of N samples x V views, their labels and dataset indices (sorted by index)."""

    features: Tensor
    labels: Tensor
    index: Tensor
    ignore: Tensor | None = None  # bool like labels: (sample, class) pairs a metric leaves out (VOC "difficult")
    view_labels: Tensor | None = None  # [N, V] when the label depends on the view (e.g. which clip): labels is then view 0's

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def dim(self) -> int:
        return self.features.shape[-1]


class FeatureCache:
    """``<root>/<key>.pt`` files (see the module docstring); ``root=None`` disables the disk (memory only)."""

    _memory: dict[tuple[str, str], FeatureSet] = {}  # per process, per (cache dir, key): benchmarks in one `versanet benchmark` share it

    def __init__(self, root: str | os.PathLike | None) -> None:
        self.root = Path(root) if root is not None else None

    def path(self, key: str) -> Path | None:
        return None if self.root is None else self.root / f"{key}.pt"

    def _memo(self, key: str) -> tuple[str, str]:
        return (str(self.root.resolve()) if self.root is not None else "", key)

    def load(self, key: str) -> FeatureSet | None:
        if self._memo(key) in self._memory:
            return self._memory[self._memo(key)]
        path = self.path(key)
        if path is None or not path.is_file():
            return None
        data = safe_load(path, "feature cache file")
        fs = FeatureSet(data["features"], data["labels"], data["index"], data.get("ignore"), data.get("view_labels"))
        self._memory[self._memo(key)] = fs
        return fs

    def save(self, key: str, fs: FeatureSet, meta: dict[str, Any]) -> None:
        self._memory[self._memo(key)] = fs
        path = self.path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save({"features": fs.features, "labels": fs.labels, "index": fs.index, "ignore": fs.ignore, "view_labels": fs.view_labels,
                    "meta": json.dumps(meta, sort_keys=True, default=str)}, tmp)
        tmp.replace(path)

    @classmethod
    def clear_memory(cls) -> None:
        cls._memory.clear()


def describe_cache(path: str | os.PathLike) -> dict[str, Any]:
    """The description (backbone, data, split) a cache file was made from, plus its shapes."""
    data = safe_load(path, "feature cache file")
    return {"meta": json.loads(data["meta"]), "features": tuple(data["features"].shape), "labels": tuple(data["labels"].shape)}


def sequential_loader(loader: Any) -> Any:
    """The same data in a fixed order with nothing dropped (a shuffled, drop_last training loader rebuilt)."""
    if not isinstance(loader, DataLoader):
        return loader
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size or 1, shuffle=False, drop_last=False, num_workers=loader.num_workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
    )


@torch.no_grad()
def extract_features(
    encode: Callable[[Tensor], Tensor],
    loader: Any,
    modality: str,
    device: torch.device | str = "cpu",
    passes: int = 1,
    label_key: str | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> FeatureSet:
    """Run ``encode`` (``[B, *input]`` or ``[B, V, *input]`` -> ``[B, V, d]``) over a loader, ``passes`` times.

    Each pass is one epoch of the loader (a training loader draws new augmentations each pass);
    the passes become extra views: ``features [N, passes*V, d]``. Samples are sorted by their
    ``index`` so passes line up. A batch's ``difficult`` (VOC) becomes the set's ``ignore``. When the
    passes label a sample differently (a label that depends on the clip drawn), ``view_labels [N, V]``
    keeps each view's label. The augmentation draw is seeded with ``seed`` (global torch RNG,
    hence also the DataLoader workers' seeds) and the caller's RNG state is restored afterwards.
    """
    loader = sequential_loader(loader)
    per_pass: list[tuple[Tensor, Tensor, Tensor, Tensor | None]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(passes):
            feats, labels, index, ignore = [], [], [], []
            for batch in loader:
                x = batch[modality].to(device)
                feats.append(encode(x).float().to(dtype).cpu())
                labels.append(pick_label(batch["label"], label_key).cpu())
                idx = batch.get("index")
                index.append(torch.as_tensor(idx).cpu() if idx is not None else torch.arange(len(x)) + sum(len(i) for i in index))
                if batch.get("difficult") is not None:
                    ignore.append(torch.as_tensor(batch["difficult"]).bool().cpu())
            f, y, i = torch.cat(feats), torch.cat(labels), torch.cat(index).long()
            order = torch.argsort(i, stable=True)
            per_pass.append((f[order], y[order], i[order], torch.cat(ignore)[order] if ignore else None))
    features = torch.cat([p[0] for p in per_pass], dim=1)
    labels, index, ignore_mask = per_pass[0][1], per_pass[0][2], per_pass[0][3]
    for p in per_pass[1:]:
        if not torch.equal(p[2], index):
            raise RuntimeError("the loader gave different samples in different passes; feature passes need a fixed sample set")
    view_labels = None
    if any(not torch.equal(p[1], labels) for p in per_pass[1:]):
        if labels.dim() != 1:
            raise RuntimeError("multi-hot labels changed between passes; only single-label data may label each view")
        view_labels = torch.stack([p[1] for p in per_pass], dim=1).repeat_interleave(features.shape[1] // passes, dim=1)
    return FeatureSet(features, labels, index, ignore_mask, view_labels)


class FeatureExtractor:
    """Extract-or-load features of one data split through a cache (what the frozen-feature benchmarks call)."""

    def __init__(self, cache_dir: str | os.PathLike | None = None, use_cache: bool = True, dtype: str = "float32") -> None:
        self.cache = FeatureCache((cache_dir or default_cache_dir()) if use_cache else None)
        self.use_cache = use_cache
        self.dtype = getattr(torch, dtype)
        self.sources: dict[str, str] = {}  # split -> "cache" | "extracted" (what the last call did)

    def __call__(
        self,
        split: str,
        backbone: dict[str, Any],
        datamodule: Any,
        loader_fn: Callable[[], Any],
        encode: Callable[[Tensor], Tensor],
        modality: str,
        device: torch.device | str,
        passes: int = 1,
        label_key: str | None = None,
        seed: int = 0,
    ) -> FeatureSet:
        meta = {"backbone": backbone, "data": describe_datamodule(datamodule), "split": split, "passes": passes,
                "seed": seed, "label_key": label_key, "modality": modality, "dtype": str(self.dtype)}
        key = cache_key(meta)
        fs = self.cache.load(key) if self.use_cache else None
        if fs is not None:
            self.sources[split] = "cache"
            log.info("features of %s (%s) read from the cache (%s)", split, modality, key)
            return fs
        fs = extract_features(encode, loader_fn(), modality, device, passes, label_key, seed, self.dtype)
        if self.use_cache:
            self.cache.save(key, fs, meta)
        self.sources[split] = "extracted"
        return fs


__all__ = ["FeatureSet", "FeatureCache", "FeatureExtractor", "extract_features", "describe", "describe_datamodule", "cache_key",
           "describe_cache", "default_cache_dir", "sequential_loader", "flatten_views"]
