"""VATT (Akbari et al., NeurIPS 2021): convolution-free Transformers on raw video, audio and text.

- ``transformer.py``: the pre-LN Transformer of the video/audio towers and VATT-MA, T5's text encoder,
  the size presets;
- ``positional.py``: factorised positional embeddings with LayerNorm, spline resampling to new grids;
- ``towers.py``: the registered encoders ``VATTVideo``, ``VATTAudio``, ``VATTText`` and DropToken;
- ``trunk.py``: ``VATTTrunk``, the Transformer as a trunk several encoders share (VATT-MA).

``docs/vatt.md`` maps the TF reference's variables onto these modules' state-dict keys.
May import: ``versanet.encoders``, ``versanet.registry``, ``versanet.text``.
"""

from versanet.encoders.vatt.positional import resample_table, spline_resample_matrix
from versanet.encoders.vatt.towers import VATTAudio, VATTText, VATTVideo, drop_tokens
from versanet.encoders.vatt.transformer import SIZES, T5Encoder, TransformerEncoder, VATTSize, resolve_size
from versanet.encoders.vatt.trunk import VATTTrunk

__all__ = [
    "SIZES", "T5Encoder", "TransformerEncoder", "VATTAudio", "VATTSize", "VATTText", "VATTTrunk", "VATTVideo",
    "drop_tokens", "resample_table", "resolve_size", "spline_resample_matrix",
]
