"""Deflation proper (MMV; docs/method.md, "Deflation"): retrain only BatchNorm gamma/beta of a deflated video network.

The student is the naively deflated network on images ``[B, 3, H, W]``; the teacher is the original
video network on the same images repeated as static videos ``[B, 3, T, H, W]``. The objective is
``L1(student(image), teacher(static video))`` (mean absolute difference of the ``[B, d]`` features).

Only BatchNorm affine parameters (gamma, beta) of the student are trained; every other parameter
of the student and the whole teacher are frozen (bit-identical after training).

BatchNorm statistics (``bn_mode``): with ``"eval"`` (default) the student's BN layers keep the video
net's running statistics and only gamma/beta change. An eval-mode BN is a per-channel affine map, so
re-estimating its statistics adds nothing that gamma/beta cannot express, and the function trained
is exactly the one used afterwards (no train/eval mismatch). With ``"train"`` the student's BN layers
run in train mode while training: they normalise with batch statistics and re-estimate their
running statistics on images while gamma/beta adapt. Measured on a small BN-trained 3D CNN
(``SmallVideoCNN(widths=(8, 16))``, random 24x24 images, 8-frame static videos, Adam lr 1e-2, 48
steps): ``eval`` lowered the held-out L1 from 0.0049 to 0.0012, ``train`` raised it to 0.026 (0.044
with lr 3e-3 and 100 steps): the batch statistics of images differ from the running statistics the
teacher uses, hence the default. Other layers with train/eval behaviour (dropout) stay in eval
mode either way; the teacher is always in eval mode (Lightning's "modules in eval mode at the start
of training" warning is expected).
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import move_data_to_device, rank_zero_info
from torch import Tensor, nn
from torch.nn import functional as F

from versanet.deflation import deflate, load_pretrained_encoder, save_image_encoder, static_clip
from versanet.encoders import Encoder

_BN = nn.modules.batchnorm._BatchNorm


class DeflationRecalibration(LightningModule):
    """Deflation with BN recalibration: fit the deflated image net's BN gamma/beta to the video net on static videos.

    Args:
        checkpoint: versanet pretraining checkpoint whose ``modality`` encoder is deflated.
        encoder: the video encoder itself (instead of ``checkpoint``; copied, not modified).
        encoder_config: with ``encoder``, its ``{"class_path", "init_args"}`` config, which the image
            encoder file records (a checkpoint records it itself).
        modality: which encoder of the checkpoint.
        num_frames: frames of the static video the teacher sees.
        lr: Adam learning rate (constant).
        bn_mode: BatchNorm mode of the student while training, ``train`` or ``eval`` (module docstring).
        image_key: batch key of the images ``[B, 3, H, W]``.
        output: write the recalibrated image encoder here at the end of fit (``save_image_encoder``).

    Logs ``train/l1`` and ``val/l1``; before training starts, the validation set's L1 of the
    naively deflated network is computed once and logged as ``val/l1_before`` (also kept in
    ``val_l1_before``) so the improvement is visible.
    """

    def __init__(
        self,
        checkpoint: str | None = None,
        encoder: Encoder | None = None,
        encoder_config: dict[str, Any] | None = None,
        modality: str = "video",
        num_frames: int = 8,
        lr: float = 1e-3,
        bn_mode: Literal["train", "eval"] = "eval",
        image_key: str = "image",
        output: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=None if self._from_cli() else ["encoder"])
        if (checkpoint is None) == (encoder is None):
            raise ValueError("DeflationRecalibration: give exactly one of checkpoint (a pretraining .ckpt) or encoder")
        if bn_mode not in ("train", "eval"):
            raise ValueError(f"bn_mode must be 'train' or 'eval', not {bn_mode!r}")
        if encoder is not None:
            teacher, self.encoder_config = copy.deepcopy(encoder), encoder_config
        else:
            teacher, self.encoder_config = load_pretrained_encoder(checkpoint, modality)  # type: ignore[arg-type]
        if output and self.encoder_config is None:
            raise ValueError("DeflationRecalibration: writing `output` needs the video encoder's config: give `checkpoint`, or `encoder_config` with `encoder`")
        self.student = deflate(teacher)
        self.teacher = teacher.eval().requires_grad_(False)
        trainable = 0
        for module in self.student.modules():
            for name, param in module.named_parameters(recurse=False):
                train_it = isinstance(module, _BN) and name in ("weight", "bias")
                param.requires_grad_(train_it)
                trainable += param.numel() if train_it else 0
        if trainable == 0:
            raise ValueError(f"{type(teacher).__name__} has no BatchNorm gamma/beta: nothing to recalibrate (use naive deflation)")
        self.num_frames, self.image_key, self.bn_mode = num_frames, image_key, bn_mode
        self.val_l1_before: float | None = None
        self.val_l1_last: float | None = None
        self._val_sum = torch.zeros(2, dtype=torch.float64)

    @staticmethod
    def _from_cli() -> bool:
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

        return _given_hyperparameters.get() is not None

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> DeflationRecalibration:
        """Teacher always eval; student eval except its BN layers in ``bn_mode='train'``."""
        super().train(mode)
        self.teacher.eval()
        self.student.eval()
        if mode and self.bn_mode == "train":
            for module in self.student.modules():
                if isinstance(module, _BN):
                    module.train()
        return self

    # ------------------------------------------------------------------ objective
    def _images(self, batch: Any) -> Tensor:
        """``batch[image_key]``, or the batch itself / its first element (plain tensors, ``(image, label)`` pairs)."""
        if isinstance(batch, Tensor):
            return batch
        return batch[0] if isinstance(batch, (list, tuple)) else batch[self.image_key]

    def l1(self, images: Tensor) -> Tensor:
        """``mean |student(image) - teacher(static video)|``."""
        with torch.no_grad():
            target = self.teacher(static_clip(images, self.num_frames))
        return F.l1_loss(self.student(images), target)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        images = self._images(batch)
        loss = self.l1(images)
        self.log("train/l1", loss, prog_bar=True, batch_size=images.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_sum = torch.zeros(2, device=self.device, dtype=torch.float64)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images = self._images(batch)
        loss = self.l1(images)
        self.log("val/l1", loss, prog_bar=True, batch_size=images.shape[0], sync_dist=True)
        self._val_sum[0] += loss.detach().double() * images.shape[0]
        self._val_sum[1] += images.shape[0]

    def on_validation_epoch_end(self) -> None:
        total = self.trainer.strategy.reduce(self._val_sum, reduce_op="sum")
        if not self.trainer.sanity_checking and total[1] > 0:
            self.val_l1_last = float(total[0] / total[1])

    # ------------------------------------------------------------------ before / after
    def _val_loaders(self) -> list[Any]:
        trainer = self.trainer
        if trainer.val_dataloaders is None:
            try:  # not set up yet when no sanity check ran
                trainer.fit_loop.epoch_loop.val_loop.setup_data()
            except Exception:  # noqa: BLE001 - fall back to the data module below
                pass
        loaders = trainer.val_dataloaders
        if loaders is None and trainer.datamodule is not None and hasattr(trainer.datamodule, "val_dataloader"):
            loaders = trainer.datamodule.val_dataloader()
        if loaders is None:
            return []
        return list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]

    @torch.no_grad()
    def evaluate_l1(self, loaders: list[Any], max_batches: int | None = None) -> float | None:
        """Mean L1 over ``loaders`` in eval mode (sample-weighted, summed over processes)."""
        was_training = self.training
        self.eval()
        total = torch.zeros(2, device=self.device, dtype=torch.float64)
        try:
            for loader in loaders:
                for i, batch in enumerate(loader):
                    if max_batches is not None and i >= max_batches:
                        break
                    images = self._images(move_data_to_device(batch, self.device))
                    total[0] += self.l1(images).double() * images.shape[0]
                    total[1] += images.shape[0]
        finally:
            self.train(was_training)
        total = self.trainer.strategy.reduce(total, reduce_op="sum") if self._trainer is not None else total
        return float(total[0] / total[1]) if total[1] > 0 else None

    def on_train_start(self) -> None:
        limit = self.trainer.limit_val_batches
        max_batches = limit if isinstance(limit, int) else None
        if max_batches == 0:
            return
        self.val_l1_before = self.evaluate_l1(self._val_loaders(), max_batches)
        if self.val_l1_before is not None:
            self.log("val/l1_before", self.val_l1_before, rank_zero_only=True)
            rank_zero_info(f"deflation: val L1 of the naively deflated network before recalibration: {self.val_l1_before:.5f}")

    def on_fit_end(self) -> None:
        if self.val_l1_before is not None and self.val_l1_last is not None:
            rank_zero_info(f"deflation: val L1 {self.val_l1_before:.5f} (naive) -> {self.val_l1_last:.5f} (recalibrated)")
        if self.hparams.get("output") and self.trainer.is_global_zero:
            path = self.save_image_encoder(self.hparams.output)
            rank_zero_info(f"deflation: wrote the recalibrated image encoder to {path}")

    # ------------------------------------------------------------------ optimisation and export
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([p for p in self.student.parameters() if p.requires_grad], lr=self.hparams.lr)

    def save_image_encoder(self, path: str) -> Any:
        """Write the recalibrated image encoder (read it with :func:`versanet.deflation.load_image_encoder`)."""
        if self.encoder_config is None:
            raise ValueError("DeflationRecalibration built from an encoder object without encoder_config cannot write an image encoder file")
        return save_image_encoder(
            self.student, path, self.encoder_config, method="deflation", source=self.hparams.get("checkpoint"), modality=self.hparams.get("modality"),
            num_frames=self.num_frames, bn_mode=self.bn_mode, val_l1_before=self.val_l1_before, val_l1=self.val_l1_last,
        )
