"""MMV's audio backbone: ResNet-v2-50 (timm ``ResNetV2``, BatchNorm) with 1 input channel on log-mel images.

Shape legend: N clips, T mel frames, F mel bins, C channels, t/f feature-map size.

    [N, 1, T, F] -> ResNetV2 (2D convs over time x frequency) -> [N, C, t, f] -> mean over t, f -> [N, C]

23,494,080 trainable parameters (the 3-channel network's 23,500,352 minus 2 * 7 * 7 * 64 stem
weights). The front end is :class:`versanet.data.transforms.LogMelTransform`; :func:`dmvr_logmel`
returns it with MMV's dmvr preset (48 kHz, n_fft = window 2048, hop 1024, 80 bins, 80-7600 Hz,
``log(mel + 1e-6)``). 3.2 s of 48 kHz audio (153,600 samples) gives ``[1, 151, 80]`` with torchaudio's
centred frames (1 + 153600 // 1024; dmvr's ``tf.signal.stft(pad_end=True)`` gives 150). Converted MMV
checkpoints use :class:`versanet.data.dmvr_audio.DmvrLogMel`, dmvr's front end exactly (150 frames).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import Tensor

from versanet.encoders.base import FeatureMapEncoder
from versanet.encoders.mmv.tsm_resnet import RESNET50_LAYERS, RESNET_CHANNELS, Padding, resnetv2, resnetv2_state_dict_from_mmv
from versanet.registry import register

if TYPE_CHECKING:
    from versanet.data.transforms import LogMelTransform
    from versanet.weights.layout import NamedParams

# MMV's dmvr audio preset, as LogMelTransform arguments (docs/method.md, "Backbones").
DMVR_LOGMEL: dict[str, Any] = {
    "sample_rate": 48000,
    "n_fft": 2048,
    "hop_length": 1024,
    "n_mels": 80,
    "f_min": 80.0,
    "f_max": 7600.0,
    "log_offset": 1e-6,
}


def dmvr_logmel(**overrides: Any) -> "LogMelTransform":
    """``LogMelTransform`` with the dmvr preset (:data:`DMVR_LOGMEL`), arguments overridable."""
    from versanet.data.transforms import LogMelTransform

    return LogMelTransform(**{**DMVR_LOGMEL, **overrides})


def logmel_frames(seconds: float, sample_rate: int = 48000, hop_length: int = 1024) -> int:
    """Number of log-mel frames ``LogMelTransform`` (torchaudio, centred frames) gives for ``seconds`` of audio."""
    return 1 + round(seconds * sample_rate) // hop_length


@register("encoder")
class AudioResNet50(FeatureMapEncoder):
    """MMV's audio ResNet-v2-50 (BN, 1 input channel) on log-mel ``[N, 1, T, F]`` -> 2048 (23,494,080 params).

    Args:
        layers, channels, width_factor, stem_chs: the timm ``ResNetV2`` shape (defaults: ResNet-v2-50).
        grad_checkpointing: recompute each block in backward (timm ``set_grad_checkpointing``).
        channels_last: run in ``torch.channels_last`` memory format (often faster with oneDNN / cuDNN).
        drop_path_rate: stochastic depth (timm), 0 as in MMV.
        padding: ``"symmetric"`` or ``"tf_same"`` (MMV's released weights: TF "SAME" in the stem conv and
            max-pool and the 3x3/2 convs, see :mod:`versanet.encoders.mmv.tsm_resnet`).
    """

    input_ndim = 3
    contract_kwargs = {"layers": (1, 1, 1, 1), "channels": (32, 32, 64, 64), "stem_chs": 8}

    def __init__(
        self,
        layers: Sequence[int] = RESNET50_LAYERS,
        channels: Sequence[int] = RESNET_CHANNELS,
        width_factor: int = 1,
        stem_chs: int = 64,
        grad_checkpointing: bool = False,
        channels_last: bool = False,
        drop_path_rate: float = 0.0,
        padding: Padding = "symmetric",
        modality: str = "audio",
    ) -> None:
        backbone = resnetv2(layers, channels, width_factor, stem_chs, in_chans=1, drop_path_rate=drop_path_rate, padding=padding)
        super().__init__(modality, backbone.num_features)
        self.backbone = backbone
        self.channels_last = channels_last
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        self.set_grad_checkpointing(grad_checkpointing)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each residual block in backward instead of storing its activations."""
        self.grad_checkpointing = enable
        self.backbone.set_grad_checkpointing(enable)

    def forward_features(self, x: Tensor) -> Tensor:
        """``[N, 1, T, F]`` -> final feature map after BN+ReLU ``[N, C, t, f]``."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone.forward_features(x)

    def pool(self, features: Tensor) -> Tensor:
        """``[N, C, t, f]`` -> ``[N, out_dim]`` (mean over time and frequency)."""
        return features.mean(dim=(2, 3))

    def example_input(self, batch_size: int) -> Tensor:
        return torch.randn(batch_size, 1, 32, 32)


# ---------------------------------------------------------------------------- published weights
def audio_resnet_state_dict_from_mmv(params: "NamedParams", layers: Sequence[int] = RESNET50_LAYERS) -> dict[str, Tensor]:
    """MMV's audio ResNet-v2 (Haiku ``ResNetV2`` named ``res_net_v2``: ``initial_conv``, ``block_group_{i}/block_{j}/...``,
    ``batch_norm``) -> :class:`AudioResNet50` keys. For ``AudioResNet50(padding="tf_same")`` on dmvr's log-mel
    (:class:`~versanet.data.dmvr_audio.DmvrLogMel`): MMV's ``[B, T, F, 1]`` is versanet's ``[B, 1, T, F]``."""
    return resnetv2_state_dict_from_mmv(params, layers, "res_net_v2/initial_conv", "block_group", "res_net_v2/batch_norm")
