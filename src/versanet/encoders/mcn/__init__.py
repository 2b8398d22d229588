"""MCN's networks (Chen et al., 2021): the ResDAVEnet audio CNN, the sentence max-pool text network, pre-extracted video features.

May import: ``versanet.encoders``, ``versanet.registry``, ``versanet.text``; nothing above the encoders.
"""
