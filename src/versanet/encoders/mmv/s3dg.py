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
e.g. 7 -> (2, 3), max-pools padded with -inf), which every published checkpoint was trained with;
``"tf_fixed"`` is the static approximation of it in the MIL-NCE PyTorch port (``s3d_howto100m.pth``):
pad ``k - s`` (the smaller half first) with zeros and pool with ``ceil_mode``. The two agree whenever
every strided layer's input size is a multiple of its stride (224 px, 32 frames); at odd sizes
(200 px reaches ``pool_4a`` with 25 rows) only ``tf_fixed`` matches the port. Output sizes are the same.

Stem: ``"conv"`` (default) is the full ``7x7x7``/2 conv above. ``"space_to_depth"`` is the stem of
the released MMV and MIL-NCE S3D checkpoints: the clip is rearranged 2x2x2 into 24 channels
(channel ``dt*12 + dh*6 + dw*3 + c`` holds pixel ``(2t + dt, 2h + dh, 2w + dw)`` of colour ``c``),
then ``Conv3d(24, 64, (2, 4, 4))`` with stride 1 and TF "SAME" padding (0, 1) in time, (1, 2) in
height and width. It sees ``4x8x8`` input pixels per output, which no 7x7x7 conv holds, and has
9,146,000 parameters in total (16,704 fewer). T, H and W must be even.

Shape legend: N clips, C channels, T frames, H/W pixels; t, h, w the downsampled sizes
(t = ceil(T / 8), h = ceil(H / 32), w = ceil(W / 32)).

    [N, 3, T, H, W] -> blocks -> [N, 1024, t, h, w] -> mean over t, h, w -> [N, 1024]
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from versanet.encoders.base import FeatureMapEncoder, run_blocks
from versanet.registry import register

if TYPE_CHECKING:
    from versanet.weights.layout import NamedParams

Padding = Literal["symmetric", "tf_same", "tf_fixed"]
Stem = Literal["conv", "space_to_depth"]
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


