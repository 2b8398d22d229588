"""Failure policy: an unreadable file is logged, counted once, remembered and replaced; too many stop a training run.

Two levels, both naming the dataset:

- In each process that reads (the main process or a DataLoader worker), :class:`SkipBadSamples`
  catches :class:`~versanet.data.video_io.MediaDecodeError` from ``load(index)``, logs the path and
  the reason, remembers the file (it is never read again by that process: across epochs and
  validation passes it goes straight to its replacement) and returns another sample instead (a
  deterministic replacement index). Every returned sample carries ``"bad_count"`` and ``"bad_files"``:
  the files found unreadable (for the first time in that process) while producing it, a count and
  their paths joined by newlines. A *training* dataset stops with :class:`TooManyBadSamples` past
  ``max_bad_fraction`` of the reads tried in that process (after ``min_samples`` reads); an
  evaluation dataset never stops on that fraction: its bad files are reported, not fatal (a small
  validation split with two bad files must not end a healthy run).
- :class:`DataHealth` (a Lightning callback, always on under ``versanet fit``) collects the bad files
  of the training and validation batches of every worker and, under DDP, every rank: it counts each
  file once, logs ``data/bad_files``, ``data/samples_read``, ``data/bad_fraction``, ``data/short_clips``
  and ``data/val_bad_files``, stops the run when the *global* training fraction passes the
  threshold, and keeps the files in the checkpoint: a resumed run goes on counting from where it
  stopped and never reads those files again.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from versanet.data.video_io import MediaDecodeError

log = logging.getLogger("versanet.data")


class DataNotFound(FileNotFoundError):
    """A data root, media folder or annotation file that does not exist; the message names the path and the setting."""


class TooManyBadSamples(RuntimeError):
    """More than ``max_bad_fraction`` of the samples tried could not be read; the message names the dataset."""


def joined(paths: Iterable[str]) -> str:
    """Paths as one string (newline-separated): how samples carry file names through the default collate."""
    return "\n".join(paths)


def split_paths(values: Any) -> list[str]:
    """The paths in a batch's ``bad_files``/``short_files`` entry (a list of newline-joined strings, or one string)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [p for value in values for p in str(value).split("\n") if p]


