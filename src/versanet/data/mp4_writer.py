"""Write frames and mono audio as an H.264 + AAC mp4 with PyAV: the toy world's videos and the search page's excerpts.

torchvision's ``write_video`` is deprecated with the rest of its video I/O (torchcodec replaces it, and
torchcodec is not usable here), so the few lines of PyAV muxing live here, once.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

AAC_FRAME = 1024
AAC_BIT_RATE = 48000
X264_OPTIONS = {"crf": "18", "preset": "veryfast", "bf": "0", "x264-params": "scenecut=0"}


def _encode_video(container: av.container.OutputContainer, frames: np.ndarray, fps: int | Fraction) -> list[av.Packet]:
    """H.264 packets for frames [T, H, W, 3] uint8 (H and W even); frame i gets pts i (time base 1/fps)."""
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = "yuv420p"
    stream.options = dict(X264_OPTIONS, g=str(max(1, round(fps))))
    stream.codec_context.thread_count = 1
    packets: list[av.Packet] = []
    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = i
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode(None))
    return packets


def _encode_audio(container: av.container.OutputContainer, audio: np.ndarray, sample_rate: int) -> list[av.Packet]:
    """AAC packets for mono audio [N] float32, fed in 1024-sample frames with pts = sample index."""
    stream = container.add_stream("aac", rate=sample_rate)
    stream.layout = "mono"
    stream.bit_rate = AAC_BIT_RATE
    stream.options = {"aac_coder": "fast"}
    packets: list[av.Packet] = []
    for start in range(0, len(audio), AAC_FRAME):
        chunk = np.ascontiguousarray(audio[None, start : start + AAC_FRAME], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode(None))
    return packets


def _packet_time(packet: av.Packet) -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float(stamp * packet.time_base) if stamp is not None else 0.0


def write_mp4(
    target: str | Path | BinaryIO, frames: np.ndarray, audio: np.ndarray | None, fps: int | Fraction, sample_rate: int
) -> None:
    """Write frames [T, H, W, 3] uint8 and mono audio [N] float32 in [-1, 1] (None: no audio track) as H.264 + AAC.

    ``target``: a path or a seekable binary file. An odd frame height or width loses its last row or
    column (yuv420p needs even sizes).
    """
    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]
    with av.open(target if not isinstance(target, Path) else str(target), mode="w", format="mp4") as container:
        packets = _encode_video(container, frames, fps)
        if audio is not None:
            packets += _encode_audio(container, audio, sample_rate)
        for packet in sorted(packets, key=_packet_time):  # stable: video first on ties
            container.mux(packet)
