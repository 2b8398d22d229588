"""Small CNN encoders for the toy world and quick experiments (CPU-trainable in minutes).

Shape legend: N samples, C channels, T frames (or mel frames), H/W pixels, F mel bins, L tokens.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

import torch
from torch import Tensor, nn

from versanet.encoders.base import FeatureMapEncoder
from versanet.encoders.text import WordMaxPoolEncoder
from versanet.registry import register


def _conv_bn_relu(conv: nn.Module, width: int, bn: type[nn.Module]) -> list[nn.Module]:
    return [conv, bn(width), nn.ReLU(inplace=True)]


@register("encoder")
class SmallVideoCNN(FeatureMapEncoder):
    """Small 3D CNN on RGB clips ``[N, 3, T, H, W]``: conv-BN-ReLU stages, pooled over H, W then T.

    ``spatial_pool="max"`` takes the maximum over space instead of the mean: a better prior when
    a small object sits on a large background (the toy world), where the mean dilutes it.
    """

    input_ndim = 4
    contract_kwargs = {"widths": (4, 8), "out_dim": 16}

    def __init__(
        self, widths: Sequence[int] = (16, 32, 64, 128), out_dim: int = 128, spatial_pool: Literal["mean", "max"] = "mean", modality: str = "video"
    ) -> None:
        super().__init__(modality, out_dim)
        self.spatial_pool = spatial_pool
        layers: list[nn.Module] = []
        in_ch = 3
        for i, width in enumerate(widths):
            # a spatial stem, one stage that keeps time (motion needs frames), then stages halving T, H, W
            kernel = (1, 3, 3) if i == 0 else (3, 3, 3)
            stride = (1, 2, 2) if i < 2 else (2, 2, 2)
            padding = tuple(k // 2 for k in kernel)
            layers += _conv_bn_relu(nn.Conv3d(in_ch, width, kernel, stride, padding, bias=False), width, nn.BatchNorm3d)
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(in_ch, out_dim)
        self.token_dim = in_ch

    def forward_features(self, x: Tensor) -> Tensor:
        """``[N, 3, T, H, W]`` -> ``[N, C, T', H', W']``."""
        return self.features(x)

    def pool(self, features: Tensor) -> Tensor:
        """``[N, C, T', H', W']`` -> ``[N, out_dim]``: spatial max (or mean), temporal mean, Linear."""
        h = features.amax(dim=(3, 4)) if self.spatial_pool == "max" else features.mean(dim=(3, 4))
        return self.proj(h.mean(dim=2))

    def example_input(self, batch_size: int) -> Tensor:
        return torch.rand(batch_size, 3, 4, 32, 32)


@register("encoder")
class SmallAudioCNN(FeatureMapEncoder):
    """Small 2D CNN on log-mel spectrograms ``[N, 1, T, F]``: conv-BN-ReLU stages, mean over T, F."""

    input_ndim = 3
    contract_kwargs = {"widths": (4, 8), "out_dim": 16}

    def __init__(self, widths: Sequence[int] = (32, 64, 128), out_dim: int = 128, modality: str = "audio") -> None:
        super().__init__(modality, out_dim)
        layers: list[nn.Module] = []
        in_ch = 1
        for width in widths:
            layers += _conv_bn_relu(nn.Conv2d(in_ch, width, 3, stride=2, padding=1, bias=False), width, nn.BatchNorm2d)
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(in_ch, out_dim)
        self.token_dim = in_ch

    def forward_features(self, x: Tensor) -> Tensor:
        """``[N, 1, T, F]`` -> ``[N, C, T', F']``."""
        return self.features(x)

    def pool(self, features: Tensor) -> Tensor:
        """``[N, C, T', F']`` -> ``[N, out_dim]``: mean over time and frequency, Linear."""
        return self.proj(features.mean(dim=(2, 3)))

    def example_input(self, batch_size: int) -> Tensor:
        return torch.randn(batch_size, 1, 40, 24)


@register("encoder")
class EmbeddingTextEncoder(WordMaxPoolEncoder):
    """Learned token embeddings -> Linear -> ReLU -> max over tokens (MMV's text net, trainable vocabulary).

    Input: token ids ``[N, L]`` with ``pad_id`` as padding (ignored by the max). Use it with the
    sentencepiece tokenizer that :class:`versanet.data.transforms.TokenizeText` trains on the corpus.
    """

    contract_kwargs = {"vocab_size": 50, "embed_dim": 8, "out_dim": 16}

    def __init__(self, vocab_size: int = 1000, embed_dim: int = 128, out_dim: int = 256, pad_id: int = 0, modality: str = "text") -> None:
        super().__init__(modality, embed_dim, out_dim, pad_id)
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)

    def word_vectors(self, x: Tensor) -> Tensor:
        """``[N, L]`` token ids -> learned embeddings ``[N, L, embed_dim]``."""
        return self.embed(x)

    def example_input(self, batch_size: int) -> Tensor:
        return torch.randint(1, self.vocab_size, (batch_size, 6))

    def check_input_spec(self, spec: Mapping[str, Any]) -> None:
        vocab = spec.get("vocab_size")
        if vocab is not None and vocab > self.vocab_size:
            raise ValueError(
                f"the text tokenizer has {vocab} tokens but EmbeddingTextEncoder.vocab_size is {self.vocab_size}; "
                f"set model.encoders.text.init_args.vocab_size >= {vocab}"
            )
        pad = spec.get("pad_id")
        if pad is not None and pad != self.pad_id:
            raise ValueError(f"the tokenizer pads with id {pad} but EmbeddingTextEncoder.pad_id is {self.pad_id}")
