"""Projection heads into joint spaces. Every one implements :class:`versanet.heads.base.Head`."""

from versanet.heads.base import Head, HeadFactory
from versanet.heads.projection import LinearBNHead, LinearHead, MLPBNHead, ReLULinearBNHead

__all__ = ["Head", "HeadFactory", "LinearHead", "LinearBNHead", "MLPBNHead", "ReLULinearBNHead"]
