"""Raw-waveform input (VATT's audio tower reads samples, not a spectrogram).

:class:`WaveformTransform` turns the decoded mono audio of a clip into ``[1, S]`` float samples:
exactly ``num_samples`` of them when set (the end cropped or zero-padded, so that every clip of a
corpus, and of a corpus mix, has the same length), and in training with VATT's noise augmentation,
``x + N(0, (noise * max|x|)^2)`` per clip (VATT: ``noise = 0.01`` at pretraining, 0 for fine-tuning).

VATT's settings: 48 kHz, 3.2 s = 153,600 samples with 32 frames at 10 fps (HowTo100M), i.e. 1200
tokens of 128 samples, no normalisation. ``normalize: rms`` (not VATT's) scales each clip to unit RMS
first: a waveform token is a linear projection of the samples, and a quiet recording gives tokens
far smaller than the layer-normalised positional embeddings they are added to; at VATT's scale
500k steps overcome that, a short run (the toy quickstart) needs the help.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from versanet.data.transforms import ModalityTransform, RawClip
from versanet.registry import register

_SILENCE_RMS = 1e-4  # below this RMS a clip counts as silence and is not scaled up


@register("transform")
class WaveformTransform(ModalityTransform):
    """Mono waveform -> ``[1, S]`` float samples (VATT's audio input); a clip without audio gives zeros and a False mask.

    Args:
        sample_rate: the rate the data module decodes at (``audio_rate``); checked against each clip.
        num_samples: fixed length S (crop or zero-pad the end); None keeps the decoded length
            (``round(clip seconds x sample_rate)``).
        noise: training-time Gaussian noise, standard deviation ``noise x max|x|`` of the clip (VATT: 0.01).
        normalize: ``none`` (VATT) or ``rms``: each clip scaled to unit root-mean-square (silence stays silent).
    """

    needs = frozenset({"audio"})

    def __init__(
        self, sample_rate: int = 48000, num_samples: int | None = None, noise: float = 0.0, normalize: Literal["none", "rms"] = "none",
    ) -> None:
        if normalize not in ("none", "rms"):
            raise ValueError(f"WaveformTransform: normalize must be 'none' or 'rms', not {normalize!r}")
        if noise < 0:
            raise ValueError(f"WaveformTransform: noise is a non-negative fraction of the peak amplitude, got {noise}")
        if num_samples is not None and num_samples < 1:
            raise ValueError(f"WaveformTransform: num_samples must be positive, got {num_samples}")
        self.sample_rate, self.num_samples, self.noise, self.normalize = sample_rate, num_samples, noise, normalize

    def spec(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "num_samples": self.num_samples, "representation": "waveform"}

    def __call__(self, clip: RawClip) -> tuple[Tensor, Tensor]:
        """-> ``[1, S]``, mask ``[1]``."""
        if clip.audio_rate is not None and clip.audio_rate != self.sample_rate:
            raise ValueError(f"audio decoded at {clip.audio_rate} Hz but WaveformTransform.sample_rate is {self.sample_rate}; set data.init_args.audio_rate")
        present = clip.audio is not None
        wave = torch.from_numpy(clip.audio).float() if present else torch.zeros(round(clip.duration * self.sample_rate))
        if self.num_samples is not None:
            wave = wave[: self.num_samples]
            if wave.shape[0] < self.num_samples:
                wave = torch.cat([wave, wave.new_zeros(self.num_samples - wave.shape[0])])
        if self.normalize == "rms" and present:
            wave = wave / wave.pow(2).mean().sqrt().clamp(min=_SILENCE_RMS)
        if clip.train and self.noise > 0 and present:
            wave = wave + torch.randn_like(wave) * (self.noise * wave.abs().max())
        return wave.unsqueeze(0).contiguous(), torch.tensor([present])
