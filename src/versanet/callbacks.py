"""Callbacks that report what pretraining learned, at the end of `versanet fit`."""

from __future__ import annotations

import copy

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader

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
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
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
