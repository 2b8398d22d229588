"""Modality backbones. Every one implements :class:`versanet.encoders.base.Encoder`.

Layout: ``base.py`` (the interface), ``text.py`` (the word max-pool text shape), ``small.py``
(CPU-sized encoders for the toy world), one sub-package per published family (``mmv/``, ...).
May import: ``versanet.registry``, ``versanet.text``; nothing above the encoders.
"""

from versanet.encoders.base import Encoder, FeatureMapEncoder, Tokens, feature_map_tokens

__all__ = ["Encoder", "FeatureMapEncoder", "Tokens", "feature_map_tokens"]
