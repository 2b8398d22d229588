"""VATT's inputs: the raw-waveform transform (length, noise, missing audio) and video/images in [-1, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from versanet.data.datasets.images import ImageTransform
from versanet.data.transforms import RawClip, VideoClipTransform
from versanet.data.waveform import WaveformTransform


def clip(audio: np.ndarray | None, train: bool, rate: int = 16000, frames: np.ndarray | None = None) -> RawClip:
    return RawClip("v", 0.0, 0.5, train, frames=frames, audio=audio, audio_rate=rate)


def test_waveform_length_is_fixed_and_eval_is_the_decoded_samples() -> None:
    wave = np.linspace(-0.5, 0.5, 8000, dtype=np.float32)
    out, mask = WaveformTransform(16000, num_samples=6000, noise=0.01)(clip(wave, train=False))
    assert out.shape == (1, 6000) and mask.tolist() == [True]
    assert torch.equal(out[0], torch.from_numpy(wave[:6000]))  # eval: no noise
    padded, _ = WaveformTransform(16000, num_samples=9000)(clip(wave, train=True))
    assert torch.equal(padded[0, :8000], torch.from_numpy(wave)) and (padded[0, 8000:] == 0).all()
    as_decoded, _ = WaveformTransform(16000)(clip(wave, train=True))
    assert as_decoded.shape == (1, 8000)


def test_training_noise_is_one_percent_of_the_peak() -> None:
    torch.manual_seed(0)
    wave = (np.sin(np.arange(48000) / 10.0) * 0.8).astype(np.float32)
    out, _ = WaveformTransform(48000, noise=0.01)(clip(wave, train=True, rate=48000))
    noise = out[0] - torch.from_numpy(wave)
    assert noise.std().item() == pytest.approx(0.01 * 0.8, rel=0.02) and abs(noise.mean().item()) < 2e-4


def test_rms_normalisation() -> None:
    wave = (np.sin(np.arange(16000) / 7.0) * 0.05).astype(np.float32)
    out, _ = WaveformTransform(16000, normalize="rms")(clip(wave, train=False))
    assert out.pow(2).mean().sqrt().item() == pytest.approx(1.0, rel=1e-5)
    torch.testing.assert_close(out[0] / out[0].abs().max(), torch.from_numpy(wave) / np.abs(wave).max())
    silent, _ = WaveformTransform(16000, normalize="rms")(clip(np.zeros(100, np.float32), train=False))
    assert (silent == 0).all()
    with pytest.raises(ValueError, match="normalize must be"):
        WaveformTransform(normalize="peak")  # type: ignore[arg-type]


def test_missing_audio_and_a_wrong_rate() -> None:
    out, mask = WaveformTransform(16000, num_samples=4000, noise=0.01)(clip(None, train=True))
    assert out.shape == (1, 4000) and (out == 0).all() and mask.tolist() == [False]
    with pytest.raises(ValueError, match="decoded at 44100 Hz but WaveformTransform.sample_rate is 16000"):
        WaveformTransform(16000)(clip(np.zeros(10, np.float32), train=False, rate=44100))
    assert WaveformTransform(48000, 153_600).spec() == {"sample_rate": 48000, "num_samples": 153_600, "representation": "waveform"}


def test_video_and_images_in_minus_one_to_one_and_the_first_frames() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (6, 24, 32, 3), dtype=np.uint8)
    kwargs = {"crop": 16, "resize": 20, "flip_prob": 0.0, "color_jitter_prob": 0.0}
    unit, _ = VideoClipTransform(**kwargs)(clip(None, False, frames=frames))
    signed, _ = VideoClipTransform(**kwargs, value_range=(-1.0, 1.0))(clip(None, False, frames=frames))
    torch.testing.assert_close(signed, unit * 2 - 1)
    assert signed.min() >= -1 and signed.max() <= 1
    first, _ = VideoClipTransform(**kwargs, max_frames=4)(clip(None, False, frames=frames))
    torch.testing.assert_close(first, unit[:, :4])
    image_unit, _ = ImageTransform(16, 20)(clip(None, False, frames=frames[:1]))
    image_signed, _ = ImageTransform(16, 20, value_range=(-1.0, 1.0))(clip(None, False, frames=frames[:1]))
    torch.testing.assert_close(image_signed, image_unit * 2 - 1)
