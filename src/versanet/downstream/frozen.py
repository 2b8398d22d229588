"""Frozen-feature benchmarks: a classifier on cached backbone features (linear probe, audio, deflated images).

How it runs under Lightning (``versanet fit`` then ``versanet test``):

1. ``setup``: the data module is set up as usual; the module then points the data module's
   ``train_dataloader``/``test_dataloader`` at the cached features (the original loaders are read
   once, for extraction), so Lightning's loops iterate over features, not videos.
2. Training features: ``train_views`` passes over the (augmented) training split, each pass one
   more view per sample (MMV: features over 10 augmented epochs); standardised with the training
   mean and standard deviation (MMV's StandardScaler).
3. The classifier is a bank of heads trained at once, one per L2 strength in ``weight_decays``,
   twice: a *selection* copy trained without a held-out ``holdout_fraction`` of the training
   samples (by sample, so all views of a video stay on one side) and a *final* copy trained on all
   of them. The strength with the best held-out top-1 (mAP when multilabel) is chosen at the end
   of every epoch; its final copy is what ``test`` evaluates. A single strength (or
   ``holdout_fraction: 0``) trains just that head on everything. A low-shot probe
   (``train_per_class: k``) trains ``low_shot_draws`` heads, each on k random samples per class,
   and reports the mean of their test metrics.
4. Test features: one view per clip x crop the data module gives (``[B, V, *input]``); scores
   averaged over the V views (for a linear head, the same as averaging features).

Solvers: ``lbfgs`` (full batch, deterministic, the default; each epoch is one L-BFGS call of
``lbfgs_iters`` iterations, with the loss accumulated over ``batch_size`` chunks so memory stays
bounded) or ``adam`` (mini-batches of ``batch_size``, cosine decay by :func:`versanet.schedules.warmup_cosine`;
for large sets and MLP heads).

Objective per head: mean cross-entropy (binary cross-entropy per class when multilabel) +
``wd * ||W||^2`` (weights, not biases): the one probe of :mod:`versanet.eval.probe`. See
docs/benchmarks.md for how this compares with MMV's StandardScaler + LinearSVC.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from versanet.downstream.common import FrozenBackboneMixin, Init, checkpoint_fingerprint, data_classes, encode_views, load_pretrained
from versanet.downstream.features import FeatureExtractor, FeatureSet
from versanet.eval.classification import ClassificationScores
from versanet.eval.metrics import mean_average_precision
from versanet.eval.probe import BankedClassifier, head_losses, make_lbfgs, probe_closure
from versanet.schedules import warmup_cosine


class LinearProbeModule(FrozenBackboneMixin, LightningModule):
    """Linear (or MLP) classifier on frozen, cached backbone features of a pretraining checkpoint.

    Args:
        checkpoint: pretraining checkpoint (``versanet fit``); its ``modality`` encoder is the backbone.
        modality: batch key and encoder (``video``, ``audio``; ``image`` for the image benchmarks).
        label_key: label column when the data gives a dict of labels (the toy world's ``shape``...).
        init: ``pretrained``, or ``random`` for the same network with random weights (a baseline).
        weight_decays: L2 strengths swept; the best on the held-out part is tested.
        head: ``linear`` or ``mlp`` (one hidden layer of ``hidden_dim``, ReLU, ``dropout``).
        solver: ``lbfgs`` (full batch) or ``adam`` (mini-batches of ``batch_size``, cosine decay of ``lr``).
        train_views: augmented passes over the training split (each a view of every sample).
        holdout_fraction: share of training samples held out to choose the strength.
        standardize: scale features with the training mean and std (MMV's StandardScaler).
        train_per_class: low-shot probe: train on this many samples per class only (one L2 strength,
            no hold-out), ``low_shot_draws`` random draws, the test metrics averaged over the draws.
        cache_dir, cache, cache_dtype: feature cache (see :mod:`versanet.downstream.features`).
        num_classes: normally read from the data module after setup.
    """

    zero_shot = False  # benchmark runners: fit, then test

    def __init__(
        self,
        checkpoint: str,
        modality: str = "video",
        label_key: str | None = None,
        init: Init = "pretrained",
        init_seed: int = 0,
        weight_decays: list[float] = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1],  # noqa: B006 - shown as is by --print_config
        head: Literal["linear", "mlp"] = "linear",
        hidden_dim: int = 512,
        dropout: float = 0.0,
        solver: Literal["lbfgs", "adam"] = "lbfgs",
        lr: float | None = None,
        lbfgs_iters: int = 50,
        batch_size: int = 4096,
        train_views: int = 1,
        holdout_fraction: float = 0.2,
        standardize: bool = True,
        train_per_class: int | None = None,
        low_shot_draws: int = 5,
        seed: int = 0,
        cache_dir: str | None = None,
        cache: bool = True,
        cache_dtype: Literal["float32", "float16"] = "float32",
        num_classes: int | None = None,
        multilabel: bool | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        if not weight_decays:
            raise ValueError("weight_decays: give at least one L2 strength")
        if train_per_class is not None and (len(weight_decays) != 1 or train_per_class < 1 or low_shot_draws < 1):
            raise ValueError("a low-shot probe (train_per_class) takes one L2 strength (weight_decays: [wd]), "
                             "train_per_class >= 1 and low_shot_draws >= 1: there is nothing to hold out")
        self.weight_decays = [float(w) for w in weight_decays]
        self.backbone = self.build_backbone(load_pretrained(checkpoint, init, init_seed))
        self.freeze_backbone()
        dim = self.backbone.out_dim
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        self.register_buffer("selected", torch.tensor(0))
        self.classifier: BankedClassifier | None = None
        self.num_classes, self.multilabel, self.class_names = num_classes, multilabel, None
        self.extractor = FeatureExtractor(cache_dir, cache, cache_dtype)
        self._train: dict[str, Tensor] = {}
        self.test_scores: ClassificationScores | None = None
        self.val_results: dict[str, float] = {}

    # ------------------------------------------------------------------ backbone
    def build_backbone(self, pretrained: nn.Module) -> nn.Module:
        """The frozen network features come from (subclasses: a deflated video net, ...)."""
        modality = self.hparams.modality
        if modality not in pretrained.encoders:
            raise KeyError(f"{self.hparams.checkpoint}: no {modality!r} encoder; it has {', '.join(pretrained.encoders)}")
        return pretrained.encoders[modality]

    def backbone_description(self) -> dict[str, Any]:
        """What identifies the backbone in the feature cache key."""
        hp = self.hparams
        return {"checkpoint": checkpoint_fingerprint(hp.checkpoint), "init": hp.init, "init_seed": hp.init_seed if hp.init == "random" else None,
                "encoder": type(self.backbone).__name__, "modality": hp.modality}

    def encode(self, x: Tensor) -> Tensor:
        """``[B, *input]`` or ``[B, V, *input]`` -> ``[B, V, d]``."""
        return encode_views(self.backbone, x)

    # ------------------------------------------------------------------ the bank of heads
    @property
    def low_shot(self) -> bool:
        return self.hparams.train_per_class is not None

    @property
    def selecting(self) -> bool:
        """Several strengths and a hold-out: selection heads (first half of the bank) + final heads."""
        return not self.low_shot and len(self.weight_decays) > 1 and self.hparams.holdout_fraction > 0

    @property
    def num_heads(self) -> int:
        if self.low_shot:
            return self.hparams.low_shot_draws
        return len(self.weight_decays) * (2 if self.selecting else 1)

    def head_decays(self) -> Tensor:
        """L2 strength of each head ``[M]``."""
        if self.low_shot:
            wd = [self.weight_decays[0]] * self.num_heads
        else:
            wd = self.weight_decays * (2 if self.selecting else 1)
        return torch.tensor(wd, device=self.device)

    def tested_heads(self) -> list[int]:
        """Heads ``test`` evaluates (metrics averaged over them): the final head at the selected strength, or every low-shot draw."""
        if self.low_shot:
            return list(range(self.num_heads))
        return [int(self.selected) + (len(self.weight_decays) if self.selecting else 0)]

    def build_classifier(self, num_classes: int) -> None:
        hidden = self.hparams.hidden_dim if self.hparams.head == "mlp" else None
        self.classifier = BankedClassifier(self.num_heads, self.backbone.out_dim, num_classes, hidden, self.hparams.dropout).to(self.feature_mean.device)

    # ------------------------------------------------------------------ set-up
    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is None:
            raise ValueError(f"{type(self).__name__} reads its data from a LightningDataModule (the config's `data:`)")
        num, names, multilabel = data_classes(dm, self.hparams.label_key)
        self.num_classes = self.num_classes or num
        self.multilabel = multilabel if self.multilabel is None else self.multilabel
        if self.multilabel and self.low_shot:
            raise ValueError("train_per_class (low-shot probe) needs single-label data")
        self.class_names = names
        if self.classifier is None:
            self.build_classifier(self.num_classes)
        self._raw_loaders = {name: getattr(type(dm), name).__get__(dm) for name in ("train_dataloader", "test_dataloader")}
        dm.train_dataloader = self._feature_train_loader  # Lightning asks the data module; it gets features
        dm.test_dataloader = self._feature_test_loader

    def teardown(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        for name in ("train_dataloader", "test_dataloader"):
            if dm is not None and name in vars(dm):
                delattr(dm, name)

    def features(self, split: Literal["train", "test"]) -> FeatureSet:
        """Cached (or freshly extracted) backbone features of a split."""
        hp = self.hparams
        was_training = self.training
        self.eval()
        try:
            return self.extractor(
                split, self.backbone_description(), self.trainer.datamodule, self._raw_loaders[f"{split}_dataloader"],
                self.encode, hp.modality, self.device, passes=hp.train_views if split == "train" else 1,
                label_key=hp.label_key, seed=hp.seed,
            )
        finally:
            self.train(was_training)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["versanet_benchmark"] = {"num_classes": self.num_classes, "multilabel": self.multilabel, "class_names": self.class_names}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        info = checkpoint.get("versanet_benchmark", {})
        if self.classifier is None and info.get("num_classes"):
            self.num_classes, self.multilabel = info["num_classes"], info["multilabel"]
            self.class_names = info.get("class_names")
            self.build_classifier(self.num_classes)

    # ------------------------------------------------------------------ training on features
    def _standardise(self, x: Tensor) -> Tensor:
        return (x.float() - self.feature_mean) / self.feature_std

    def _head_rows(self, fs: FeatureSet) -> tuple[Tensor, Tensor]:
        """Which training samples each head learns from, bool ``[n, M]``, and the held-out samples ``[n]``."""
        n = len(fs)
        gen = torch.Generator().manual_seed(self.hparams.seed)
        hold = torch.zeros(n, dtype=torch.bool)
        if self.low_shot:
            if fs.view_labels is not None:
                raise ValueError("train_per_class needs one label per sample (this data labels each view)")
            rows = torch.zeros(n, self.num_heads, dtype=torch.bool)
            for m in range(self.num_heads):
                for c in fs.labels.unique():
                    members = torch.nonzero(fs.labels == c).flatten()
                    rows[members[torch.randperm(len(members), generator=gen)[: self.hparams.train_per_class]], m] = True
            return rows, hold
        rows = torch.ones(n, self.num_heads, dtype=torch.bool)
        if self.selecting:
            n_hold = int(round(n * self.hparams.holdout_fraction))
            if not 0 < n_hold < n:
                raise ValueError(f"holdout_fraction {self.hparams.holdout_fraction} of {n} training samples leaves nothing to fit or to hold out")
            hold[torch.randperm(n, generator=gen)[:n_hold]] = True
            rows[hold, : len(self.weight_decays)] = False  # selection heads never see the held-out samples
        return rows, hold

    def _feature_train_loader(self) -> DataLoader:
        fs = self.features("train")
        n, views, dim = fs.features.shape
        x = fs.features.to(self.device).float()
        if self.hparams.standardize:
            flat = x.reshape(-1, dim)
            self.feature_mean.copy_(flat.mean(0))
            self.feature_std.copy_(flat.std(0).clamp(min=1e-6) if flat.shape[0] > 1 else torch.ones_like(flat[0]))
        labels = fs.labels.to(self.device)
        head_rows, hold = self._head_rows(fs)
        head_rows, hold = head_rows.to(self.device), hold.to(self.device)
        y = fs.view_labels.to(self.device).flatten(0, 1) if fs.view_labels is not None else labels.repeat_interleave(views, dim=0)
        self._train = {
            "x": self._standardise(x.reshape(-1, dim)),  # [n*views, d], sample-major
            "y": y,
            "w": head_rows.repeat_interleave(views, dim=0).float(),  # [n*views, M]
            "hold_x": self._standardise(x[hold]),  # [n_hold, views, d]
            "hold_y": fs.view_labels.to(self.device)[hold][:, 0] if fs.view_labels is not None else labels[hold],
        }
        rows = self._train["x"].shape[0]
        used = f"{self.hparams.train_per_class} per class x {self.num_heads} draws" if self.low_shot else f"{int(hold.sum())} held out"
        rank_zero_info(f"{type(self).__name__}: {n} training samples x {views} views ({self.extractor.sources.get('train')}), {used}, "
                       f"{dim}-d features, {self.num_classes} classes, L2 {', '.join(f'{w:g}' for w in self.weight_decays)}")
        if self.hparams.solver == "lbfgs":
            return DataLoader(TensorDataset(torch.zeros(1)), batch_size=1)
        return DataLoader(TensorDataset(torch.arange(rows)), batch_size=self.hparams.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(self.hparams.seed))

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        opt = self.optimizers()
        decays = self.head_decays()
        train = self._train
        if self.hparams.solver == "lbfgs":
            closure = probe_closure(opt, self.classifier, train["x"], train["y"], train["w"], decays, bool(self.multilabel),
                                    self.hparams.batch_size, self.manual_backward)
            loss = opt.step(closure=closure)
        else:
            rows = batch[0]
            summed, counts = head_losses(self.classifier, train["x"][rows], train["y"][rows], train["w"][rows], bool(self.multilabel))
            loss = (summed / counts.clamp(min=1)).sum() + (decays * self.classifier.penalty()).sum()
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
            sched = self.lr_schedulers()
            if sched is not None:
                sched.step()
        self.log("train/loss", loss.detach() / self.num_heads, prog_bar=True, batch_size=1)
        if self.trainer.is_last_batch:
            self.select()
        return loss

    @torch.no_grad()
    def select(self) -> None:
        """Score the selection heads on the held-out samples; remember the best strength."""
        if not self.selecting:
            self.selected.fill_(0)
            return
        was_training = self.classifier.training
        self.classifier.eval()
        x, y = self._train["hold_x"], self._train["hold_y"]  # [h, V, d]
        s = len(self.weight_decays)
        logits = self.classifier(x.flatten(0, 1)).reshape(x.shape[0], x.shape[1], -1, self.num_classes).mean(1)[:, :s]  # [h, S, C]
        scores = []
        for m in range(s):
            if self.multilabel:
                scores.append(mean_average_precision(logits[:, m].cpu(), y.cpu()))
            else:
                scores.append((logits[:, m].argmax(-1) == y).float().mean().item())
        self.classifier.train(was_training)
        best = max(range(s), key=lambda m: (scores[m], -m))  # the first of equal scores
        self.selected.fill_(best)
        name = "mAP" if self.multilabel else "top1"
        self.val_results = {f"val/{name}@wd={wd:g}": v for wd, v in zip(self.weight_decays, scores)}
        self.val_results["val/selected_wd"] = self.weight_decays[best]
        self.log_dict(self.val_results, batch_size=1)

    def configure_optimizers(self) -> Any:
        params = self.classifier.parameters()
        if self.hparams.solver == "lbfgs":
            return make_lbfgs(params, lr=self.hparams.lr or 1.0, max_iter=self.hparams.lbfgs_iters)
        optimizer = torch.optim.Adam(params, lr=self.hparams.lr or 1e-3)
        scheduler = warmup_cosine(optimizer, max(int(self.trainer.estimated_stepping_batches), 1))  # cosine to 0, no warm-up
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ test
    def _feature_test_loader(self) -> DataLoader:
        fs = self.features("test")
        rank_zero_info(f"{type(self).__name__}: {len(fs)} test samples x {fs.features.shape[1]} views ({self.extractor.sources.get('test')})")
        tensors = (fs.features, fs.labels) if fs.ignore is None else (fs.features, fs.labels, fs.ignore)
        return DataLoader(TensorDataset(*tensors), batch_size=self.hparams.batch_size)

    def on_test_start(self) -> None:
        self.test_scores = ClassificationScores(self.num_classes, bool(self.multilabel)).to(self.device)

    @torch.no_grad()
    def scores(self, features: Tensor) -> Tensor:
        """Features ``[B, V, d]`` -> logits ``[B, H, C]`` of the tested heads, averaged over the V views."""
        b, v, d = features.shape
        logits = self.classifier(self._standardise(features.reshape(b * v, d)))[:, self.tested_heads()]
        return logits.reshape(b, v, *logits.shape[1:]).mean(1)

    def test_step(self, batch: list[Tensor], batch_idx: int) -> None:
        features, labels = batch[0], batch[1]
        self.test_scores.update(self.scores(features), labels, ignore=batch[2] if len(batch) > 2 else None)

    def on_test_epoch_end(self) -> None:
        """Metrics of the tested heads (averaged over them: the low-shot draws), by :func:`~versanet.eval.classification.classification_metrics`."""
        self.log_dict(self.test_scores.compute(), batch_size=1)
        self.test_scores.reset()


class AudioClassificationModule(LinearProbeModule):
    """Frozen audio backbone + classifier: ESC-50 (linear, 5-fold CV via the data module's ``fold``),
    AudioSet (``head: mlp``, ``solver: adam``, multilabel BCE, mAP). Same machinery as :class:`LinearProbeModule`."""

    def __init__(self, checkpoint: str, modality: str = "audio", **kwargs: Any) -> None:
        super().__init__(checkpoint, modality=modality, **kwargs)


__all__ = ["LinearProbeModule", "AudioClassificationModule"]
