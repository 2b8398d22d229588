"""Mixing corpora in one run with set proportions (MMV/VATT: HowTo100M, with text, and AudioSet, without).

:class:`MixedDataModule` wraps several data modules. Each training batch draws its samples from
corpus ``i`` with probability ``proportions[i]`` (a weighted sampler over the concatenated training
sets, independent of corpus sizes). Every corpus must produce the same batch keys: give the mixed
module one ``transforms`` dict and it is used by all of them. A corpus without text (AudioSet)
yields all-padding text with a False text mask, which the losses honour. Samples keep ``mask``,
``index`` (into the concatenation), ``bad_count`` and gain ``corpus`` (int); per-corpus labels are dropped.
Validation uses the ``val_from`` corpus's validation set.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import ConcatDataset, DataLoader, Dataset, WeightedRandomSampler

from versanet.data.transforms import ModalityTransform
from versanet.registry import register

_KEEP = ("mask", "bad_count")


class _Tagged(Dataset):
    """A corpus's dataset with its samples tagged (``corpus``) and reduced to the shared keys."""

    def __init__(self, dataset: Dataset, corpus: int, keys: list[str], offset: int) -> None:
        self.dataset, self.corpus, self.keys, self.offset = dataset, corpus, keys, offset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.dataset[index]
        out = {k: sample[k] for k in self.keys}
        out.update({k: sample[k] for k in _KEEP if k in sample})
        out["index"] = self.offset + int(sample.get("index", index))
        out["corpus"] = self.corpus
        return out


@register("dataset")
class MixedDataModule(LightningDataModule):
    """Several corpora in one run with set proportions (e.g. HowTo100M 0.5 + AudioSet 0.5); corpora without text carry a False text mask.

    Args:
        datamodules: the corpora (any versanet data modules with ``train_set``/``val_set``).
        proportions: share of each corpus in the training samples (normalised).
        transforms: used by every corpus (overrides theirs), so that all produce the same keys.
        samples_per_epoch: training samples per epoch (default: the sizes summed).
        val_from: which corpus's validation set to use.
    """

    def __init__(
        self, datamodules: list[LightningDataModule], proportions: list[float], transforms: dict[str, ModalityTransform] | None = None,
        batch_size: int = 32, val_batch_size: int | None = None, num_workers: int = 2, samples_per_epoch: int | None = None,
        val_from: int = 0, seed: int = 0,
    ) -> None:
        super().__init__()
        if len(datamodules) != len(proportions) or not datamodules:
            raise ValueError(f"MixedDataModule: {len(datamodules)} data modules but {len(proportions)} proportions")
        if any(p < 0 for p in proportions) or sum(proportions) <= 0:
            raise ValueError(f"MixedDataModule: proportions must be >= 0 and not all 0, got {proportions}")
        self.datamodules, self.proportions = list(datamodules), [p / sum(proportions) for p in proportions]
        if transforms is not None:
            for dm in self.datamodules:
                dm.transforms = transforms
        self.transforms = transforms or getattr(self.datamodules[0], "transforms", {})
        self.batch_size, self.val_batch_size, self.num_workers = batch_size, val_batch_size or batch_size, num_workers
        self.samples_per_epoch, self.val_from, self.seed = samples_per_epoch, val_from, seed
        self.root = ", ".join(str(getattr(dm, "root", "")) for dm in self.datamodules)

    def prepare_data(self) -> None:
        for dm in self.datamodules:
            dm.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        for dm in self.datamodules:
            dm.setup(stage)
        keys = [set(getattr(dm, "transforms", {})) for dm in self.datamodules]
        if any(k != keys[0] for k in keys):
            names = ", ".join(f"{type(dm).__name__}: {sorted(k)}" for dm, k in zip(self.datamodules, keys))
            raise ValueError(f"MixedDataModule: the corpora produce different modalities ({names}); give MixedDataModule one `transforms`")
        self.keys = sorted(keys[0])
        parts, offset = [], 0
        for i, dm in enumerate(self.datamodules):
            parts.append(_Tagged(dm.train_set, i, self.keys, offset))
            offset += len(dm.train_set)
        self.train_set = ConcatDataset(parts)
        self.val_set = self.datamodules[self.val_from].val_set
        self.sizes = [len(p) for p in parts]

    def modality_specs(self) -> dict[str, dict[str, Any]]:
        return {m: t.spec() for m, t in self.transforms.items()}

    def weights(self) -> torch.Tensor:
        """Per-sample weights: corpus i's samples share ``proportions[i]``."""
        return torch.cat([torch.full((n,), p / max(n, 1), dtype=torch.double) for n, p in zip(self.sizes, self.proportions)])

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        sampler = WeightedRandomSampler(self.weights(), self.samples_per_epoch or sum(self.sizes), replacement=True, generator=generator)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, drop_last=True, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader:
        return self.datamodules[self.val_from].val_dataloader()

    def test_dataloader(self) -> DataLoader:
        return self.datamodules[self.val_from].test_dataloader()
