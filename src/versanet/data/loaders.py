"""The one way versanet builds a DataLoader, for every data module; training loaders resume mid-epoch exactly.

Evaluation loaders keep every sample in order. Training loaders:

- draw the epoch's order from ``(seed, epoch)`` only (a permutation, or a weighted draw with
  replacement for mixed corpora), split across DDP ranks like ``DistributedSampler`` (Lightning then
  leaves the sampler alone), and drop the last incomplete batch (every rank must gather the same shape
  for the contrastive losses; a training set smaller than one batch keeps its one partial batch);
- give every sample its own randomness: before ``dataset[index]`` torch's RNG is seeded from
  ``(seed, epoch, index)`` (in a forked RNG state, so the training process's own stream is untouched).
  Clip windows, caption windows and augmentations are therefore a function of the sample, not of the
  worker that happened to read it or of how many samples that worker read before: the same with 0 or
  8 workers, and the same after a resume;
- are stateful (Lightning saves ``state_dict()`` in checkpoints and calls ``load_state_dict`` on
  resume): the state is the epoch, the batches the training loop consumed in it and the seed, so a run
  killed mid-epoch and resumed from ``last.ckpt`` reads exactly the batches the uninterrupted run would.

Why not torchdata's ``StatefulDataLoader`` (installable beside our torch pins): it restores the sampler's
position and the workers' base seed, but not each worker's RNG state after the samples it produced, so
augmentations would still differ after a resume unless every sample seeds itself, which is all that is
needed once the order is a function of ``(seed, epoch)``. Seeding per sample makes that protocol (a
``state_dict``/``load_state_dict`` pair on the loader, what Lightning asks of any stateful loader) a few
lines, with no new dependency and nothing kept in the workers.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from versanet.seeding import derived_seed, seeded

#: ``() -> (epoch, batches consumed in it)`` of the training loop, or None outside one
Progress = Callable[[], "tuple[int, int] | None"]


def sample_rng(train: bool, seed: int, index: int) -> np.random.Generator:
    """A sample's numpy generator: in evaluation a function of ``(seed, index)``; in training drawn from torch's RNG,
    which the training loader seeds per sample from ``(seed, epoch, index)`` (:class:`SeededSamples`), so the draws
    survive a resume whatever worker reads the sample."""
    if not train:
        return np.random.default_rng([seed, index])
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


class EpochSampler(DistributedSampler):
    """Training order from ``(seed, epoch)``: this rank's share of a permutation (or of a weighted draw), yielding ``(epoch, index)``.

    Args:
        dataset: what is sampled (its length).
        seed: the order's seed; the epoch comes from :meth:`set_epoch` (Lightning calls it).
        num_replicas, rank: the DDP split (every ``num_replicas``-th index from ``rank`` of the padded order).
        weights: per-sample weights ``[len(dataset)]``: draw ``num_samples`` with replacement (mixed corpora).
        num_samples: samples per epoch over all ranks (default ``len(dataset)``).

    ``start`` skips that many of this rank's samples of the current epoch once (set by a resume).
    """

    def __init__(self, dataset: Dataset, seed: int = 0, num_replicas: int = 1, rank: int = 0, weights: torch.Tensor | None = None,
                 num_samples: int | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        total = num_samples if num_samples is not None else len(dataset)  # type: ignore[arg-type]
        self.num_samples = math.ceil(total / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.start = 0

    def order(self) -> list[int]:
        """All ranks' indices of this epoch (``total_size`` of them, padded by wrapping around)."""
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch))
        n = len(self.dataset)  # type: ignore[arg-type]
        if self.weights is not None:
            return torch.multinomial(self.weights, self.total_size, replacement=True, generator=generator).tolist()
        order = torch.randperm(n, generator=generator).tolist()
        while len(order) < self.total_size:
            order += order[: self.total_size - len(order)]
        return order[: self.total_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        mine = self.order()[self.rank : self.total_size : self.num_replicas]
        start, self.start = self.start, 0
        epoch = self.epoch
        for index in mine[start:]:
            yield epoch, index


class SeededSamples(Dataset):
    """``dataset`` read with ``(epoch, index)`` keys: torch's RNG is seeded from ``(seed, epoch, index)`` for each sample.

    The generator's state is restored after each sample, so a loader without workers leaves the training
    process's random stream as it was. Transforms draw from torch's RNG (as torchvision's do).
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        epoch, index = key if isinstance(key, tuple) else (0, key)  # a plain index: Lightning's overfit_batches swaps in its own sampler
        with seeded(derived_seed(self.seed, epoch, index)):
            return self.dataset[index]


class ResumableLoader(DataLoader):
    """A training DataLoader over an :class:`EpochSampler` whose position Lightning checkpoints and restores.

    ``progress`` reports the training loop's ``(epoch, batches consumed)``: the batches the loop ran,
    not those the loader had prefetched. Without it the loader counts the batches it yielded.
    """

    def __init__(self, dataset: SeededSamples, batch_size: int, sampler: EpochSampler, progress: Progress | None = None,
                 drop_last: bool = True, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **kwargs)
        self.progress = progress
        self._yielded = 0

    def __iter__(self):  # noqa: ANN204
        self._yielded = self.sampler.start // (self.batch_size or 1)  # type: ignore[attr-defined]
        for batch in super().__iter__():
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        where = self.progress() if self.progress is not None else None
        epoch, batches = where if where is not None else (sampler.epoch, self._yielded)
        return {"epoch": int(epoch), "batches": int(batches), "seed": int(sampler.seed)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):  # saved at the end of an epoch: the next one starts from its beginning
            epoch, batches = epoch + 1, 0
        sampler.seed = int(state.get("seed", sampler.seed))
        sampler.set_epoch(epoch)
        sampler.start = batches * (self.batch_size or 1)
        self.dataset.seed = sampler.seed  # type: ignore[attr-defined]


def distributed_split() -> tuple[int, int]:
    """``(world size, rank)`` of the initialised process group, else ``(1, 0)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def fit_progress(owner: Any) -> Progress:
    """``(epoch, batches consumed)`` of the training loop of ``owner.trainer`` (a data module), read when a checkpoint is saved.

    At the last batch of an epoch (or past it) the position is the start of the next epoch.
    """

    def progress() -> tuple[int, int] | None:
        trainer = getattr(owner, "trainer", None)
        if trainer is None:
            return None
        loop = trainer.fit_loop.epoch_loop.batch_progress
        if loop.is_last_batch and loop.current.processed > 0:
            return trainer.current_epoch + 1, 0
        return trainer.current_epoch, loop.current.processed

    return progress


def make_loader(
    dataset: Dataset, batch_size: int, train: bool, num_workers: int = 0, collate_fn: Callable | None = None, *,
    seed: int = 0, weights: torch.Tensor | None = None, num_samples: int | None = None, progress: Progress | None = None,
) -> DataLoader:
    """A DataLoader over ``dataset``.

    ``train``: a :class:`ResumableLoader` (order from ``(seed, epoch)``, per-sample seeding, this rank's share,
    ``drop_last``; ``weights``/``num_samples`` for weighted draws; ``progress`` from :func:`fit_progress`);
    otherwise every sample in order. Workers persist across epochs.
    """
    # the loader's own generator: creating an iterator (the workers' base seed) draws nothing from the training process's RNG
    common: dict[str, Any] = dict(num_workers=num_workers, persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available(),
                                  collate_fn=collate_fn, generator=torch.Generator().manual_seed(derived_seed(seed)))
    if not train:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, **common)
    world, rank = distributed_split()
    sampler = EpochSampler(dataset, seed=seed, num_replicas=world, rank=rank, weights=weights, num_samples=num_samples)
    # a training set smaller than one batch keeps its one partial batch (equal on every rank: the sampler pads)
    return ResumableLoader(SeededSamples(dataset, seed), batch_size, sampler, progress, drop_last=len(sampler) >= batch_size, **common)
