"""Contrastive objectives (every loss a pairwise graph term names implements ``ContrastiveLoss``) and MCN's other terms.

``clustering`` (:class:`~versanet.losses.clustering.ClusteringTerm`) and ``reconstruction``
(:class:`~versanet.losses.reconstruction.ReconstructionTerm`) are objective terms; they import
:mod:`versanet.objective`, which imports this package, so they are not re-exported here.
"""

from versanet.losses.mms import MaskedMarginSoftmax
from versanet.losses.nce import ContrastiveLoss, MILNCELoss, NCELoss

__all__ = ["ContrastiveLoss", "NCELoss", "MILNCELoss", "MaskedMarginSoftmax"]
