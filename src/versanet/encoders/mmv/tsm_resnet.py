"""TSM-ResNet-v2 video backbones (MMV's TSM-ResNet50 and TSM-ResNet50x2) on timm's ``ResNetV2``.

The 2D network is timm's pre-activation ResNet-v2 (stride on the 3x3 conv, final BN+ReLU) with
BatchNorm and plain convs, exactly ``resnetv2_50``'s layers: 23,500,352 trainable parameters
without a classifier, 93,891,712 at ``width_factor=2``. The temporal shift (Lin et al., TSM) is
added in EVERY bottleneck, on the residual branch's pre-activation just before its first conv; a
projection shortcut takes the unshifted pre-activation. The shift has no parameters, so the state
dict keys are timm's own (``backbone.stages.0.blocks.0.conv1.weight`` ...).

Shape legend: N clips, C channels, T frames, H/W pixels, h/w feature-map size; ``(N T)`` is time
folded into the batch, clip-major (frame ``t`` of clip ``n`` is row ``n * T + t``).

    [N, 3, T, H, W] -> [(N T), 3, H, W] -> ResNetV2 with shifts -> [(N T), C, h, w]
    -> mean over h, w -> [N, T, C] -> mean over T -> [N, C]

Padding: ``"symmetric"`` (default) is timm's (``k // 2`` on both sides, max-pool padded by 1);
``"tf_same"`` is TF/Haiku "SAME", which MMV's released networks were trained with: asymmetric for
the stride-2 layers (stem 7x7/2 -> (2, 3), stem max-pool 3x3/2 -> (0, 1) with -inf, and the 3x3/2
conv of stages 1-3 -> (0, 1) at even sizes), timm's ``stem_type="same"`` with
``create_conv2d(padding="same")`` (``Conv2dSame`` / ``MaxPool2dSame``), same state dict keys.

MMV's shift concatenates [last n channels from t+1, middle, first n from t-1], i.e. the two shifted
groups change places in channel order; versanet keeps the order. The two are the same network up to
a permutation of each block's ``conv1`` input channels, which the converter applies
(:func:`mmv_tsm_state_dict`), so a converted model computes MMV's outputs.

The number of frames is taken from the input at each ``forward`` and stored on every
:class:`TemporalShift` (``num_frames``) for that forward. With gradient checkpointing the blocks
are re-run during ``backward`` and read it again, so run ``backward`` before the next forward with a
different T (the usual training loop does).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Literal, Sequence

import torch
from einops import rearrange
from timm.layers import BatchNormAct2d, create_conv2d
from timm.models.resnetv2 import PreActBottleneck, ResNetV2
from torch import Tensor, nn

from versanet.encoders.base import FeatureMapEncoder
from versanet.registry import register

if TYPE_CHECKING:
    from versanet.weights.layout import NamedParams

RESNET50_LAYERS = (3, 4, 6, 3)
RESNET_CHANNELS = (256, 512, 1024, 2048)
Padding = Literal["symmetric", "tf_same"]


def resnetv2(
    layers: Sequence[int] = RESNET50_LAYERS,
    channels: Sequence[int] = RESNET_CHANNELS,
    width_factor: int = 1,
    stem_chs: int = 64,
    in_chans: int = 3,
    drop_path_rate: float = 0.0,
    padding: Padding = "symmetric",
) -> ResNetV2:
    """timm ``ResNetV2`` with BatchNorm+ReLU and plain convs (as ``resnetv2_50``), no classifier.

    timm's class default is GroupNorm + weight-standardised convs (BiT); MMV's networks use
    BatchNorm, which is what ``norm_layer=BatchNormAct2d, conv_layer=create_conv2d`` gives.
    ``padding="tf_same"``: TF "SAME" everywhere (timm's ``stem_type="same"``, ``padding="same"`` convs).
    """
    if padding not in ("symmetric", "tf_same"):
        raise ValueError(f"padding must be 'symmetric' or 'tf_same', got {padding!r}")
    same = padding == "tf_same"
    return ResNetV2(
        layers=list(layers),
        channels=tuple(channels),
        num_classes=0,
        in_chans=in_chans,
        width_factor=width_factor,
        stem_chs=stem_chs,
        act_layer=nn.ReLU,
        norm_layer=BatchNormAct2d,
        conv_layer=partial(create_conv2d, padding="same") if same else create_conv2d,
        stem_type="same" if same else "",
        drop_path_rate=drop_path_rate,
    )


class TemporalShift(nn.Module):
    """Shift a fraction of the channels by one frame along time: ``[(N T), C, H, W]`` -> same shape.

    With ``n = int(C * shift_fraction)``: the LAST n channels of frame t take frame t+1, the FIRST n
    channels take frame t-1, zeros where that frame does not exist (t = T-1 and t = 0), the other
    C - 2n channels are unchanged (MMV's ``temporal_shift``). ``enabled = False`` makes it the
    identity (deflation to an image network turns it off). ``num_frames`` must be set before the
    forward (:class:`TSMResNet` does it from its input).
    """

    def __init__(self, shift_fraction: float = 1 / 8, num_frames: int | None = None) -> None:
        super().__init__()
        if not 0.0 <= shift_fraction <= 0.5:
            raise ValueError(f"shift_fraction must be in [0, 0.5] (two shifted groups of C * fraction channels), got {shift_fraction}")
        self.shift_fraction = shift_fraction
        self.num_frames = num_frames
        self.enabled = True

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        if self.num_frames is None:
            raise RuntimeError("TemporalShift.num_frames is not set; the module that owns it must set it from its input")
        if x.shape[0] % self.num_frames:
            raise ValueError(f"TemporalShift got {x.shape[0]} rows, not a multiple of num_frames={self.num_frames}")
        n = int(x.shape[1] * self.shift_fraction)
        if n == 0:
            return x
        v = rearrange(x, "(b t) c h w -> b t c h w", t=self.num_frames)
        out = torch.zeros_like(v)  # keeps channels-last strides
        out[:, 1:, :n] = v[:, :-1, :n]  # first n channels: from frame t-1
        out[:, :-1, -n:] = v[:, 1:, -n:]  # last n channels: from frame t+1
        out[:, :, n:-n] = v[:, :, n:-n]
        return rearrange(out, "b t c h w -> (b t) c h w")

    def extra_repr(self) -> str:
        return f"shift_fraction={self.shift_fraction}, enabled={self.enabled}"


class TSMBottleneck(nn.Module):
    """timm's ``PreActBottleneck`` with a :class:`TemporalShift` before the residual branch's first conv.

    Built from an existing block (:meth:`from_block`), taking over its modules under the same names.

        pre = norm1(x)                                  # BN + ReLU
        shortcut = x, or downsample(pre) (projection takes the UNshifted pre-activation)
        out = conv3(norm3(conv2(norm2(conv1(shift(pre))))))
        return drop_path(out) + shortcut
    """

    def __init__(self, block: PreActBottleneck, shift_fraction: float = 1 / 8) -> None:
        super().__init__()
        self.downsample = block.downsample
        self.norm1, self.conv1 = block.norm1, block.conv1
        self.norm2, self.conv2 = block.norm2, block.conv2
        self.norm3, self.conv3 = block.norm3, block.conv3
        self.drop_path = block.drop_path
        self.shift = TemporalShift(shift_fraction)

    @classmethod
    def from_block(cls, block: PreActBottleneck, shift_fraction: float = 1 / 8) -> "TSMBottleneck":
        return cls(block, shift_fraction)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)

    def forward(self, x: Tensor) -> Tensor:
        x_preact = self.norm1(x)
        shortcut = x if self.downsample is None else self.downsample(x_preact)
        x = self.conv1(self.shift(x_preact))
        x = self.conv2(self.norm2(x))
        x = self.conv3(self.norm3(x))
        return self.drop_path(x) + shortcut


def add_temporal_shift(model: ResNetV2, shift_fraction: float = 1 / 8) -> ResNetV2:
    """Replace every ``PreActBottleneck`` of ``model`` by a :class:`TSMBottleneck` (in place)."""
    for stage in model.stages:
        for i, block in enumerate(stage.blocks):
            if not isinstance(block, PreActBottleneck):
                raise TypeError(f"expected timm PreActBottleneck blocks, got {type(block).__name__}")
            stage.blocks[i] = TSMBottleneck.from_block(block, shift_fraction)
    return model


class TSMResNet(FeatureMapEncoder):
    """TSM ResNet-v2 (timm ``ResNetV2`` + temporal shift in every block) on RGB clips ``[N, 3, T, H, W]``.

    Args:
        layers: blocks per stage ((3, 4, 6, 3) is ResNet-50).
        channels: output width of each stage before ``width_factor``; out_dim = channels[-1] * width_factor.
        width_factor: multiplies every width (2 = MMV's TSM-ResNet50x2).
        stem_chs: stem conv width before ``width_factor``.
        shift_fraction: fraction of channels shifted each way (1/8 in TSM and MMV).
        grad_checkpointing: recompute each block in backward (timm ``set_grad_checkpointing``).
        channels_last: run the 2D network in ``torch.channels_last`` memory format (often faster on
            CPU with oneDNN and on GPUs with tensor cores; the result is the same up to rounding).
        drop_path_rate: stochastic depth (timm), 0 as in MMV.
        padding: ``"symmetric"`` or ``"tf_same"`` (MMV's released weights; see the module docstring).
    """

    input_ndim = 4
    contract_kwargs = {"layers": (1, 1, 1, 1), "channels": (32, 32, 64, 64), "stem_chs": 8}

    def __init__(
        self,
        layers: Sequence[int] = RESNET50_LAYERS,
        channels: Sequence[int] = RESNET_CHANNELS,
        width_factor: int = 1,
        stem_chs: int = 64,
        shift_fraction: float = 1 / 8,
        grad_checkpointing: bool = False,
        channels_last: bool = False,
        drop_path_rate: float = 0.0,
        padding: Padding = "symmetric",
        modality: str = "video",
    ) -> None:
        backbone = add_temporal_shift(
            resnetv2(layers, channels, width_factor, stem_chs, in_chans=3, drop_path_rate=drop_path_rate, padding=padding),
            shift_fraction,
        )
        super().__init__(modality, backbone.num_features)
        self.backbone = backbone
        self.channels_last = channels_last
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        self.set_grad_checkpointing(grad_checkpointing)

    def shifts(self) -> list[TemporalShift]:
        """Every :class:`TemporalShift` in the network (found afresh, so replaced modules are seen)."""
        return [m for m in self.modules() if isinstance(m, TemporalShift)]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each residual block in backward instead of storing its activations."""
        self.grad_checkpointing = enable
        self.backbone.set_grad_checkpointing(enable)

    def set_temporal_shift(self, enabled: bool = True) -> None:
        """Turn every temporal shift on or off (off: a plain 2D ResNet applied frame by frame)."""
        for shift in self.shifts():
            shift.enabled = enabled

    def forward_features(self, x: Tensor) -> Tensor:
        """``[N, 3, T, H, W]`` -> final feature map after BN+ReLU ``[N, C, T, h, w]``."""
        n, t = x.shape[0], x.shape[2]
        for shift in self.shifts():
            shift.num_frames = t
        x = rearrange(x, "n c t h w -> (n t) c h w")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.backbone.forward_features(x)  # stem, stages, final norm (BN + ReLU)
        return rearrange(x, "(n t) c h w -> n c t h w", n=n, t=t)

    def pool(self, features: Tensor) -> Tensor:
        """``[N, C, T, h, w]`` -> ``[N, out_dim]``: spatial mean, then temporal mean."""
        return features.mean(dim=(3, 4)).mean(dim=2)

    def example_input(self, batch_size: int) -> Tensor:
        return torch.rand(batch_size, 3, 4, 32, 32)


@register("encoder")
class TSMResNet50(TSMResNet):
    """MMV's TSM-ResNet50: ResNet-v2-50 (BN) with temporal shift, ``[N, 3, T, H, W]`` -> 2048 (23,500,352 params)."""


@register("encoder")
class TSMResNet50x2(TSMResNet):
    """MMV's TSM-ResNet50x2: every width doubled, ``[N, 3, T, H, W]`` -> 4096 (93,891,712 params)."""

    def __init__(self, width_factor: int = 2, **kwargs: Any) -> None:
        super().__init__(width_factor=width_factor, **kwargs)


# ---------------------------------------------------------------------------- published weights
def resnetv2_state_dict_from_mmv(
    params: "NamedParams",
    layers: Sequence[int],
    stem: str,
    unit: str,
    final_norm: str,
    shift_fraction: float | None = None,
    prefix: str = "backbone.",
) -> dict[str, Tensor]:
    """MMV's ResNet-v2 (Haiku ``TSMResNetV2`` or ``ResNetV2``, or their TF export) -> timm ``ResNetV2`` keys.

    Each block ``{unit}_{i}/block_{j}`` has ``batch_norm`` (pre-activation), ``conv_0``, ``batch_norm_1``,
    ``conv_1`` (the 3x3, strided), ``batch_norm_2``, ``conv_2`` and, in the first block of a unit,
    ``shortcut_conv``; ``stem`` is the 7x7 conv and ``final_norm`` the last BN. With ``shift_fraction``
    (TSM) each ``conv_0``'s input channels are permuted to versanet's shift order
    (:func:`~versanet.weights.layout.swap_shifted_channels`).
    """
    from versanet.weights.layout import swap_shifted_channels

    out = {f"{prefix}stem.conv.weight": params.conv(stem)}
    for i, depth in enumerate(layers):
        for j in range(depth):
            src, dst = f"{unit}_{i}/block_{j}", f"{prefix}stages.{i}.blocks.{j}"
            conv1 = params.conv(f"{src}/conv_0")
            if shift_fraction is not None:
                conv1 = swap_shifted_channels(conv1, shift_fraction)
            out[f"{dst}.conv1.weight"] = conv1
            out[f"{dst}.conv2.weight"] = params.conv(f"{src}/conv_1")
            out[f"{dst}.conv3.weight"] = params.conv(f"{src}/conv_2")
            for k, norm in enumerate(("norm1", "norm2", "norm3")):
                out.update(params.batch_norm(f"{src}/batch_norm" + (f"_{k}" if k else ""), f"{dst}.{norm}"))
            if j == 0:
                out[f"{dst}.downsample.conv.weight"] = params.conv(f"{src}/shortcut_conv")
    out.update(params.batch_norm(final_norm, f"{prefix}norm"))
    return out


def tsm_state_dict_from_mmv(params: "NamedParams", layers: Sequence[int] = RESNET50_LAYERS, shift_fraction: float = 1 / 8) -> dict[str, Tensor]:
    """MMV's TSM-ResNet (``TSMResNetV2/tsm_resnet_stem``, ``tsm_resnet_unit_{i}/block_{j}/...``) -> :class:`TSMResNet` keys,
    the shift's channel order converted (see the module docstring). For ``TSMResNet50(padding="tf_same")``."""
    return resnetv2_state_dict_from_mmv(params, layers, "tsm_resnet_stem", "tsm_resnet_unit", "TSMResNetV2/batch_norm", shift_fraction)
