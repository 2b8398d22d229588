"""Failure policy: an unreadable sample is logged, counted and replaced; too many stop the run.

Two levels, both naming the dataset:

- In each process that reads (the main process or a DataLoader worker), :class:`SkipBadSamples`
  catches :class:`~versanet.data.video_io.MediaDecodeError` from ``load(index)``, logs the path and
  the reason, counts it, and returns another sample instead (a deterministic replacement index).
  Every returned sample carries ``"bad_count"``: how many reads failed before it was produced. Past
  ``max_bad_fraction`` of the reads tried *in that process* (after ``min_samples`` reads),
  :class:`TooManyBadSamples` stops the run.
- :class:`DataHealth` (a Lightning callback) sums ``bad_count`` over the training batches of every
  worker and, under DDP, every rank: it logs ``data/bad_samples``, ``data/samples_read`` and
  ``data/bad_fraction``, stops the run when the *global* fraction passes the threshold, and keeps the
  totals in the checkpoint, so a resumed run goes on counting from where it stopped.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from versanet.data.video_io import MediaDecodeError

log = logging.getLogger("versanet.data")


class TooManyBadSamples(RuntimeError):
    """More than ``max_bad_fraction`` of the samples tried could not be read; the message names the dataset."""


class SkipBadSamples:
    """Mixin for map-style datasets: ``__getitem__`` = ``load(index)`` with the failure policy around it.

    The dataset sets ``name`` (e.g. ``"UCF101DataModule train"``), ``root``, ``max_bad_fraction`` and
    ``seed``, calls :meth:`init_failures` and implements ``load(index) -> dict``.
    """

    name: str = "dataset"
    root: Any = ""
    max_bad_fraction: float = 0.05
    min_samples: int = 20
    max_retries: int = 10
    seed: int = 0

    def init_failures(self) -> None:
        self.tried = 0  # reads attempted in this process
        self.failed = 0  # reads that failed in this process
        self.bad: dict[str, str] = {}  # path -> reason, each unreadable file once

    def load(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def record_failure(self, err: MediaDecodeError) -> None:
        """Log and count one failed read; raise :class:`TooManyBadSamples` past the threshold."""
        self.failed += 1
        self.bad[err.path] = err.reason
        log.warning("%s: skipping unreadable sample %s (%d failed of %d tried)", self.name, err, self.failed, self.tried)
        if self.tried >= self.min_samples and self.failed / self.tried > self.max_bad_fraction:
            raise TooManyBadSamples(
                f"{self.name} under {self.root}: {self.failed} of {self.tried} samples tried could not be read, "
                f"{len(self.bad)} distinct files (> max_bad_fraction {self.max_bad_fraction}); last: {err}"
            ) from err

    def __getitem__(self, index: int) -> dict[str, Any]:
        bad = 0
        for attempt in range(self.max_retries):
            self.tried += 1
            try:
                sample = self.load(index)
                sample["bad_count"] = bad
                return sample
            except MediaDecodeError as err:
                bad += 1
                self.record_failure(err)
                index = int(np.random.default_rng([self.seed, index, attempt, self.tried]).integers(len(self)))  # type: ignore[arg-type]
        raise TooManyBadSamples(f"{self.name} under {self.root}: {self.max_retries} samples in a row could not be read")


class DataHealth(Callback):
    """Counts unreadable training samples over all workers and ranks; logs them, stops past a threshold, checkpoints them.

    Args:
        max_bad_fraction: stop when more than this fraction of the samples read so far were bad.
        min_samples: do not judge the fraction before this many samples were read.
        sync_every: reduce the counts across ranks (and log them) every this many training batches.
    """

    def __init__(self, max_bad_fraction: float = 0.05, min_samples: int = 100, sync_every: int = 50) -> None:
        self.max_bad_fraction, self.min_samples, self.sync_every = max_bad_fraction, min_samples, sync_every
        self.base_bad = 0  # global totals restored from a checkpoint / synced so far
        self.base_read = 0
        self.local_bad = 0  # this rank's counts since the last sync
        self.local_read = 0
        self._trainer: Trainer | None = None

    @property
    def bad(self) -> int:
        return self.base_bad + self.local_bad

    @property
    def read(self) -> int:
        return self.base_read + self.local_read

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        counts = batch.get("bad_count") if isinstance(batch, dict) else None
        if counts is None:
            return
        bad = int(counts.sum())
        self.local_bad += bad
        self.local_read += bad + int(counts.numel())
        if (batch_idx + 1) % self.sync_every == 0:
            self.sync(trainer)
            pl_module.log_dict(
                {"data/bad_samples": float(self.bad), "data/samples_read": float(self.read), "data/bad_fraction": self.bad / max(self.read, 1)},
                on_step=True, on_epoch=False, rank_zero_only=True,
            )
            self.check(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.sync(trainer)
        if self.bad:
            log.warning("data: %d of %d samples read so far were unreadable and replaced (%.2f%%)", self.bad, self.read, 100 * self.bad / max(self.read, 1))
        self.check(trainer)

    def sync(self, trainer: Trainer | None) -> None:
        """Fold this rank's counts into the global totals (a sum over ranks under DDP; every rank must call it)."""
        local = torch.tensor([self.local_bad, self.local_read], dtype=torch.float64)
        if trainer is not None and trainer.world_size > 1:
            local = trainer.strategy.reduce(local.to(trainer.strategy.root_device), reduce_op="sum").cpu()
        self.base_bad += int(local[0])
        self.base_read += int(local[1])
        self.local_bad = self.local_read = 0

    def check(self, trainer: Trainer) -> None:
        if self.read >= self.min_samples and self.bad / max(self.read, 1) > self.max_bad_fraction:
            dm = trainer.datamodule
            name = type(dm).__name__ if dm is not None else "the training data"
            root = getattr(dm, "root", "")
            raise TooManyBadSamples(
                f"{name} under {root}: {self.bad} of {self.read} samples read were unreadable "
                f"(> max_bad_fraction {self.max_bad_fraction}); run `versanet data check` on it"
            )

    def state_dict(self) -> dict[str, Any]:
        self.sync(self._trainer)  # Lightning builds the checkpoint on every rank, so the reduction is collective
        return {"bad": self.bad, "read": self.read}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_bad, self.base_read = int(state_dict["bad"]), int(state_dict["read"])
        self.local_bad = self.local_read = 0
