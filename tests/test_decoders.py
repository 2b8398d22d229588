"""Video decoders: PyAV on the CPU, torchcodec on the GPU (NVDEC) where present, PyAV as the fallback.

No GPU here: the tests pin the fallback (same frames as PyAV, a warning) and the GPU path's frame choice
(:func:`nearest_frame_indices` picks the frames PyAV's nearest-timestamp rule picks, on a real mp4).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from versanet.data import video_io
from versanet.data.toy import ToyWorldConfig, render_toy_clip, write_toy_mp4


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = ToyWorldConfig(num_train=1, num_val=0, seconds=4.0, fps=25, size=48, sample_rate=16000)
    clip = render_toy_clip(0, config)
    path = tmp_path_factory.mktemp("dec") / "v.mp4"
    write_toy_mp4(path, clip.frames, clip.audio, 25, 16000)
    return path


def test_unknown_decoder_is_refused() -> None:
    with pytest.raises(ValueError, match="decoder must be one of pyav, nvdec, auto, not 'nvenc'"):
        video_io.resolve_decoder("nvenc")


@pytest.mark.skipif(video_io.nvdec_available(), reason="a GPU decoder is available here: no fallback to test")
def test_nvdec_falls_back_to_pyav_with_a_warning_and_the_same_clip(video: Path) -> None:
    assert video_io.resolve_decoder("auto") == "pyav"
    video_io._FALLBACK_WARNED = False  # noqa: SLF001 - the warning is once per process
    with pytest.warns(UserWarning, match="decoder 'nvdec' needs torchcodec and a CUDA device; decoding with PyAV"):
        got = video_io.read_clip(video, 0.7, 8, 10.0, 16000, decoder="nvdec")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        video_io.read_clip(video, 0.7, 8, 10.0, 16000, decoder="nvdec")  # warned once only
    expected = video_io.read_clip(video, 0.7, 8, 10.0, 16000)
    assert np.array_equal(got.frames, expected.frames) and np.array_equal(got.audio, expected.audio)


def test_gpu_frame_choice_matches_pyavs_nearest_frames(video: Path) -> None:
    """The indices the GPU path asks torchcodec for are the frames the PyAV path converts (by timestamp)."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        pts = [float(f.pts * f.time_base) for f in container.decode(stream)]
        fps, begin = float(stream.average_rate), float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    for start in [0.0, 0.73, 1.51, 3.2]:  # the last is moved back to fit (4 s video)
        clip = video_io.read_clip(video, start, 8, 7.0, None)
        targets = clip.start + np.arange(8) / 7.0
        picked = video_io.nearest_frame_indices(targets, fps, begin, len(pts))
        expected = [min(range(len(pts)), key=lambda i: (abs(pts[i] - t), -i)) for t in targets]  # nearest; a tie takes the later frame
        assert picked.tolist() == expected
        assert all(np.array_equal(clip.frames[k], frames[i]) for k, i in enumerate(picked.tolist())), start
