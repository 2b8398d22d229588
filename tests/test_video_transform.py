"""VideoClipTransform: crop-then-resize on uint8 and the fused colour jitter against torchvision's reference ops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from versanet.data.transforms import RawClip, VideoClipTransform, _axis_window, _colour_matrix

CROP, RESIZE = 48, 56
# geometry only, no colour: the base every colour test compares with under the same seed
PLAIN = {"crop": CROP, "resize": RESIZE, "flip_prob": 0.0, "color_jitter_prob": 0.0}
# colour jitter always on, every step off: a test turns on the one it checks
NO_STEP = {"crop": CROP, "resize": RESIZE, "flip_prob": 0.0, "color_jitter_prob": 1.0, "brightness": 0.0, "contrast": (1.0, 1.0), "saturation": (1.0, 1.0), "hue": 0.0}
# mean |HSV hue shift - grey-axis rotation| on uniform random RGB is at most ~0.077 turns of |hue| <= 0.2 (worst near 1/6)
HUE_BOUND = 0.08


def clip_of(frames: np.ndarray, train: bool) -> RawClip:
    return RawClip("v", 0.0, 1.0, train=train, frames=frames)


def noise(shape: tuple[int, ...], lo: int = 0, hi: int = 256, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, shape, dtype=np.uint8)


def run(transform: VideoClipTransform, frames: np.ndarray, train: bool = True, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    video, mask = transform(clip_of(frames, train))
    assert mask.tolist() == [True]
    return video


def reference_eval(frames: np.ndarray, crop: int, resize: int) -> torch.Tensor:
    """The pre-optimisation eval path: float frames, torchvision Resize(short side) then CenterCrop."""
    ops = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Resize(resize, antialias=True), v2.CenterCrop(crop)])
    return ops(torch.from_numpy(frames).permute(0, 3, 1, 2)).permute(1, 0, 2, 3)


def frames_first(video: torch.Tensor) -> torch.Tensor:
    """``[3, T, H, W]`` -> ``[T, 3, H, W]`` for torchvision's functional ops."""
    return video.permute(1, 0, 2, 3)


@pytest.mark.parametrize("size", [(64, 80), (80, 64), (40, 50), (56, 56), (57, 203)])
def test_shape_dtype_range_and_determinism(size: tuple[int, int]) -> None:
    frames = noise((5, *size, 3))
    for kwargs in ({"crop": CROP, "resize": RESIZE}, {"crop": CROP, "resize": RESIZE, "contrast": 0.4, "saturation": 0.4, "color_jitter_prob": 1.0}):
        transform = VideoClipTransform(**kwargs)
        for train in (True, False):
            video = run(transform, frames, train)
            assert video.shape == (3, 5, CROP, CROP) and video.dtype == torch.float32 and video.is_contiguous()
            assert 0.0 <= video.min() and video.max() <= 1.0
        assert torch.equal(run(transform, frames, True, seed=3), run(transform, frames, True, seed=3))  # seeded train
        assert not torch.equal(run(transform, frames, True, seed=3), run(transform, frames, True, seed=4))
        torch.manual_seed(0)
        a, _ = transform(clip_of(frames, False))
        b, _ = transform(clip_of(frames, False))  # eval: deterministic, whatever the RNG state
        assert torch.equal(a, b)


def test_eval_resize_smaller_than_crop_pads_like_center_crop() -> None:
    frames = noise((3, 64, 80, 3))
    video = run(VideoClipTransform(crop=48, resize=40), frames, train=False)
    assert video.shape == (3, 3, 48, 48)
    assert (video - reference_eval(frames, 48, 40)).abs().max() <= 1 / 255


@pytest.mark.parametrize("size", [(64, 80), (70, 90), (120, 160), (90, 70), (40, 50), (57, 203), (56, 56)])
def test_eval_equals_resize_then_center_crop(size: tuple[int, int]) -> None:
    """On white noise (where any sub-pixel misalignment would show) the crop-first path equals the full resize."""
    frames = noise((4, *size, 3))
    diff = (run(VideoClipTransform(crop=CROP, resize=RESIZE), frames, train=False) - reference_eval(frames, CROP, RESIZE)).abs()
    assert diff.mean() < 0.5 / 255 and diff.max() <= 1.5 / 255  # uint8 resize: rounding to whole levels