class SkipBadSamples:
    """Mixin for map-style datasets: ``__getitem__`` = ``load(index)`` with the failure policy around it.

    The dataset sets ``name`` (e.g. ``"UCF101DataModule train"``), ``root``, ``max_bad_fraction``,
    ``seed`` and ``stop_on_bad_fraction`` (True for training sets), calls :meth:`init_failures`,
    implements ``load(index) -> dict`` and may implement ``item_path(index)`` (the file an index reads,
    so that a remembered bad file is skipped without opening it).
    """

    name: str = "dataset"
    root: Any = ""
    max_bad_fraction: float = 0.05
    min_samples: int = 20
    max_retries: int = 10
    seed: int = 0
    stop_on_bad_fraction: bool = True

    def init_failures(self) -> None:
        self.tried = 0  # reads attempted in this process
        self.failed = 0  # distinct files found unreadable by this process
        self.bad: dict[str, str] = {}  # path -> reason: never read again (found here, or remembered from a checkpoint)
        self._new_bad: list[str] = []  # found since the last returned sample

    def load(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def item_path(self, index: int) -> str | None:
        """The file ``index`` reads (None: unknown, always read)."""
        return None

    def remember_bad(self, paths: Iterable[str]) -> None:
        """Files known to be unreadable (e.g. from a checkpoint): skipped without reading, not counted again here."""
        for path in paths:
            self.bad.setdefault(path, "unreadable (remembered)")

    def record_failure(self, err: MediaDecodeError) -> None:
        """Log, count and remember one unreadable file (once); raise :class:`TooManyBadSamples` past the threshold."""
        if err.path in self.bad:
            return
        self.failed += 1
        self.bad[err.path] = err.reason
        self._new_bad.append(err.path)
        log.warning("%s: skipping unreadable sample %s (%d failed of %d tried)", self.name, err, self.failed, self.tried)
        self.check_fraction(err)

    def check_fraction(self, err: MediaDecodeError | None = None) -> None:
        """:class:`TooManyBadSamples` when a training set's distinct bad files exceed ``max_bad_fraction`` of its reads."""
        if self.stop_on_bad_fraction and self.tried >= self.min_samples and self.failed / self.tried > self.max_bad_fraction:
            last = f"; last: {err}" if err is not None else f"; e.g. {next(iter(self.bad))}"
            raise TooManyBadSamples(
                f"{self.name} under {self.root}: {self.failed} of {self.tried} samples tried could not be read "
                f"(> max_bad_fraction {self.max_bad_fraction}){last}; run `versanet data check` on it"
            ) from err

    def replacement(self, index: int, attempt: int) -> int:
        """The index read instead of an unreadable ``index`` (a function of the seed, the index and the attempt only)."""
        return int(np.random.default_rng([self.seed, index, attempt]).integers(len(self)))  # type: ignore[arg-type]

    def take_new_bad(self) -> list[str]:
        """The files found unreadable since the last call (what the next sample reports)."""
        found, self._new_bad = self._new_bad, []
        return found

    def __getitem__(self, index: int) -> dict[str, Any]:
        for attempt in range(self.max_retries):
            path = self.item_path(index)
            if path is not None and path in self.bad:
                self.check_fraction()  # a remembered bad file is not read again, but still weighs in the fraction
            else:
                self.tried += 1
                try:
                    sample = self.load(index)
                except MediaDecodeError as err:
                    self.record_failure(err)
                else:
                    found = self.take_new_bad()
                    sample["bad_count"], sample["bad_files"] = len(found), joined(found)
                    return sample
            index = self.replacement(index, attempt)
        raise TooManyBadSamples(f"{self.name} under {self.root}: {self.max_retries} samples in a row could not be read")


class DataHealth(Callback):
    """Counts unreadable files (each once) over all workers and ranks; logs them, stops past a threshold, checkpoints them.

    Always on under ``versanet fit``: set its thresholds with ``--data_health.max_bad_fraction``, or list it
    under ``trainer.callbacks`` (that one then replaces the default).

    Args:
        max_bad_fraction: stop when more than this fraction of the training files read so far were bad.
        min_samples: do not judge the fraction before this many samples were read.
        sync_every: gather the files across ranks (and log the counts) every this many training batches.
    """

    def __init__(self, max_bad_fraction: float = 0.05, min_samples: int = 100, sync_every: int = 50) -> None:
        self.max_bad_fraction, self.min_samples, self.sync_every = max_bad_fraction, min_samples, sync_every
        self.bad_files: set[str] = set()  # training files found unreadable, over all ranks (synced)
        self.short_files: set[str] = set()  # files shorter than the clip (padded), training and validation
        self.val_bad_files: set[str] = set()  # validation/test files found unreadable
        self.base_read = 0  # samples read over all ranks, synced so far
        self._local: dict[str, set[str]] = {"bad": set(), "short": set(), "val_bad": set()}  # since the last sync
        self.local_read = 0
        self._trainer: Trainer | None = None

    @property
    def bad(self) -> int:
        """Distinct unreadable training files (synced, plus this rank's since the last sync)."""
        return len(self.bad_files | self._local["bad"])

    @property
    def read(self) -> int:
        """Training samples produced plus distinct unreadable files: the files' reads judged by the threshold."""
        return self.base_read + self.local_read + self.bad

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Tell the data module which files a checkpoint knew to be unreadable, before any loader starts."""
        self._remember(trainer)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._remember(trainer)

    def _remember(self, trainer: Trainer) -> None:
        remember = getattr(trainer.datamodule, "remember_bad_files", None) if trainer.datamodule is not None else None
        known = self.bad_files | self.val_bad_files | self._local["bad"] | self._local["val_bad"]
        if callable(remember) and known:
            remember(sorted(known))

    def _collect(self, batch: Any, bad_key: str) -> int:
        if not isinstance(batch, dict):
            return 0
        self._local[bad_key].update(split_paths(batch.get("bad_files")))
        self._local["short"].update(split_paths(batch.get("short_files")))
        index = batch.get("index")
        return int(index.numel()) if isinstance(index, torch.Tensor) else len(index or [])

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.local_read += self._collect(batch, "bad")
        if (batch_idx + 1) % self.sync_every == 0:
            self.sync(trainer)
            pl_module.log_dict(self.metrics(), on_step=True, on_epoch=False, rank_zero_only=True)
            self.check(trainer)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(batch, "val_bad")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        before = set(self.val_bad_files)
        self.sync(trainer)
        new = sorted(self.val_bad_files - before)
        if new:
            log.warning("data: %d validation file(s) unreadable, replaced and not read again: %s", len(new), ", ".join(new[:10]))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.sync(trainer)
        if self.bad:
            log.warning("data: %d of %d training files read so far were unreadable and replaced (%.2f%%); first: %s",
                        self.bad, self.read, 100 * self.bad / max(self.read, 1), ", ".join(sorted(self.bad_files)[:5]))
        if self.short_files:
            log.warning("data: %d file(s) shorter than the clip length (short_clips: pad repeats the last frame); first: %s",
                        len(self.short_files), ", ".join(sorted(self.short_files)[:5]))
        self.check(trainer)

    def metrics(self) -> dict[str, float]:
        return {"data/bad_files": float(self.bad), "data/samples_read": float(self.read), "data/bad_fraction": self.bad / max(self.read, 1),
                "data/short_clips": float(len(self.short_files)), "data/val_bad_files": float(len(self.val_bad_files))}

    def sync(self, trainer: Trainer | None) -> None:
        """Fold this rank's files and counts into the global ones (a union/sum over ranks under DDP; every rank must call it)."""
        local = self._local
        read = self.local_read
        if trainer is not None and trainer.world_size > 1:
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, (local, read))
            merged: dict[str, set[str]] = {k: set() for k in local}
            read = 0
            for part, n in gathered:
                read += n
                for k, v in part.items():
                    merged[k] |= v
            local = merged
        self.bad_files |= local["bad"]
        self.short_files |= local["short"]
        self.val_bad_files |= local["val_bad"]
        self.base_read += read
        self._local = {k: set() for k in self._local}
        self.local_read = 0

    def check(self, trainer: Trainer) -> None:
        if self.read >= self.min_samples and self.bad / max(self.read, 1) > self.max_bad_fraction:
            dm = trainer.datamodule
            name = type(dm).__name__ if dm is not None else "the training data"
            root = getattr(dm, "root", "")
            raise TooManyBadSamples(
                f"{name} under {root}: {self.bad} of {self.read} training files read were unreadable "
                f"(> max_bad_fraction {self.max_bad_fraction}), e.g. {sorted(self.bad_files)[0] if self.bad_files else '?'}; "
                "run `versanet data check` on it"
            )

    def state_dict(self) -> dict[str, Any]:
        self.sync(self._trainer)  # Lightning builds the checkpoint on every rank, so the gather is collective
        return {"bad": self.bad, "read": self.read, "bad_files": sorted(self.bad_files), "short_files": sorted(self.short_files),
                "val_bad_files": sorted(self.val_bad_files)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.bad_files = set(state_dict.get("bad_files", []))
        self.short_files = set(state_dict.get("short_files", []))
        self.val_bad_files = set(state_dict.get("val_bad_files", []))
        self.base_read = int(state_dict["read"]) - len(self.bad_files)
        self._local = {k: set() for k in self._local}
        self.local_read = 0
