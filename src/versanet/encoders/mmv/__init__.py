"""MMV's backbones (Alayrac et al., 2020): S3D-G, TSM-ResNet50(x2), R(2+1)D-18, the audio ResNet50, word2vec text.

May import: ``versanet.encoders.base``, ``versanet.registry``, ``versanet.text``; nothing above the encoders.
"""
