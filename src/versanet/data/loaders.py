"""The one way versanet builds a DataLoader, for every data module (clips, features, shards' fallbacks).

Training loaders shuffle and drop the last incomplete batch (every rank must gather the same
shape for the contrastive losses); evaluation loaders keep every sample in order. Workers persist
across epochs.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset


def make_loader(dataset: Dataset, batch_size: int, train: bool, num_workers: int = 0, collate_fn: Callable | None = None) -> DataLoader:
    """A DataLoader over ``dataset``: shuffled with ``drop_last`` when ``train``, in order otherwise."""
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=train, drop_last=train and len(dataset) >= batch_size,  # type: ignore[arg-type]
        num_workers=num_workers, persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available(),
        collate_fn=collate_fn,
    )
