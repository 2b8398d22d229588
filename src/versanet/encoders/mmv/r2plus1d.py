"""R(2+1)D-18 (Tran et al., "A Closer Look at Spatiotemporal Convolutions") from torchvision's builder.

torchvision's ``VideoResNet`` with ``Conv2Plus1D`` blocks (the classes behind
``torchvision.models.video.r2plus1d_18``), classifier dropped. Each 3x3x3 conv ``cin -> cout`` is a
``(1, 3, 3)`` conv ``cin -> M``, BN, ReLU, ``(3, 1, 1)`` conv ``M -> cout``, with the paper's
``M = floor(27 cin cout / (9 cin + 3 cout))`` chosen so the pair has as many weights as the 3D conv.

Shape legend: N clips, T frames, H/W pixels; t = ceil(T / 8), h = ceil(H / 16), w = ceil(W / 16).

    [N, 3, T, H, W] -> stem (1x7x7/(1,2,2) + 3x1x1) -> layer1..4 -> [N, 512, t, h, w] -> mean -> [N, 512]
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, R2Plus1dStem, VideoResNet

from versanet.encoders.base import FeatureMapEncoder, run_blocks
from versanet.encoders.mmv.s3dg import make_conv3d_bf16_safe
from versanet.registry import register


def _midplanes(cin: int, cout: int) -> int:
    return (cin * cout * 3 * 3 * 3) // (cin * 3 * 3 + 3 * cout)


def _use_paper_midplanes(net: VideoResNet) -> None:
    """Give each block's second conv the mid width of ITS OWN ``cout -> cout`` shape (in place).

    torchvision computes one mid width per block from ``(inplanes, planes)`` and uses it for both
    convs, so the second conv of each downsampling block (layer2-4, block 0) is narrower than the
    3D conv it replaces.
    """
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        for block in layer:
            planes = block.conv2[0][0].in_channels
            mid = _midplanes(planes, planes)
            if block.conv2[0][0].out_channels != mid:
                block.conv2[0] = Conv2Plus1D(planes, planes, mid)
                for m in block.conv2[0].modules():  # torchvision's init for the replaced convs
                    if isinstance(m, nn.Conv3d):
                        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


@register("encoder")
class R2Plus1D18(FeatureMapEncoder):
    """R(2+1)D-18 (torchvision builder, no classifier) on RGB clips ``[N, 3, T, H, W]`` -> 512.

    Parameters: 31,300,125 (torchvision, default) or 33,165,639 (``paper_midplanes=True``); the
    paper (and MMV's table) give 33.3M. The 1,865,514 difference is torchvision's mid width: it
    computes ``M`` once per block from ``(inplanes, planes)`` and reuses it for the block's second
    ``planes -> planes`` conv, so the second conv of the first block of layer2/3/4 gets M = 230 / 460
    / 921 instead of 288 / 576 / 1152. With M computed per conv (``paper_midplanes``) every (2+1)D
    conv has the weights of its 3D conv (up to the floor), and the count is that of a 3D ResNet-18
    (torchvision ``r3d_18`` without classifier: 33,166,272; the (2+1)D stem and extra BNs differ by
    a few hundred). The paper's 33.3M is that family of counts (with its 400-way classifier,
    33,370,839; counting conventions of the paper are not stated).

    Args:
        layers: blocks per stage ((2, 2, 2, 2) is R(2+1)D-18).
        paper_midplanes: per-conv mid widths (the paper's formula; 33,165,639 params).
        grad_checkpointing: recompute the stem and each residual block in backward.
    """

    input_ndim = 4
    contract_kwargs = {"layers": (1, 1, 1, 1)}

    def __init__(
        self,
        layers: Sequence[int] = (2, 2, 2, 2),
        paper_midplanes: bool = False,
        grad_checkpointing: bool = False,
        modality: str = "video",
    ) -> None:
        super().__init__(modality, 512)
        net = VideoResNet(BasicBlock, [Conv2Plus1D] * 4, list(layers), R2Plus1dStem)
        if paper_midplanes:
            _use_paper_midplanes(net)
        make_conv3d_bf16_safe(net)  # CPU bf16 weight-gradient bug at small T (see SafeConv3d)
        # keep the feature layers only (no avgpool / classifier): state dict keys stay torchvision's
        self.stem, self.layer1, self.layer2, self.layer3, self.layer4 = net.stem, net.layer1, net.layer2, net.layer3, net.layer4
        self.grad_checkpointing = grad_checkpointing

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the stem and each residual block in backward instead of storing activations."""
        self.grad_checkpointing = enable

    def _blocks(self) -> list[nn.Module]:
        return [self.stem, *self.layer1, *self.layer2, *self.layer3, *self.layer4]

    def forward_features(self, x: Tensor) -> Tensor:
        """``[N, 3, T, H, W]`` -> ``[N, 512, t, h, w]``."""
        return run_blocks(self._blocks(), x, self.grad_checkpointing)

    def pool(self, features: Tensor) -> Tensor:
        """``[N, 512, t, h, w]`` -> ``[N, 512]`` (mean over T, H, W)."""
        return features.mean(dim=(2, 3, 4))

    def example_input(self, batch_size: int) -> Tensor:
        return torch.rand(batch_size, 3, 4, 32, 32)
