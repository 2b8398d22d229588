"""Callbacks that report what pretraining learned, at the end of `versanet fit`."""

from __future__ import annotations

import copy

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from versanet.data.loaders import make_loader
from versanet.eval.probe import probe_accuracy


class RetrievalReport(Callback):
    """Print the last validation epoch's zero-shot retrieval (R@1/5/10, median rank, chance) when fit ends."""

    def __init__(self) -> None:
        self.table = ""

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        results = getattr(pl_module, "retrieval_results", [])
        if results:
            self.table = format_retrieval_table(results, f"zero-shot retrieval on held-out clips (after epoch {trainer.current_epoch})")
            print(self.table)


def format_retrieval_table(results: list[dict], title: str) -> str:
    """Rows ``query -> gallery @ space`` with R@1/5/10 (percent), median rank, and chance R@1 = 1/n."""
    lines = [title, f"  {'query -> gallery @ space':<28}{'R@1':>7}{'R@5':>7}{'R@10':>7}{'MedR':>7}{'n':>6}{'chance R@1':>12}"]
    for r in results:
        pair = f"{r['query']} -> {r['gallery']} @ {r['space']}"
        lines.append(f"  {pair:<28}{r['R@1']:>7.1%}{r['R@5']:>7.1%}{r['R@10']:>7.1%}{r['MedR']:>7.1f}{r['n']:>6}{1 / max(r['n'], 1):>12.1%}")
    return "\n".join(lines)


class LinearProbeReport(Callback):
    """When fit ends, fit a logistic-regression probe on frozen backbone features of ``modality`` for each label.

    Features: the encoder output (before heads) on the centred clip of every train and val video;
    labels: the data module's label columns. Prints accuracy beside chance (the majority class).
    """

    def __init__(self, modality: str = "video", labels: list[str] | None = None, weight_decay: float = 1e-3) -> None:
        self.modality, self.labels, self.weight_decay = modality, labels, weight_decay
        self.results: dict[str, dict[str, float]] = {}

    @torch.no_grad()
    def features(self, pl_module: LightningModule, dataset, batch_size: int, num_workers: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Backbone features ``[N, d]`` and label tensors of a dataset (eval sampling)."""
        dataset = copy.copy(dataset)
        dataset.train = False
        loader = make_loader(dataset, batch_size, train=False, num_workers=num_workers)
        feats, labels = [], {}
        was_training = pl_module.training
        pl_module.eval()
        for batch in loader:
            feats.append(pl_module.encode(self.modality, batch[self.modality].to(pl_module.device)).float().cpu())
            for name, value in batch.get("label", {}).items():
                labels.setdefault(name, []).append(value)
        pl_module.train(was_training)
        return torch.cat(feats), {k: torch.cat(v) for k, v in labels.items()}

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "train_set"):
            return
        train_x, train_y = self.features(pl_module, dm.train_set, dm.val_batch_size, dm.num_workers)
        val_x, val_y = self.features(pl_module, dm.val_set, dm.val_batch_size, dm.num_workers)
        lines = [f"linear probe on frozen {self.modality} features ({train_x.shape[1]}-d, {len(train_x)} train / {len(val_x)} val clips)"]
        for name in self.labels or sorted(train_y):
            acc = probe_accuracy(train_x, train_y[name], val_x, val_y[name], self.weight_decay)
            chance = torch.bincount(val_y[name]).max().item() / len(val_y[name])
            self.results[name] = {"accuracy": acc, "chance": chance}
            lines.append(f"  {name:<12} accuracy {acc:6.1%}   (majority-class chance {chance:6.1%})")
        print("\n".join(lines))


class ClusterReport(Callback):
    """When fit ends, cluster the validation clips with the clustering term's centroids and report NMI against the labels.

    Each validation clip's fused embedding (the term's mean of its modalities) goes to its nearest
    centroid by cosine similarity; the normalised mutual information (arithmetic mean
    normalisation, ``torchmetrics``) between those assignments and each label column (and the
    columns' combination) says how well the clusters follow the world's classes: 0 is chance, 1 a
    perfect match up to renaming.

    Args:
        labels: label columns (default: all the data gives); their combination is reported too.
    """

    def __init__(self, labels: list[str] | None = None) -> None:
        self.labels = labels
        self.results: dict[str, float] = {}

    @torch.no_grad()
    def assignments(self, pl_module: LightningModule, loader) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # noqa: ANN001
        from versanet.losses.clustering import ClusteringTerm, cosine_assign
        from versanet.objective import TermInputs

        terms = [t for t in pl_module.terms.values() if isinstance(t, ClusteringTerm)]
        if not terms or not bool(terms[0].fitted):
            return torch.zeros(0, dtype=torch.long), {}
        term = terms[0]
        was_training = pl_module.training
        pl_module.eval()
        clusters, labels = [], {}
        for batch in loader:
            batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
            emb = pl_module(batch)
            fused = term.fuse(TermInputs(emb, batch, pl_module.batch_size_of(batch), training=False))
            clusters.append(cosine_assign(fused.float(), term.centroids.float()).cpu())
            for name, value in batch.get("label", {}).items():
                labels.setdefault(name, []).append(value.cpu())
        pl_module.train(was_training)
        return torch.cat(clusters), {k: torch.cat(v) for k, v in labels.items()}

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from torchmetrics.functional.clustering import normalized_mutual_info_score

        dm = trainer.datamodule
        if dm is None:
            return
        clusters, labels = self.assignments(pl_module, dm.val_dataloader())
        names = [n for n in (self.labels or sorted(labels)) if n in labels]
        if not len(clusters) or not names:
            return
        columns = {n: labels[n] for n in names}
        if len(names) > 1:
            joint = torch.zeros_like(labels[names[0]])
            for n in names:
                joint = joint * (int(labels[n].max()) + 1) + labels[n]
            columns["+".join(names)] = joint
        used = int(clusters.unique().numel())
        lines = [f"clusters of {len(clusters)} held-out clips ({used} of the centroids used): NMI against the labels (0 = chance, 1 = perfect)"]
        for name, target in columns.items():
            self.results[name] = float(normalized_mutual_info_score(clusters, target))
            lines.append(f"  {name:<14} NMI {self.results[name]:.3f}")
        print("\n".join(lines))
