"""S3D-G (Xie et al., "Rethinking Spatiotemporal Feature Learning"), as in MMV's S3D.

Inception-v1 layout in 3D with separable convs and self-gating. Facts (MMV's Haiku ``S3D``, which
gives exactly 9,162,704 trainable parameters without a classifier):

- ``conv_1a``: ONE full (not separable) ``7x7x7`` conv, stride 2 in T, H, W, RGB -> 64, BN, ReLU
  (temporal size ``first_temporal_kernel_size``, 7 by default; a separable 7x7x7 here would give
  9,135,056 parameters, not MMV's count).
- ``pool_2a``: max ``1x3x3``/``1x2x2``; ``conv_2b``: ``1x1x1`` 64 -> 64.
- From ``conv_2c`` on, every ``k x k`` conv is separable: ``(1, k, k)`` spatial conv then ``(3, 1, 1)``
  temporal conv, both with the unit's output width, each followed by BN + ReLU; and self-gating
  ``x * sigmoid(Linear(mean_THW x))`` (a ``Linear(C, C)`` with bias) ends ``conv_2c`` and EVERY
  inception branch (after the branch's last conv).
- ``pool_3a`` ``1x3x3``/``1x2x2``; ``mixed_3b``, ``3c``; ``pool_4a`` ``3x3x3``/``2``; ``mixed_4b``-``4f``;
  ``pool_5a`` ``2x2x2``/``2``; ``mixed_5b``, ``5c``; mean over T, H, W -> 1024.
- Convs have no bias (BN follows); BN has gamma and beta (eps 1e-5, momentum 0.1 = decay 0.9).

Padding: ``"symmetric"`` (default) pads ``k // 2`` on both sides (2x2x2 pooling uses ``ceil_mode``,
which equals TF "SAME" for it); ``"tf_same"`` reproduces TF/Haiku "SAME" (asymmetric for stride 2,
e.g. 7 -> (2, 3)), which matters only to load published TF weights. Output sizes are the same.

Shape legend: N clips, C channels, T frames, H/W pixels; t, h, w the downsampled sizes
(t = ceil(T / 8), h = ceil(H / 32), w = ceil(W / 32)).

    [N, 3, T, H, W] -> blocks -> [N, 1024, t, h, w] -> mean over t, h, w -> [N, 1024]
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from versanet.encoders.base import FeatureMapEncoder, run_blocks
from versanet.registry import register

Padding = Literal["symmetric", "tf_same"]
Triple = tuple[int, int, int]

# Inception widths: (b0 1x1, b1 1x1, b1 3x3, b2 1x1, b2 3x3, b3 pool-1x1), as in Inception-v1 / I3D.
INCEPTION_WIDTHS: dict[str, Sequence[int]] = {
    "mixed_3b": (64, 96, 128, 16, 32, 32),
    "mixed_3c": (128, 128, 192, 32, 96, 64),
    "mixed_4b": (192, 96, 208, 16, 48, 64),
    "mixed_4c": (160, 112, 224, 24, 64, 64),
    "mixed_4d": (128, 128, 256, 24, 64, 64),
    "mixed_4e": (112, 144, 288, 32, 64, 64),
    "mixed_4f": (256, 160, 320, 32, 128, 128),
    "mixed_5b": (256, 160, 320, 32, 128, 128),
    "mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _tf_same_pad(x: Tensor, kernel: Triple, stride: Triple, value: float = 0.0) -> Tensor:
    """Pad ``x: [N, C, T, H, W]`` as TF "SAME": output ceil(n / s), the odd pixel at the end."""
    pads: list[int] = []
    for n, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):  # F.pad goes last dim first
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


def _onednn_bf16_weight_grad_is_unsafe(x: Tensor, conv: nn.Conv3d) -> bool:
    """True where oneDNN's CPU bf16 Conv3d weight gradient is wrong (torch 2.11, oneDNN 3.10).

    Measured here (AVX512-BF16 CPU): with a bf16 input on CPU, the weight gradient is garbage
    (inf/NaN, sometimes heap corruption) when an input dimension is smaller than the kernel, e.g.
    T = 2 frames into a temporal kernel of 3 (S3D-G's last blocks and R(2+1)D's layer4 at 16 input
    frames), or T < 7 into the 7x7x7 stem. Forward and input gradients are right; fp32 is right.
    """
    if x.device.type != "cpu" or not (torch.is_grad_enabled() and conv.weight.requires_grad):
        return False
    bf16 = x.dtype == torch.bfloat16 or (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
    return bf16 and any(n < k for n, k in zip(x.shape[2:], conv.kernel_size))


class SafeConv3d(nn.Conv3d):
    """``nn.Conv3d`` that runs in fp32 where oneDNN's CPU bf16 weight gradient is broken.

    Only CPU bf16 (autocast or bf16 tensors) convs whose input is smaller than the kernel in some
    dimension take the fp32 path (cheap: such inputs are tiny); the output keeps the bf16 dtype.
    State dict keys are ``nn.Conv3d``'s.
    """

    def forward(self, x: Tensor) -> Tensor:
        if _onednn_bf16_weight_grad_is_unsafe(x, self):
            bias = None if self.bias is None else self.bias.float()
            with torch.autocast("cpu", enabled=False):
                return self._conv_forward(x.float(), self.weight.float(), bias).to(torch.bfloat16)
        return super().forward(x)

    @classmethod
    def from_conv(cls, conv: nn.Conv3d) -> "SafeConv3d":
        """A copy of ``conv`` (same arguments and parameters) as a :class:`SafeConv3d`."""
        new = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
            conv.groups, conv.bias is not None, conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype,
        )
        new.load_state_dict(conv.state_dict())
        return new


def make_conv3d_bf16_safe(module: nn.Module) -> nn.Module:
    """Replace every plain ``nn.Conv3d`` inside ``module`` by a :class:`SafeConv3d` (in place)."""
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Conv3d:
                setattr(parent, name, SafeConv3d.from_conv(child))
    return module


class _Conv3d(SafeConv3d):
    """Bias-free ``Conv3d`` with symmetric ``k // 2`` padding or TF "SAME" padding."""

    def __init__(self, cin: int, cout: int, kernel: Triple, stride: Triple, padding: Padding) -> None:
        sym = tuple(k // 2 for k in kernel) if padding == "symmetric" else 0
        super().__init__(cin, cout, kernel, stride, padding=sym, bias=False)
        self.tf_same = padding == "tf_same"

    def forward(self, x: Tensor) -> Tensor:
        if self.tf_same:
            x = _tf_same_pad(x, self.kernel_size, self.stride)
        return super().forward(x)


class _MaxPool3d(nn.MaxPool3d):
    """``MaxPool3d`` with symmetric padding (``ceil_mode`` for even kernels) or TF "SAME" (-inf) padding."""

    def __init__(self, kernel: Triple, stride: Triple, padding: Padding) -> None:
        even = any(k % 2 == 0 for k in kernel)
        sym = 0 if (even or padding == "tf_same") else tuple(k // 2 for k in kernel)
        super().__init__(kernel, stride, padding=sym, ceil_mode=even and padding == "symmetric")
        self.tf_same = padding == "tf_same"

    def forward(self, x: Tensor) -> Tensor:
        if self.tf_same:
            x = _tf_same_pad(x, self.kernel_size, self.stride, value=float("-inf"))
        return super().forward(x)


class SelfGating(nn.Module):
    """``x * sigmoid(Linear(mean over T, H, W of x))``, one gate per channel: ``[N, C, T, H, W]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))  # [N, C]
        return x * gate[:, :, None, None, None]


class Unit3D(nn.Module):
    """Conv -> BN -> ReLU, optionally separable and self-gated.

    Separable (and ``k > 1`` spatially): ``(1, k, k)`` conv, stride ``(1, s, s)``, BN, ReLU, then
    ``(k_t, 1, 1)`` conv, stride ``(s_t, 1, 1)``, BN, ReLU; both convs have ``cout`` channels.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        separable: bool = False,
        gating: bool = False,
        padding: Padding = "symmetric",
    ) -> None:
        super().__init__()
        (kt, kh, kw), (st, sh, sw) = kernel, stride
        if separable and kh != 1:
            convs = [((1, kh, kw), (1, sh, sw)), ((kt, 1, 1), (st, 1, 1))]
        else:
            convs = [(kernel, stride)]
        layers: list[nn.Module] = []
        for i, (k, s) in enumerate(convs):
            layers += [_Conv3d(cin if i == 0 else cout, cout, k, s, padding), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)
        self.gate = SelfGating(cout) if gating else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.gate(self.layers(x))


class InceptionBlock3D(nn.Module):
    """Inception-v1 block with separable ``3x3x3`` convs; gating on each of the 4 branch outputs.

    ``[N, cin, T, H, W]`` -> ``[N, b0 + b1 + b2 + b3, T, H, W]`` (concatenated over channels).
    """

    def __init__(self, cin: int, widths: Sequence[int], gating: bool, padding: Padding) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3 = widths
        k3 = (3, 3, 3)
        self.branch_0 = Unit3D(cin, w0, gating=gating, padding=padding)
        self.branch_1 = nn.Sequential(
            Unit3D(cin, w1a, padding=padding), Unit3D(w1a, w1b, k3, separable=True, gating=gating, padding=padding)
        )
        self.branch_2 = nn.Sequential(
            Unit3D(cin, w2a, padding=padding), Unit3D(w2a, w2b, k3, separable=True, gating=gating, padding=padding)
        )
        self.branch_3 = nn.Sequential(_MaxPool3d(k3, (1, 1, 1), padding), Unit3D(cin, w3, gating=gating, padding=padding))
        self.out_channels = w0 + w1b + w2b + w3

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch_0(x), self.branch_1(x), self.branch_2(x), self.branch_3(x)], dim=1)


