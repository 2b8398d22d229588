"""Contrastive objectives. Every loss a graph term names implements ``ContrastiveLoss``."""

from versanet.losses.nce import ContrastiveLoss, MILNCELoss, NCELoss

__all__ = ["ContrastiveLoss", "NCELoss", "MILNCELoss"]
