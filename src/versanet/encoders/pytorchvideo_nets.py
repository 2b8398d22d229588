"""PyTorchVideo's video networks (X3D, Slow, CSN, R(2+1)D-50) as versanet video encoders.

The papers versanet implements use S3D-G, TSM-ResNet and R(2+1)D-18 (``encoders/mmv``) or VATT's
Transformers; these are the supervised-video baselines a comparison usually needs beside them, built
by PyTorchVideo's own builders (``pytorchvideo.models``: only its model builders import with current
torchvision, its ``transforms`` module does not, and versanet augments with torchvision v2).

The classifier is dropped and the rest of each network is kept under PyTorchVideo's own state-dict
keys (``blocks.N...``), so a state dict from PyTorchVideo's model zoo loads with
``load_state_dict(sd, strict=False)``, leaving only the classifier's ``blocks.N.proj.*`` unexpected.

Shape legend: N clips, T frames, H/W pixels; C the last stage's width, (t, h, w) its grid.

    [N, 3, T, H, W] -> stem -> stages -> [N, C, t, h, w] (X3D: then its 1x1x1 conv 192 -> 432, BN, ReLU)
                    -> mean over (t, h, w) (X3D: then its 1x1x1 conv 432 -> 2048, ReLU) -> [N, out_dim]

The mean over the grid replaces the builders' fixed-size ``AvgPool3d``, so any clip size works; at the
size a network was built for the two are the same.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from versanet.encoders.base import FeatureMapEncoder, run_blocks
from versanet.registry import register


def _x3d(clip_length: int, crop_size: int, depth_factor: float) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from pytorchvideo.models.x3d import create_x3d

        return create_x3d(input_clip_length=clip_length, input_crop_size=crop_size, depth_factor=depth_factor)

    return build


def _slow_r50() -> nn.Module:
    from pytorchvideo.models.resnet import create_resnet

    return create_resnet(model_depth=50, stem_conv_kernel_size=(1, 7, 7), head_pool_kernel_size=(8, 7, 7))


def _csn_r101() -> nn.Module:
    from pytorchvideo.models.csn import create_csn

    return create_csn(model_depth=101, stem_pool=nn.MaxPool3d, head_pool_kernel_size=(4, 7, 7))


def _r2plus1d_r50() -> nn.Module:
    from pytorchvideo.models.r2plus1d import create_r2plus1d

    return create_r2plus1d()


#: name -> (builder as PyTorchVideo's model zoo configures it, the clip [T, H, W] it was trained on)
ARCHITECTURES: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int]]] = {
    "x3d_xs": (_x3d(4, 160, 2.2), (4, 160, 160)),
    "x3d_s": (_x3d(13, 160, 2.2), (13, 160, 160)),
    "x3d_m": (_x3d(16, 224, 2.2), (16, 224, 224)),
    "x3d_l": (_x3d(16, 312, 5.0), (16, 312, 312)),
    "slow_r50": (_slow_r50, (8, 224, 224)),
    "csn_r101": (_csn_r101, (32, 224, 224)),
    "r2plus1d_r50": (_r2plus1d_r50, (16, 224, 224)),
}


@register("encoder")
class PyTorchVideoNet(FeatureMapEncoder):
    """A PyTorchVideo network without its classifier on RGB clips ``[N, 3, T, H, W]`` -> ``[N, out_dim]``.

    ``out_dim``: 2048 for every architecture (X3D: its head's 2048-d projection). Tokens are the cells
    of the last feature map (X3D: after its 432-d pre-pool projection). Parameters without the
    classifier (PyTorchVideo's model-zoo counts with it, 3.79M / 3.79M / 3.79M / 6.15M / 32.45M / 22.21M /
    28.11M, minus its 400-way ``2048 * 400 + 400``): x3d_xs, x3d_s, x3d_m 2,974,674; x3d_l 5,333,784;
    slow_r50 31,634,496; csn_r101 21,394,176; r2plus1d_r50 27,288,000
(``tests/test_pytorchvideo_nets.py`` checks them).

    Args:
        arch: one of :data:`ARCHITECTURES`.
        grad_checkpointing: recompute each block in backward.
    """

    input_ndim = 4
    contract_kwargs = {"arch": "x3d_xs"}

    def __init__(self, arch: str = "x3d_m", grad_checkpointing: bool = False, modality: str = "video") -> None:
        if arch not in ARCHITECTURES:
            raise ValueError(f"PyTorchVideoNet: unknown arch {arch!r}; one of {', '.join(ARCHITECTURES)}")
        build, self.clip_shape = ARCHITECTURES[arch]
        net = build()
        head = net.blocks[-1]
        projected = hasattr(head.pool, "pre_conv")  # X3D's ProjectedPool: conv, BN, ReLU, pool, conv, ReLU
        token_dim = head.pool.pre_conv.out_channels if projected else head.proj.in_features
        super().__init__(modality, head.proj.in_features, token_dim)
        self.arch = arch
        # the classifier and the fixed-size pools go; the rest keeps PyTorchVideo's keys (blocks.N...)
        for name in ("dropout", "proj", "activation", "output_pool"):
            if getattr(head, name, None) is not None:
                delattr(head, name)
        if projected:
            del head.pool.pool
        self.blocks = nn.ModuleList(net.blocks if projected else net.blocks[:-1])
        self.projected = projected
        self.grad_checkpointing = grad_checkpointing

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in backward instead of storing activations."""
        self.grad_checkpointing = enable

    def forward_features(self, x: Tensor) -> Tensor:
        """``[N, 3, T, H, W]`` -> ``[N, C, t, h, w]`` (X3D: 432 channels, after its pre-pool projection)."""
        trunk = self.blocks[:-1] if self.projected else self.blocks
        x = run_blocks(trunk, x, self.grad_checkpointing)
        if self.projected:
            pool = self.blocks[-1].pool
            x = pool.pre_act(pool.pre_norm(pool.pre_conv(x)))
        return x

    def pool(self, features: Tensor) -> Tensor:
        """``[N, C, t, h, w]`` -> ``[N, 2048]``: the mean over the grid (X3D: then its 2048-d projection and ReLU)."""
        pooled = features.mean(dim=(2, 3, 4), keepdim=True)
        if self.projected:
            pool = self.blocks[-1].pool
            pooled = pool.post_act(pool.post_conv(pooled))
        return pooled.flatten(1)

    def example_input(self, batch_size: int) -> Tensor:
        return torch.rand(batch_size, 3, 4, 32, 32)

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}"