@register("encoder")
class S3DG(FeatureMapEncoder):
    """S3D-G (separable 3D convs + self-gating) on RGB clips ``[N, 3, T, H, W]`` -> 1024 (9,162,704 params).

    Args:
        width_multiplier: scales every width (1.0 is S3D-G; out_dim = 1024 at 1.0).
        first_temporal_kernel_size: temporal size of the first (full 3D) conv: 1, 3, 5 or 7 (MMV: 7).
        gating: self-gating from ``conv_2c`` on (False gives plain S3D: 7,937,696 params).
        padding: ``"symmetric"`` or ``"tf_same"`` (see the module docstring).
        grad_checkpointing: recompute each block (conv unit / pool / inception block) in backward.
    """

    input_ndim = 4
    contract_kwargs = {"width_multiplier": 0.125}

    def __init__(
        self,
        width_multiplier: float = 1.0,
        first_temporal_kernel_size: int = 7,
        gating: bool = True,
        padding: Padding = "symmetric",
        grad_checkpointing: bool = False,
        modality: str = "video",
    ) -> None:
        if first_temporal_kernel_size not in (1, 3, 5, 7):
            raise ValueError(f"first_temporal_kernel_size must be 1, 3, 5 or 7, got {first_temporal_kernel_size}")
        if padding not in ("symmetric", "tf_same"):
            raise ValueError(f"padding must be 'symmetric' or 'tf_same', got {padding!r}")

        def width(c: int) -> int:
            return max(1, round(c * width_multiplier))

        c64, c192 = width(64), width(192)
        blocks: list[tuple[str, nn.Module]] = [
            ("conv_1a", Unit3D(3, c64, (first_temporal_kernel_size, 7, 7), (2, 2, 2), padding=padding)),
            ("pool_2a", _MaxPool3d((1, 3, 3), (1, 2, 2), padding)),
            ("conv_2b", Unit3D(c64, c64, padding=padding)),
            # temporal (separable) convs and self-gating start here
            ("conv_2c", Unit3D(c64, c192, (3, 3, 3), separable=True, gating=gating, padding=padding)),
            ("pool_3a", _MaxPool3d((1, 3, 3), (1, 2, 2), padding)),
        ]
        pools = {"mixed_4b": ("pool_4a", (3, 3, 3)), "mixed_5b": ("pool_5a", (2, 2, 2))}
        cin = c192
        for name, widths in INCEPTION_WIDTHS.items():
            if name in pools:
                pool_name, k = pools[name]
                blocks.append((pool_name, _MaxPool3d(k, (2, 2, 2), padding)))
            block = InceptionBlock3D(cin, [width(c) for c in widths], gating, padding)
            blocks.append((name, block))
            cin = block.out_channels

        super().__init__(modality, cin)
        self.blocks = nn.Sequential(OrderedDict(blocks))
        self.grad_checkpointing = grad_checkpointing

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in backward instead of storing its activations.

        BatchNorm running statistics are updated again by the recomputation (as in timm).
        """
        self.grad_checkpointing = enable

    def forward_features(self, x: Tensor) -> Tensor:
        """``[N, 3, T, H, W]`` -> ``[N, out_dim, t, h, w]`` (the last inception block's output)."""
        return run_blocks(self.blocks, x, self.grad_checkpointing)

    def pool(self, features: Tensor) -> Tensor:
        """``[N, out_dim, t, h, w]`` -> ``[N, out_dim]`` (mean over T, H, W)."""
        return features.mean(dim=(2, 3, 4))

    def example_input(self, batch_size: int) -> Tensor:
        # 4 frames / 32 px: every stride-2 stage still has >= 1 position (t = 1, h = w = 1 at the end)
        return torch.rand(batch_size, 3, 4, 32, 32)