def _fixed_pad(x: Tensor, kernel: Triple, stride: Triple, value: float = 0.0) -> Tensor:
    """Pad ``x: [N, C, T, H, W]`` by ``k - s`` per dim (the smaller half first): TF "SAME" for sizes divisible by ``s``."""
    pads: list[int] = []
    for k, s in zip(reversed(kernel), reversed(stride)):
        total = max(k - s, 0)
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
    """Bias-free ``Conv3d`` with symmetric ``k // 2``, TF "SAME" or static ``k - s`` (``tf_fixed``) padding."""

    def __init__(self, cin: int, cout: int, kernel: Triple, stride: Triple, padding: Padding) -> None:
        sym = tuple(k // 2 for k in kernel) if padding == "symmetric" else 0
        super().__init__(cin, cout, kernel, stride, padding=sym, bias=False)
        self.pad_mode = padding

    def forward(self, x: Tensor) -> Tensor:
        if self.pad_mode == "tf_same":
            x = _tf_same_pad(x, self.kernel_size, self.stride)
        elif self.pad_mode == "tf_fixed":
            x = _fixed_pad(x, self.kernel_size, self.stride)
        return super().forward(x)


class _MaxPool3d(nn.MaxPool3d):
    """``MaxPool3d`` with symmetric padding (``ceil_mode`` for even kernels), TF "SAME" (-inf) padding, or the
    MIL-NCE port's static ``k - s`` zero padding with ``ceil_mode`` (``tf_fixed``; inputs are >= 0 after ReLU)."""

    def __init__(self, kernel: Triple, stride: Triple, padding: Padding) -> None:
        even = any(k % 2 == 0 for k in kernel)
        sym = tuple(k // 2 for k in kernel) if padding == "symmetric" and not even else 0
        super().__init__(kernel, stride, padding=sym, ceil_mode=padding == "tf_fixed" or (even and padding == "symmetric"))
        self.pad_mode = padding

    def forward(self, x: Tensor) -> Tensor:
        if self.pad_mode == "tf_same":
            x = _tf_same_pad(x, self.kernel_size, self.stride, value=float("-inf"))
        elif self.pad_mode == "tf_fixed":
            x = _fixed_pad(x, self.kernel_size, self.stride)
        return super().forward(x)


def space_to_depth(x: Tensor) -> Tensor:
    """``[N, C, T, H, W]`` -> ``[N, 8 C, T/2, H/2, W/2]``: channel ``dt*4C + dh*2C + dw*C + c`` is pixel
    ``(2t + dt, 2h + dh, 2w + dw)`` of channel ``c`` (the layout of MMV's and MIL-NCE's ``space_to_depth``)."""
    if any(n % 2 for n in x.shape[2:]):
        raise ValueError(f"the space-to-depth stem needs even T, H and W, got {tuple(x.shape[2:])}")
    return rearrange(x, "n c (t dt) (h dh) (w dw) -> n (dt dh dw c) t h w", dt=2, dh=2, dw=2)


class SpaceToDepthStem(nn.Module):
    """The released S3D checkpoints' stem: :func:`space_to_depth`, then ``Conv3d(8 C, cout, (2, 4, 4))`` with TF
    "SAME" padding (always; stride 1 makes it (0, 1), (1, 2), (1, 2)), BN, ReLU: ``[N, C, T, H, W] -> [N, cout, T/2, H/2, W/2]``.

    State dict keys are :class:`Unit3D`'s (``layers.0.weight`` conv, ``layers.1.*`` BN).
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(_Conv3d(8 * cin, cout, (2, 4, 4), (1, 1, 1), "tf_same"), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(space_to_depth(x))

    def deflate(self) -> nn.Module:
        """The stem on one frame ``[N, C, 1, H, W]`` (deflation): the frame stands for a static pair of frames, so
        the kernel is summed over its 2 temporal taps and the 2 frames of each depth group: ``(1, 4, 4)`` on a
        spatial-only space-to-depth of ``4 C`` channels."""
        conv = self.layers[0]
        cout, cin8 = conv.weight.shape[:2]
        weight = conv.weight.detach().view(cout, 2, cin8 // 2, 2, 4, 4).sum(dim=(1, 3))  # over dt and kt
        deflated = _Conv3d(cin8 // 2, cout, (1, 4, 4), (1, 1, 1), "tf_same")
        deflated.weight = nn.Parameter(weight.unsqueeze(2).clone(), requires_grad=conv.weight.requires_grad)
        return _SpatialSpaceToDepthStem(nn.Sequential(deflated, self.layers[1], self.layers[2]))


class _SpatialSpaceToDepthStem(nn.Module):
    """:class:`SpaceToDepthStem` deflated: 2x2 space-to-depth per frame, then the summed ``(1, 4, 4)`` conv."""

    def __init__(self, layers: nn.Sequential) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[3] % 2 or x.shape[4] % 2:
            raise ValueError(f"the space-to-depth stem needs even H and W, got {tuple(x.shape[3:])}")
        return self.layers(rearrange(x, "n c t (h dh) (w dw) -> n (dh dw c) t h w", dh=2, dw=2))


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
        padding: ``"symmetric"``, ``"tf_same"`` or ``"tf_fixed"`` (see the module docstring).
        stem: ``"conv"`` (7x7x7/2) or ``"space_to_depth"`` (the released checkpoints': 9,146,000 params).
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
        stem: Stem = "conv",
        grad_checkpointing: bool = False,
        modality: str = "video",
    ) -> None:
        if first_temporal_kernel_size not in (1, 3, 5, 7):
            raise ValueError(f"first_temporal_kernel_size must be 1, 3, 5 or 7, got {first_temporal_kernel_size}")
        if padding not in ("symmetric", "tf_same", "tf_fixed"):
            raise ValueError(f"padding must be 'symmetric', 'tf_same' or 'tf_fixed', got {padding!r}")
        if stem not in ("conv", "space_to_depth"):
            raise ValueError(f"stem must be 'conv' or 'space_to_depth', got {stem!r}")

        def width(c: int) -> int:
            return max(1, round(c * width_multiplier))

        c64, c192 = width(64), width(192)
        if stem == "space_to_depth":
            conv_1a: nn.Module = SpaceToDepthStem(3, c64)
        else:
            conv_1a = Unit3D(3, c64, (first_temporal_kernel_size, 7, 7), (2, 2, 2), padding=padding)
        blocks: list[tuple[str, nn.Module]] = [
            ("conv_1a", conv_1a),
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


# ---------------------------------------------------------------------------- published weights
# Every conv unit of S3DG: (versanet prefix, MMV/TF scope, MIL-NCE port's conv module, its gating module, separable, gated).
def _s3dg_units() -> list[tuple[str, str, str, str | None, bool, bool]]:
    units = [
        ("blocks.conv_1a", "Conv2d_1a_7x7", "conv1", None, False, False),
        ("blocks.conv_2b", "Conv2d_2b_1x1", "conv_2b", None, False, False),
        ("blocks.conv_2c", "Conv2d_2c_3x3", "conv_2c", "gating", True, True),
    ]
    for name in INCEPTION_WIDTHS:
        tf_name, port = name.capitalize(), name
        units += [
            (f"blocks.{name}.branch_0", f"{tf_name}/Branch_0_Conv2d_0a_1x1", f"{port}.conv_b0", f"{port}.gating_b0", False, True),
            (f"blocks.{name}.branch_1.0", f"{tf_name}/Branch_1_Conv2d_0a_1x1", f"{port}.conv_b1_a", None, False, False),
            (f"blocks.{name}.branch_1.1", f"{tf_name}/Branch_1_Conv2d_0b_3x3", f"{port}.conv_b1_b", f"{port}.gating_b1", True, True),
            (f"blocks.{name}.branch_2.0", f"{tf_name}/Branch_2_Conv2d_0a_1x1", f"{port}.conv_b2_a", None, False, False),
            (f"blocks.{name}.branch_2.1", f"{tf_name}/Branch_2_Conv2d_0b_3x3", f"{port}.conv_b2_b", f"{port}.gating_b2", True, True),
            (f"blocks.{name}.branch_3.1", f"{tf_name}/Branch_3_Conv2d_0b_1x1", f"{port}.conv_b3_b", f"{port}.gating_b3", False, True),
        ]
    return units


def s3dg_state_dict_from_milnce(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """MIL-NCE's ``s3d_howto100m.pth`` (antoine77340/S3D_HowTo100M ``S3D``) -> :class:`S3DG` keys.

    The port's ``STConv3D`` holds ``conv1``/``bn1`` (and ``conv2``/``bn2`` when separable), its
    ``SelfGating`` a ``fc``; the layouts are PyTorch's already, so this only renames. For
    ``S3DG(stem="space_to_depth", padding="tf_fixed")``. ``fc`` and ``text_module`` are not the backbone's.
    """
    out: dict[str, Tensor] = {}
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    for ours, _, conv, gate, separable, _ in _s3dg_units():
        for i, layer in enumerate((1, 2) if separable else (1,)):
            out[f"{ours}.layers.{3 * i}.weight"] = state[f"{conv}.conv{layer}.weight"]
            for leaf in bn:
                key = f"{conv}.bn{layer}.{leaf}"
                out[f"{ours}.layers.{3 * i + 1}.{leaf}"] = state[key] if key in state else torch.tensor(0)
        if gate is not None:
            out[f"{ours}.gate.fc.weight"], out[f"{ours}.gate.fc.bias"] = state[f"{gate}.fc.weight"], state[f"{gate}.fc.bias"]
    return out


def s3dg_state_dict_from_mmv(params: "NamedParams") -> dict[str, Tensor]:
    """MMV's S3D (Haiku ``S3D`` / its TF export: ``Conv2d_1a_7x7/conv_3d/w``, ``.../batch_norm``,
    ``conv_3d_1``/``batch_norm_1`` for the temporal half of a separable unit, ``self_gating``) -> :class:`S3DG` keys."""
    from versanet.weights.layout import linear_weight

    out: dict[str, Tensor] = {}
    for ours, scope, _, _, separable, gated in _s3dg_units():
        for i in range(2 if separable else 1):
            suffix = f"_{i}" if i else ""
            out[f"{ours}.layers.{3 * i}.weight"] = params.conv(f"{scope}/conv_3d{suffix}")
            out.update(params.batch_norm(f"{scope}/batch_norm{suffix}", f"{ours}.layers.{3 * i + 1}"))
        if gated:
            out[f"{ours}.gate.fc.weight"] = linear_weight(params.get(f"{scope}/self_gating", "w"))
            out[f"{ours}.gate.fc.bias"] = params.get(f"{scope}/self_gating", "b")
    return out