def test_train_with_fixed_scale_is_a_crop_of_the_resized_frame() -> None:
    """scale (1, 1): the output is a ``crop`` window of the short-side-``resize`` frame, up to a sub-pixel shift."""
    smooth = F.resize(torch.from_numpy(noise((2, 3, 9, 11))), [72, 96], antialias=True)  # [T, 3, 72, 96]
    frames = smooth.permute(0, 2, 3, 1).contiguous().numpy()
    full = F.resize(smooth.float() / 255, [RESIZE, 74], antialias=True)  # the whole frame resized (74 = int(56 * 96 / 72))
    one_pixel = min((full[..., 1:, :] - full[..., :-1, :]).abs().mean(), (full[..., 1:] - full[..., :-1]).abs().mean())
    transform = VideoClipTransform(crop=CROP, resize=RESIZE, scale=(1.0, 1.0), flip_prob=0.0, color_jitter_prob=0.0)
    for seed in range(6):
        video = frames_first(run(transform, frames, seed=seed))
        best = min(
            (video - full[..., top : top + CROP, left : left + CROP]).abs().mean().item()
            for top in range(RESIZE - CROP + 1)
            for left in range(74 - CROP + 1)
        )
        assert best < 0.5 * one_pixel  # closer to one of the crops than half a pixel's displacement


def test_train_crop_lies_inside_the_scale_jittered_frame() -> None:
    """Pixels that encode their source row/column show where each output pixel was sampled from."""
    height, width = 96, 120
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    frame = np.stack([2 * rows, 2 * cols, np.full_like(rows, 128)], axis=-1).astype(np.uint8)
    frames = np.repeat(frame[None], 2, axis=0)
    scale = (0.8, 1.2)
    transform = VideoClipTransform(crop=CROP, resize=RESIZE, scale=scale, flip_prob=0.0, color_jitter_prob=0.0)
    short_lo, short_hi = max(CROP, int(RESIZE * scale[0])), max(CROP, int(RESIZE * scale[1]))
    starts = []
    for seed in range(40):
        video = run(transform, frames, seed=seed)
        y = video[0, 0].mean(1) * 255 / 2  # source row of each output row
        x = video[1, 0].mean(0) * 255 / 2
        assert torch.allclose(video[0, 0], video[0, 0, :, :1].expand(CROP, CROP), atol=1 / 255)  # rows stay rows
        for coord, size in ((y, height), (x, width)):
            step = (coord[CROP - 4] - coord[3]).item() / (CROP - 7)  # source pixels per output pixel, away from the edges
            assert height / short_hi - 0.02 <= step <= height / short_lo + 0.02  # the short side was scaled within range
            assert (coord[1:] - coord[:-1] > 0).all()  # one crop, no flip
            new_size = size / step
            offset = (coord[3].item() + 0.5) / step - 3.5  # where the crop starts in the resized frame
            assert -1.0 <= offset and offset + CROP <= new_size + 1.0  # inside it
        starts.append(offset / (new_size - CROP))
    assert min(starts) < 0.2 and max(starts) > 0.8  # and it moves across the whole frame


def test_flip_mirrors_the_same_sample() -> None:
    frames = noise((4, 64, 80, 3))
    for seed in range(4):
        kept = run(VideoClipTransform(crop=CROP, resize=RESIZE, flip_prob=0.0, color_jitter_prob=1.0), frames, seed=seed)
        flipped = run(VideoClipTransform(crop=CROP, resize=RESIZE, flip_prob=1.0, color_jitter_prob=1.0), frames, seed=seed)
        assert torch.allclose(flipped, kept.flip(-1), atol=1e-6)


def test_brightness_is_one_additive_shift_per_clip() -> None:
    frames = noise((4, 64, 80, 3), 80, 170)  # mid-grey: nothing clips
    shifts = []
    for seed in range(20):
        base = run(VideoClipTransform(**PLAIN), frames, seed=seed)
        shifted = run(VideoClipTransform(**{**NO_STEP, "brightness": 0.1}), frames, seed=seed)
        diff = shifted - base
        assert diff.std() < 1e-5 and abs(diff.mean()) <= 0.1  # the same delta on every pixel: additive, not a gain
        shifts.append(diff.mean().item())
    assert min(shifts) < -0.05 and max(shifts) > 0.05


