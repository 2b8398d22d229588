"""Modality backbones. Every one implements :class:`versanet.encoders.base.Encoder`."""

from versanet.encoders.base import Encoder

__all__ = ["Encoder"]
