"""Example versanet plugin: a ``motion`` modality.

Motion here is the absolute difference of consecutive grey frames, a cheap stand-in for optical
flow: ``[T, H, W, 3]`` frames -> ``[1, T-1, H, W]``. The plugin adds two registered classes:

- ``MotionTransform`` (kind ``transform``): decoded clip -> motion tensor and presence mask;
- ``MotionCNN`` (kind ``encoder``): ``[N, 1, T-1, H, W]`` -> ``[N, out_dim]``.

Installing the package (``pip install plugins/versanet-motion``) registers them through the
``versanet.plugins`` entry point, so a YAML config can use ``class_path: MotionTransform`` and
``class_path: MotionCNN`` and put ``motion`` in any modality embedding graph.
"""

from versanet_motion.encoder import MotionCNN
from versanet_motion.transform import MotionTransform

__all__ = ["MotionCNN", "MotionTransform"]