def test_contrast_keeps_each_frames_grey_mean() -> None:
    frames = noise((4, 64, 80, 3), 60, 190)
    for seed in range(5):
        base = frames_first(run(VideoClipTransform(**PLAIN), frames, seed=seed))
        out = frames_first(run(VideoClipTransform(**{**NO_STEP, "contrast": (0.6, 1.4)}), frames, seed=seed))
        grey_mean = lambda video: F.rgb_to_grayscale(video).mean(dim=(1, 2, 3))  # noqa: E731
        assert torch.allclose(grey_mean(out), grey_mean(base), atol=5e-5)  # torchvision's grey weights sum to 0.9999
    base = frames_first(run(VideoClipTransform(**PLAIN), frames))
    fixed = frames_first(run(VideoClipTransform(**{**NO_STEP, "contrast": (0.7, 0.7)}), frames))
    assert torch.allclose(fixed, F.adjust_contrast(base, 0.7), atol=1e-5)  # torchvision: blend with the grey image's mean


def test_saturation_blends_with_grey() -> None:
    frames = noise((4, 64, 80, 3), 60, 190)
    base = frames_first(run(VideoClipTransform(**PLAIN), frames))
    grey = frames_first(run(VideoClipTransform(**{**NO_STEP, "saturation": (0.0, 0.0)}), frames))
    assert torch.allclose(grey, F.rgb_to_grayscale(base, num_output_channels=3), atol=1e-5)
    more = frames_first(run(VideoClipTransform(**{**NO_STEP, "saturation": (1.3, 1.3)}), frames))
    assert torch.allclose(more, F.adjust_saturation(base, 1.3), atol=1e-5)
    # fixed order brightness -> contrast -> saturation -> hue, clipped once at the end
    both = frames_first(run(VideoClipTransform(**{**NO_STEP, "contrast": (0.7, 0.7), "saturation": (1.3, 1.3)}), frames))
    assert torch.allclose(both, F.adjust_saturation(F.adjust_contrast(base, 0.7), 1.3), atol=1e-5)


def test_hue_approximates_hsv_hue_shift() -> None:
    frames = noise((4, 64, 80, 3))
    base = frames_first(run(VideoClipTransform(**PLAIN), frames))
    for hue in (0.05, -0.1, 1 / 6, -1 / 6, 0.2, -0.2):
        out = frames_first(run(VideoClipTransform(**{**NO_STEP, "hue": (hue, hue)}), frames))
        assert (out - F.adjust_hue(base, hue)).abs().mean() < HUE_BOUND
    for hue in (1 / 3, -1 / 3):  # a third of a turn is a channel permutation: exact
        out = frames_first(run(VideoClipTransform(**{**NO_STEP, "hue": (hue, hue)}), frames))
        assert torch.allclose(out, F.adjust_hue(base, hue), atol=1e-5)
    assert torch.allclose(run(VideoClipTransform(**{**NO_STEP, "hue": 0.0}), frames), frames_first(base), atol=1e-6)  # hue 0
    assert torch.allclose(_colour_matrix(1.0, 0.0), torch.eye(3, dtype=torch.float64), atol=1e-12)
    pixels = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # uniform random RGB, the documented bound
    errors = [(torch.einsum("ij,njhw->nihw", _colour_matrix(1.0, h).float(), pixels).clamp(0, 1) - F.adjust_hue(pixels, h)).abs().mean() for h in np.linspace(-0.2, 0.2, 9)]
    assert max(errors) < HUE_BOUND


def test_one_draw_for_all_frames() -> None:
    frames = np.repeat(noise((1, 64, 80, 3)), 6, axis=0)
    transform = VideoClipTransform(crop=CROP, resize=RESIZE, color_jitter_prob=1.0)
    for seed in range(5):
        video = run(transform, frames, seed=seed)
        assert torch.allclose(video, video[:, :1].expand_as(video), atol=1e-6)


def test_axis_window_plans() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        size_in, size_out = int(rng.integers(20, 400)), int(rng.integers(20, 400))
        length = int(rng.integers(1, size_out + 1))
        start = int(rng.integers(0, size_out - length + 1))
        w0, w1, m, k = _axis_window(size_in, size_out, start, length, exact=True)
        assert 0 <= w0 < w1 <= size_in and (w1 - w0) * size_out == m * size_in  # the full resize's scale
        assert k + w0 * size_out // size_in == start and w0 * size_out % size_in == 0 and 0 <= k <= m - length  # and phase
        w0, w1, m, k = _axis_window(size_in, size_out, start, length, exact=False)
        assert 0 <= w0 < w1 <= size_in and 0 <= k <= m - length
        assert math.isclose(m / (w1 - w0), size_out / size_in, rel_tol=1 / m + 1e-9)
