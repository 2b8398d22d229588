"""Image classification through a video network (MMV section 4): PASCAL VOC 2007 (mAP), ImageNet (top-1/top-5).

The image backbone comes from the checkpoint's video encoder in one of MMV's three ways
(``method``; docs/method.md, "Deflation"):

- ``naive``: naive deflation, the temporally summed filters run on one-frame videos
  (:func:`versanet.deflation.deflate`);
- ``deflated``: deflation proper, naive deflation whose BatchNorm gamma/beta were re-trained to
  match the video network on static videos: an image encoder file written by
  ``DeflationRecalibration`` (``image_encoder``), read with :func:`versanet.deflation.load_image_encoder`;
- ``inflate``: input inflation, the image repeated ``num_frames`` times into the video network
  (:class:`versanet.deflation.InputInflation`).

The classifier is the frozen-feature machinery of :class:`~versanet.downstream.frozen.LinearProbeModule`
on the ``image`` batch key (``[B, 3, H, W]``): VOC is multilabel (``test/mAP_voc11``, the VOC2007
11-point metric MMV reports, and ``test/mAP_voc_area``), ImageNet single-label (``test/top1``, ``test/top5``).
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from versanet.downstream.common import checkpoint_fingerprint
from versanet.downstream.frozen import LinearProbeModule


class ImageClassificationModule(LinearProbeModule):
    """Linear classifier on frozen features of a deflated / inflated video backbone (see the module docstring).

    Args:
        checkpoint: pretraining checkpoint whose ``video_modality`` encoder is turned into an image network.
        method: ``naive``, ``deflated`` (needs ``image_encoder``) or ``inflate`` (``num_frames`` copies).
        image_encoder: an image encoder file (``save_image_encoder``), for ``method: deflated``.
        Other arguments: as :class:`LinearProbeModule` (``modality`` is the image batch key).
    """

    def __init__(
        self,
        checkpoint: str,
        method: Literal["naive", "deflated", "inflate"] = "naive",
        image_encoder: str | None = None,
        num_frames: int = 8,
        video_modality: str = "video",
        modality: str = "image",
        **kwargs: Any,
    ) -> None:
        self._image_args = {"method": method, "image_encoder": image_encoder, "num_frames": num_frames, "video_modality": video_modality}
        super().__init__(checkpoint, modality=modality, **kwargs)

    def build_backbone(self, pretrained: nn.Module) -> nn.Module:
        from versanet.deflation import InputInflation, deflate, load_image_encoder

        args = self._image_args
        video = args["video_modality"]
        if video not in pretrained.encoders:
            raise KeyError(f"{self.hparams.checkpoint}: no {video!r} encoder to deflate; it has {', '.join(pretrained.encoders)}")
        if args["method"] == "naive":
            return deflate(pretrained.encoders[video])
        if args["method"] == "inflate":
            return InputInflation(pretrained.encoders[video], args["num_frames"])
        if args["method"] == "deflated":
            if not args["image_encoder"]:
                raise ValueError("method 'deflated' reads the recalibrated image encoder file: set image_encoder (written by DeflationRecalibration)")
            return load_image_encoder(args["image_encoder"])
        raise ValueError(f"method must be 'naive', 'deflated' or 'inflate', not {args['method']!r}")

    def backbone_description(self) -> dict[str, Any]:
        out = super().backbone_description()
        out.update(self._image_args)
        if self._image_args["image_encoder"]:
            out["image_encoder"] = checkpoint_fingerprint(self._image_args["image_encoder"])
        return out
