"""dmvr's log-mel front end, exactly: what MMV's (and VATT's) released audio networks were trained on.

dmvr (``processors.compute_audio_spectrogram``, type ``logmf``) computes, for a mono waveform ``x``:

1. ``tf.signal.stft(x, frame_length, frame_step, fft_length=frame_length, window_fn=hann_window,
   pad_end=True)``: frames start at ``0, step, 2 step, ...``; the signal is zero-padded at the END
   (no centring) so that there are ``ceil(S / step)`` frames; periodic Hann window; one-sided FFT.
2. magnitude ``|STFT|`` (not power), ``[frames, fft_length // 2 + 1]``;
3. ``tensordot`` with ``tf.signal.linear_to_mel_weight_matrix(num_mel_bins, fft_length // 2 + 1,
   sample_rate, lower_edge_hertz, upper_edge_hertz)``: HTK mel scale ``1127 ln(1 + f / 700)``,
   triangles that are linear in MEL (not Hz) between ``num_mel_bins + 2`` mel-equispaced edges,
   unnormalised (peak 1), the DC bin zeroed;
4. ``log(mel + 1e-6)``.

With MMV's settings (48 kHz, 2048 / 1024, 80 bins over 80-7600 Hz), 3.2 s (153,600 samples) gives
150 frames. :class:`~versanet.data.transforms.LogMelTransform` (torchaudio) differs on purpose for
training from scratch: centred reflect-padded frames (151 frames, each shifted by half a window) and
triangles linear in Hz (log-mel differs by up to ~0.01). Models converted from TF use this transform.

Shape legend: S samples, T frames, F = ``num_mel_bins``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from versanet.data.transforms import ModalityTransform, RawClip
from versanet.registry import register

_MEL_BREAK_HZ = 700.0
_MEL_HIGH_Q = 1127.0


def hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, as TF's ``_hertz_to_mel``: ``1127 ln(1 + f / 700)``."""
    return _MEL_HIGH_Q * np.log1p(np.asarray(hertz, dtype=np.float64) / _MEL_BREAK_HZ)


def linear_to_mel_weight_matrix(
    num_mel_bins: int = 80,
    num_spectrogram_bins: int = 1025,
    sample_rate: float = 48000,
    lower_edge_hertz: float = 80.0,
    upper_edge_hertz: float = 7600.0,
) -> Tensor:
    """``tf.signal.linear_to_mel_weight_matrix``: ``[num_spectrogram_bins, num_mel_bins]`` float32.

    Bin ``k`` (frequency ``k * (sr / 2) / (num_spectrogram_bins - 1)``, k >= 1) has weight
    ``max(0, min((m_k - lo_j) / (c_j - lo_j), (hi_j - m_k) / (hi_j - c_j)))`` in band ``j``, with
    ``m_k`` its mel value and ``lo_j, c_j, hi_j`` three consecutive of ``num_mel_bins + 2`` edges spaced
    evenly in mel between the edge frequencies; row 0 (DC) is zero. Computed in float64 and rounded
    once (TF computes in float32: weights agree to 1.3e-5 at the default settings).
    """
    if not 0.0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate / 2:
        raise ValueError(
            f"need 0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate / 2, got {lower_edge_hertz}, {upper_edge_hertz}, {sample_rate}"
        )
    freqs = np.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins)[1:]  # the DC bin is excluded (HTK)
    mel = hertz_to_mel(freqs)[:, None]
    edges = np.linspace(hertz_to_mel(lower_edge_hertz), hertz_to_mel(upper_edge_hertz), num_mel_bins + 2)
    lower, center, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    weights = np.maximum(0.0, np.minimum((mel - lower) / (center - lower), (upper - mel) / (upper - center)))
    return torch.from_numpy(np.pad(weights, [(1, 0), (0, 0)]).astype(np.float32))


