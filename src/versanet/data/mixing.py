"""Several corpora in one training run with set proportions (MMV/VATT: HowTo100M, with text, and AudioSet, without).

:class:`MixedDataModule` wraps several data modules. Each training batch draws its samples from
corpus ``i`` with probability ``proportions[i]`` (a weighted draw over the concatenated training
sets, independent of corpus sizes, seeded by ``(seed, epoch)`` and resumable like every training
loader: :func:`versanet.data.loaders.make_loader`). Every corpus produces the same batch keys: the
mixed module holds ONE ``transforms`` dict (given, or the first corpus's) that every corpus uses,
prepared and set up once on the corpora's captions together (so a vocabulary, e.g. a word2vec subset,
is built from and cached under the corpus that has text, not looked for under each corpus's root). A
corpus without text (AudioSet) yields all-padding text with a False text mask, which the losses
honour. Samples keep ``mask``, ``index`` (into the concatenation), ``bad_count``, ``bad_files``,
``short_files`` and gain ``corpus`` (int); per-corpus labels are dropped. Validation uses the
``val_from`` corpus's validation set. The mixed module's loader settings (batch sizes, workers) apply
to every loader; the corpora's own are not used.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from versanet.data.loaders import fit_progress, make_loader
from versanet.data.transforms import Corpus, ModalityTransform
from versanet.registry import register

log = logging.getLogger("versanet.data")

_KEEP = ("mask", "bad_count", "bad_files", "short_files")


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
        datamodules: the corpora (versanet data modules with ``train_set``/``val_set``).
        proportions: share of each corpus in the training samples (normalised).
        transforms: used by every corpus (replacing theirs); None: the first corpus's transforms, shared by all.
        modalities: keep only these keys of the shared transforms (e.g. ``[video, audio]`` for a model
            without text); None keeps them all.
        roots: the corpora's folders, in order (replacing each data module's ``root``): one override for a
            mix given in a file (``--data.init_args.roots='[/data/howto100m, /data/audioset]'``).
        samples_per_epoch: training samples per epoch (default: the sizes summed).
        val_from: which corpus's validation set to use.
        seed: the draws' seed (with the epoch).
    """

    def __init__(
        self, datamodules: list[LightningDataModule], proportions: list[float], transforms: dict[str, ModalityTransform] | None = None,
        modalities: list[str] | None = None, roots: list[str] | None = None, batch_size: int = 32, val_batch_size: int | None = None, num_workers: int = 2,
        samples_per_epoch: int | None = None, val_from: int = 0, seed: int = 0,
    ) -> None:
        super().__init__()
        if len(datamodules) != len(proportions) or not datamodules:
            raise ValueError(f"MixedDataModule: {len(datamodules)} data modules but {len(proportions)} proportions")
        if any(p < 0 for p in proportions) or sum(proportions) <= 0:
            raise ValueError(f"MixedDataModule: proportions must be >= 0 and not all 0, got {proportions}")
        self.datamodules, self.proportions = list(datamodules), [p / sum(proportions) for p in proportions]
        if roots is not None:
            if len(roots) != len(self.datamodules):
                raise ValueError(f"MixedDataModule: {len(roots)} roots for {len(self.datamodules)} data modules")
            for dm, root in zip(self.datamodules, roots):
                dm.root = Path(root)
        shared = dict(transforms if transforms is not None else getattr(self.datamodules[0], "transforms", {}))
        if modalities is not None:
            unknown = sorted(set(modalities) - set(shared))
            if unknown:
                raise ValueError(f"MixedDataModule: modalities {unknown} have no transform (transforms: {sorted(shared)})")
            shared = {m: shared[m] for m in modalities}
        self.transforms = shared
        for dm in self.datamodules:
            dm.transforms = shared
            if hasattr(dm, "owns_transforms"):
                dm.owns_transforms = False  # prepared and set up here, once, on every corpus's captions
        self.batch_size, self.val_batch_size, self.num_workers = batch_size, val_batch_size or batch_size, num_workers
        self.samples_per_epoch, self.val_from, self.seed = samples_per_epoch, val_from, seed
        self.root = ", ".join(str(getattr(dm, "root", "")) for dm in self.datamodules)

    def corpus(self) -> Corpus:
        """Every corpus's training captions; the root is the first corpus with captions (where a learned vocabulary is cached)."""
        corpora = [dm.corpus() for dm in self.datamodules if hasattr(dm, "corpus")]
        with_text = [c for c in corpora if c.captions] or corpora
        root = with_text[0].root if with_text else getattr(self.datamodules[0], "root", ".")
        return Corpus(root, [text for c in corpora for text in c.captions])

    def _needs_corpus(self) -> bool:
        return any("captions" in t.needs for t in self.transforms.values())

    def prepare_data(self) -> None:
        for dm in self.datamodules:
            dm.prepare_data()
        corpus = self.corpus() if self._needs_corpus() else None
        for transform in self.transforms.values():
            if corpus is not None:
                transform.prepare(corpus)

    def setup(self, stage: str | None = None) -> None:
        for dm in self.datamodules:
            dm.setup(stage)
        corpus = self.corpus() if self._needs_corpus() else Corpus(getattr(self.datamodules[0], "root", "."), [])
        for transform in self.transforms.values():
            transform.setup(corpus)
        self.keys = sorted(self.transforms)
        parts, offset = [], 0
        for i, dm in enumerate(self.datamodules):
            parts.append(_Tagged(dm.train_set, i, self.keys, offset))
            offset += len(dm.train_set)
        self.train_set = ConcatDataset(parts)
        self.val_set = self.datamodules[self.val_from].val_set
        self.sizes = [len(p) for p in parts]
        empty = [type(dm).__name__ for dm, n in zip(self.datamodules, self.sizes) if n == 0]
        if empty:
            log.warning("MixedDataModule: no training samples in %s; its share goes to the others", ", ".join(empty))

    def remember_bad_files(self, paths: list[str]) -> None:
        for dm in self.datamodules:
            remember = getattr(dm, "remember_bad_files", None)
            if callable(remember):
                remember(paths)

    def modality_specs(self) -> dict[str, dict[str, Any]]:
        return {m: t.spec() for m, t in self.transforms.items()}

    def weights(self) -> torch.Tensor:
        """Per-sample weights: corpus i's samples share ``proportions[i]``."""
        return torch.cat([torch.full((n,), p / max(n, 1), dtype=torch.double) for n, p in zip(self.sizes, self.proportions)])

    def train_dataloader(self) -> DataLoader:
        return make_loader(self.train_set, self.batch_size, True, self.num_workers, seed=self.seed, weights=self.weights(),
                           num_samples=self.samples_per_epoch or sum(self.sizes), progress=fit_progress(self))

    def val_dataloader(self) -> DataLoader:
        return make_loader(self.val_set, self.val_batch_size, False, self.num_workers)

    def test_dataloader(self) -> DataLoader:
        dm = self.datamodules[self.val_from]
        return make_loader(dm.test_set, self.val_batch_size, False, self.num_workers)
