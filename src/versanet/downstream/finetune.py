"""Fine-tuning benchmarks (UCF101 / HMDB51 after MMV, Kinetics after VATT; the toy world's labels).

The whole backbone of a pretraining checkpoint plus a new linear classifier (dropout before it)
is trained with its own optimiser and schedule: SGD (momentum, Nesterov) or Adam/AdamW, linear
warm-up then cosine decay per step (:func:`versanet.schedules.warmup_cosine`, the schedule
pretraining uses), a learning-rate multiplier for the backbone (``backbone_lr_mult``; 0 freezes it:
its parameters and its BatchNorm statistics stay as pretrained, the backbone runs in eval mode),
label smoothing, weight decay on weights (not on biases and BatchNorm parameters). Multilabel data
(float multi-hot labels) is trained with binary cross-entropy.

Testing is multi-view: a sample ``[V, *input]`` (V = clips x crops, clip-major) is classified
per view and the softmax probabilities (sigmoid when multilabel) are averaged over the V views
(``view_average: logits`` averages logits instead). ``test/top1``, ``test/top5`` by torchmetrics
(``val/...`` the same on the validation loader while fitting).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from versanet.downstream.common import FrozenBackboneMixin, Init, data_classes, encode_views, load_pretrained, pick_label
from versanet.eval.classification import ClassificationScores
from versanet.schedules import warmup_cosine


class FineTuneModule(FrozenBackboneMixin, LightningModule):
    """Backbone of a pretraining checkpoint + linear classifier, trained end to end.

    Args:
        checkpoint: pretraining checkpoint; its ``modality`` encoder is fine-tuned.
        init: ``pretrained`` or ``random`` (the same network from scratch: a baseline).
        label_key: label column when the data gives a dict of labels.
        optimizer: ``sgd`` (momentum, Nesterov), ``adam`` or ``adamw``.
        lr: peak learning rate of the classifier; the backbone gets ``lr * backbone_lr_mult``.
        warmup_steps: linear warm-up steps (``warmup_fraction`` of the run when ``warmup_steps`` is None).
        final_lr_ratio: cosine decay ends at ``lr * final_lr_ratio``.
        dropout: before the classifier. label_smoothing: single-label cross-entropy smoothing.
        view_average: ``probs`` (softmax/sigmoid, then the mean over views) or ``logits``.
    """

    zero_shot = False

    def __init__(
        self,
        checkpoint: str,
        modality: str = "video",
        init: Init = "pretrained",
        init_seed: int = 0,
        label_key: str | None = None,
        num_classes: int | None = None,
        optimizer: Literal["sgd", "adam", "adamw"] = "sgd",
        lr: float = 0.01,
        backbone_lr_mult: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        warmup_steps: int | None = None,
        warmup_fraction: float = 0.1,
        final_lr_ratio: float = 0.0,
        dropout: float = 0.5,
        label_smoothing: float = 0.1,
        view_average: Literal["probs", "logits"] = "probs",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        pretrained = load_pretrained(checkpoint, init, init_seed)
        if modality not in pretrained.encoders:
            raise KeyError(f"{checkpoint}: no {modality!r} encoder; it has {', '.join(pretrained.encoders)}")
        self.backbone = pretrained.encoders[modality]
        self.backbone_frozen = backbone_lr_mult == 0
        if self.backbone_frozen:
            self.freeze_backbone()
        else:
            self.backbone.train()
        self.dropout = nn.Dropout(dropout)
        self.classifier: nn.Linear | None = None
        self.num_classes, self.multilabel = num_classes, False
        self.scores: nn.ModuleDict = nn.ModuleDict()  # per stage, built when the number of classes is known

    def build_classifier(self, num_classes: int) -> None:
        self.classifier = nn.Linear(self.backbone.out_dim, num_classes).to(next(self.backbone.parameters()).device)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is None:
            raise ValueError("FineTuneModule reads its data from a LightningDataModule (the config's `data:`)")
        num, _, self.multilabel = data_classes(dm, self.hparams.label_key)
        self.num_classes = self.num_classes or num
        if self.classifier is None:
            self.build_classifier(self.num_classes)
        self.scores = nn.ModuleDict({s: ClassificationScores(self.num_classes, self.multilabel, f"{s}/") for s in ("val", "test")})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["versanet_benchmark"] = {"num_classes": self.num_classes, "multilabel": self.multilabel}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        info = checkpoint.get("versanet_benchmark", {})
        if self.classifier is None and info.get("num_classes"):
            self.num_classes, self.multilabel = info["num_classes"], info["multilabel"]
            self.build_classifier(self.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, *input]`` or ``[B, V, *input]`` -> logits ``[B, V, C]``."""
        feats = encode_views(self.backbone, x)
        return self.classifier(self.dropout(feats))

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        if self.multilabel:
            return F.binary_cross_entropy_with_logits(logits, y.float())
        return F.cross_entropy(logits, y.long(), label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        y = pick_label(batch["label"], self.hparams.label_key)
        logits = self(batch[self.hparams.modality])  # [B, V, C]; V = 1 for training clips
        v = logits.shape[1]
        loss = self._loss(logits.flatten(0, 1), y.repeat_interleave(v, dim=0))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        return loss

    @torch.no_grad()
    def predict_views(self, x: Tensor) -> Tensor:
        """Multi-view scores ``[B, C]``: probabilities (or logits) averaged over the views."""
        logits = self(x)
        if self.hparams.view_average == "logits":
            return logits.mean(1)
        return (torch.sigmoid(logits) if self.multilabel else logits.softmax(-1)).mean(1)

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        y = pick_label(batch["label"], self.hparams.label_key)
        self.scores[stage].update(self.predict_views(batch[self.hparams.modality]), y, batch.get("index"))

    def _eval_epoch_end(self, stage: str) -> None:
        """Metrics over every process's samples (the metric gathers its states), the same on every process."""
        metric = self.scores[stage]
        if metric.update_count:
            self.log_dict(metric.compute(), prog_bar=stage == "val")
        metric.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        decay, no_decay, backbone_decay, backbone_no_decay = [], [], [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            is_backbone = name.startswith("backbone.")
            plain = p.dim() <= 1  # biases and normalisation parameters: no weight decay
            (backbone_no_decay if is_backbone and plain else backbone_decay if is_backbone else no_decay if plain else decay).append(p)
        groups = [
            {"params": decay, "lr": hp.lr, "weight_decay": hp.weight_decay},
            {"params": no_decay, "lr": hp.lr, "weight_decay": 0.0},
            {"params": backbone_decay, "lr": hp.lr * hp.backbone_lr_mult, "weight_decay": hp.weight_decay},
            {"params": backbone_no_decay, "lr": hp.lr * hp.backbone_lr_mult, "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.momentum > 0)
        else:
            optimizer = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[hp.optimizer](groups, lr=hp.lr)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = hp.warmup_steps if hp.warmup_steps is not None else int(hp.warmup_fraction * total)
        scheduler = warmup_cosine(optimizer, total, warmup, hp.final_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