def stft_magnitude_pad_end(wave: Tensor, frame_length: int = 2048, frame_step: int = 1024) -> Tensor:
    """``|tf.signal.stft(wave, frame_length, frame_step, frame_length, hann_window, pad_end=True)|``.

    ``wave: [..., S]`` -> ``[..., ceil(S / frame_step), frame_length // 2 + 1]``.
    """
    num_samples = wave.shape[-1]
    frames = max(1, math.ceil(num_samples / frame_step))
    padded = torch.nn.functional.pad(wave, (0, max(0, (frames - 1) * frame_step + frame_length - num_samples)))
    framed = padded.unfold(-1, frame_length, frame_step)[..., :frames, :]  # [..., T, frame_length]
    window = torch.hann_window(frame_length, periodic=True, dtype=wave.dtype, device=wave.device)
    return torch.fft.rfft(framed * window, n=frame_length).abs()


def dmvr_log_mel(
    wave: Tensor,
    sample_rate: int = 48000,
    frame_length: int = 2048,
    frame_step: int = 1024,
    num_mel_bins: int = 80,
    lower_edge_hertz: float = 80.0,
    upper_edge_hertz: float = 7600.0,
    log_offset: float = 1e-6,
    mel_matrix: Tensor | None = None,
) -> Tensor:
    """dmvr's ``logmf`` spectrogram: ``wave [..., S]`` -> ``[..., ceil(S / frame_step), num_mel_bins]`` (see the module docstring)."""
    magnitude = stft_magnitude_pad_end(wave, frame_length, frame_step)
    if mel_matrix is None:
        mel_matrix = linear_to_mel_weight_matrix(num_mel_bins, frame_length // 2 + 1, sample_rate, lower_edge_hertz, upper_edge_hertz)
    return torch.log(magnitude @ mel_matrix.to(magnitude.dtype) + log_offset)


@register("transform")
class DmvrLogMel(ModalityTransform):
    """Mono waveform -> dmvr's log-mel ``[1, frames, num_mel_bins]`` (end padding, mel-linear triangles, magnitude).

    The front end of MMV's released audio networks (defaults: 48 kHz, window = FFT = 2048, hop 1024,
    80 bins over 80-7600 Hz, ``log(mel + 1e-6)``; 3.2 s -> 150 frames). A clip without audio gives
    zeros and a False mask.
    """

    needs = frozenset({"audio"})

    def __init__(
        self,
        sample_rate: int = 48000,
        frame_length: int = 2048,
        frame_step: int = 1024,
        num_mel_bins: int = 80,
        lower_edge_hertz: float = 80.0,
        upper_edge_hertz: float = 7600.0,
        log_offset: float = 1e-6,
    ) -> None:
        self.sample_rate, self.frame_length, self.frame_step = sample_rate, frame_length, frame_step
        self.num_mel_bins, self.log_offset = num_mel_bins, log_offset
        self.mel_matrix = linear_to_mel_weight_matrix(num_mel_bins, frame_length // 2 + 1, sample_rate, lower_edge_hertz, upper_edge_hertz)

    def spec(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "n_mels": self.num_mel_bins}

    def num_frames(self, num_samples: int) -> int:
        """Frames for ``num_samples`` samples: ``ceil(num_samples / frame_step)`` (150 for 3.2 s at 48 kHz)."""
        return max(1, math.ceil(num_samples / self.frame_step))

    def __call__(self, clip: RawClip) -> tuple[Tensor, Tensor]:
        """-> ``[1, frames, num_mel_bins]``, mask ``[1]``."""
        if clip.audio_rate is not None and clip.audio_rate != self.sample_rate:
            raise ValueError(f"audio decoded at {clip.audio_rate} Hz but DmvrLogMel.sample_rate is {self.sample_rate}; set data.init_args.audio_rate")
        present = clip.audio is not None
        if not present:
            frames = self.num_frames(round(clip.duration * self.sample_rate))
            return torch.zeros(1, frames, self.num_mel_bins), torch.tensor([False])
        wave = torch.from_numpy(np.asarray(clip.audio, dtype=np.float32))
        logmel = dmvr_log_mel(wave, frame_length=self.frame_length, frame_step=self.frame_step, log_offset=self.log_offset, mel_matrix=self.mel_matrix)
        return logmel.unsqueeze(0), torch.tensor([True])
