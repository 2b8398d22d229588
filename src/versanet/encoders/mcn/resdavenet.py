"""ResDAVEnet: the speech CNN of DAVEnet / AVLnet / MCN, on 40-bin log-mel spectrograms at 16 kHz (10 ms hop).

Shape legend: N clips, F = 40 mel bins, T frames, C channels, T' = T / 16 (rounded up).

    [N, 40, T] -> [N, 1, 40, T]
    conv1: Conv2d(1, 128, (40, 1)) (all mel bins at once) -> BN -> ReLU        -> [N, 128, 1, T]
    layer1..4: 2 basic blocks each, widths 128, 256, 512, 1024, the first of
      each with stride 2; block = conv(1x9) -> BN -> ReLU -> conv(1x9) -> BN,
      + shortcut (1x1 conv stride 2 -> BN when the shape changes), ReLU        -> [N, 1024, 1, T']
    squeeze -> frames [N, 1024, T'] -> mean over frames -> [N, 1024]

Time is downsampled 16x by the four stride-2 stages: 1000 frames (10 s) -> 63. Pooling follows
the reference (AVLnet / MCN ``Net.forward``): in training the mean over all T' frames (padding
included); in evaluation the mean over the first ``max(1, n_frames // r)`` frames, where
``r = round(T / T')`` (16) and ``n_frames`` the clip's real length before zero padding.

The real length travels with the spectrogram: an input of ``[N, 41, T]`` carries, in row 40, a 0/1
mask of the frames that are real (what :class:`~versanet.data.features.FeatureClipDataset` gives);
``[N, 40, T]`` means every frame is real. 44,670,976 trainable parameters at the default widths
(the reference's module also holds an unused ``BatchNorm2d(1)``, 2 more; it is left out here so
that DDP does not meet parameters without gradients: drop ``batchnorm1.*`` when loading its weights).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from versanet.encoders.base import Encoder, Tokens
from versanet.registry import register


def _conv1xk(in_ch: int, out_ch: int, width: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=(1, width), stride=stride, padding=(0, width // 2), bias=False)


class SpeechBasicBlock(nn.Module):
    """``conv(1xk, stride) -> BN -> ReLU -> conv(1xk) -> BN`` + shortcut, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, width: int = 9, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv1xk(in_ch, out_ch, width, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv1xk(out_ch, out_ch, width)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


@register("encoder")
class ResDAVEnet(Encoder):
    """MCN's audio network: 40-bin log-mel ``[N, 40, T]`` (or ``[N, 41, T]`` with a frame mask row) -> ``[N, 1024]``.

    Args:
        n_mels: mel bins (40).
        widths: stem width then the four stages' widths (128, 128, 256, 512, 1024); ``out_dim`` is the last.
        depths: basic blocks per stage (2, 2, 2, 2).
        kernel: temporal kernel width of the block convolutions (9).
        example_frames: length of :meth:`example_input`.
    """

    input_ndim = 2
    contract_kwargs = {"widths": (8, 8, 8, 16, 16), "depths": (1, 1, 1, 1), "example_frames": 64}

    def __init__(
        self, n_mels: int = 40, widths: Sequence[int] = (128, 128, 256, 512, 1024), depths: Sequence[int] = (2, 2, 2, 2),
        kernel: int = 9, example_frames: int = 1000, modality: str = "audio",
    ) -> None:
        if len(depths) != 4 or len(widths) != 5:
            raise ValueError(f"ResDAVEnet has a stem and 4 stages: widths needs 5 entries (got {len(widths)}), depths 4 (got {len(depths)})")
        super().__init__(modality, widths[-1])
        self.n_mels, self.example_frames = n_mels, example_frames
        self.conv1 = nn.Conv2d(1, widths[0], kernel_size=(n_mels, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages, in_ch = [], widths[0]
        for width, depth in zip(widths[1:], depths):
            blocks = [SpeechBasicBlock(in_ch, width, kernel, stride=2)]
            blocks += [SpeechBasicBlock(width, width, kernel) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_ch = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages  # the reference's state-dict names
        self._init_weights()

    def _init_weights(self) -> None:
        """The reference's: conv ~ N(0, 2 / (kh * kw * out)), BN weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def split_input(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``[N, 40(+1), T]`` -> (spectrogram ``[N, 40, T]``, real frames per clip ``[N]`` long)."""
        if x.dim() != 3 or x.shape[1] not in (self.n_mels, self.n_mels + 1):
            raise ValueError(f"ResDAVEnet expects log-mel [N, {self.n_mels}, T] or [N, {self.n_mels + 1}, T] (last row: frame mask), got {tuple(x.shape)}")
        if x.shape[1] == self.n_mels:
            return x, torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)
        return x[:, : self.n_mels], (x[:, self.n_mels] > 0.5).sum(dim=1)

    def forward_features(self, spec: Tensor) -> Tensor:
        """``[N, 40, T]`` -> frame features ``[N, out_dim, T']``."""
        x = self.relu(self.bn1(self.conv1(spec.unsqueeze(1))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.squeeze(2)

    def frame_mask(self, frames: int, out_frames: int, n_frames: Tensor) -> Tensor:
        """Bool ``[N, T']``: the first ``max(1, n_frames // round(T / T'))`` output frames of each clip."""
        ratio = round(frames / out_frames)
        keep = torch.clamp(torch.div(n_frames, ratio, rounding_mode="floor"), min=1)
        return torch.arange(out_frames, device=n_frames.device)[None, :] < keep[:, None]

    def forward_tokens(self, x: Tensor) -> Tokens:
        """``[N, 40(+1), T]`` -> frame tokens ``[N, T', out_dim]`` (mask: real frames) and the pooled feature (see the module docstring)."""
        spec, n_frames = self.split_input(x)
        frames = self.forward_features(spec)  # [N, C, T']
        mask = self.frame_mask(spec.shape[-1], frames.shape[-1], n_frames)
        if self.training:
            pooled = frames.mean(dim=2)
        else:
            pooled = (frames * mask[:, None, :]).sum(dim=2) / mask.sum(dim=1, keepdim=True)
        return Tokens(frames.transpose(1, 2), mask, pooled, (frames.shape[-1],))

    def example_input(self, batch_size: int) -> Tensor:
        return torch.randn(batch_size, self.n_mels, self.example_frames)
