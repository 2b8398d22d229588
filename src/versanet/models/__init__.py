"""LightningModules: pretraining (and, per benchmark, downstream evaluation)."""

from versanet.models.pretrain import PretrainModule

__all__ = ["PretrainModule"]
