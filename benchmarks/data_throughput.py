"""Data pipeline throughput per worker: decoded-and-augmented clips/s against bare PyAV decoding of the same clips.

    python benchmarks/data_throughput.py [--videos 6] [--clips 24] [--seconds 10] [--fps 25] [--rounds 3]

Writes a few 224p test videos (H.264 + AAC 48 kHz, ``--fps`` frame rate, like real footage) to a
temporary folder, then times, in one process with one torch thread (what a DataLoader worker has):

- floor: bare PyAV decode of each clip: open, seek, decode the window's video and audio packets,
  convert the 32 frames nearest the 10 fps targets to RGB arrays and the audio frames to arrays;
- read_clip: versanet's decoder on the same windows (plus audio resampling to mono 48 kHz);
- pipeline: a training sample from :class:`~versanet.data.datasets.base.ClipDataset`: random
  32-frame 10 fps window, its audio, VideoClipTransform (short-side resize with scale jitter,
  200 px random crop, flip, colour jitter; crop-then-resize on uint8, the colour jitter as one
  per-clip 3x3 matrix) and the dmvr log-mel (80 bins, 48 kHz);
- the same without hue jitter (hue is folded into the colour matrix, so this should match the row
  above; with torchvision's HSV round trip, hue was most of the augmentation time);
- pipeline (eval): the deterministic eval transforms (resize + centre crop).
Each measurement is repeated in interleaved rounds and the best kept.

Prints a markdown table of clips/s and the ratio to the floor (the target is pipeline <= 1.3x floor),
with the machine's load average (timings on a shared machine move with it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from versanet.data.datasets.base import ClipDataset, VideoItem
from versanet.data.sampling import ClipSampler
from versanet.data.toy import ToyWorldConfig, render_toy_clip, write_toy_mp4
from versanet.data.transforms import LogMelTransform, VideoClipTransform
from versanet.data.video_io import read_clip

NUM_FRAMES, FPS, RATE = 32, 10.0, 48000


def make_videos(folder: Path, n: int, seconds: float, fps: int) -> list[Path]:
    """224x224 toy-world videos (moving shape, noise, pulses) at ``fps`` with 48 kHz AAC audio."""
    config = ToyWorldConfig(num_train=n, num_val=0, seconds=seconds, fps=fps, size=224, sample_rate=RATE)
    paths = []
    for i in range(n):
        clip = render_toy_clip(i, config)
        path = folder / f"bench_{i:02d}.mp4"
        write_toy_mp4(path, clip.frames, clip.audio, fps, RATE)
        paths.append(path)
    return paths


def bare_decode(path: Path, start: float) -> tuple[np.ndarray, np.ndarray]:
    """The floor: the 32 frames nearest ``start + i/10`` as RGB arrays and the window's audio frames, with plain PyAV."""
    targets = start + np.arange(NUM_FRAMES) / FPS
    end = targets[-1] + 1 / FPS
    frames, audio = [], []
    with av.open(str(path)) as container:
        vs, aus = container.streams.video[0], container.streams.audio[0]
        vs.thread_type = "AUTO"
        container.seek(int(start * av.time_base), backward=True, any_frame=False)
        video_done = audio_done = False
        prev = None
        for packet in container.demux(vs, aus):
            for frame in packet.decode():
                t = float(frame.pts * frame.time_base)
                if packet.stream is vs and not video_done:
                    while len(frames) < NUM_FRAMES and t >= targets[len(frames)]:
                        pick = prev if prev is not None and targets[len(frames)] - prev[0] < t - targets[len(frames)] else (t, frame)
                        frames.append(pick[1].to_ndarray(format="rgb24"))
                    prev = (t, frame)
                    video_done = len(frames) == NUM_FRAMES
                elif packet.stream is aus and not audio_done and t + frame.samples / frame.sample_rate >= start:
                    audio.append(frame.to_ndarray())
                    audio_done = t > end
            if video_done and audio_done:
                break
    return np.stack(frames), np.concatenate(audio, axis=-1)


def rate(fn, jobs: list) -> float:
    """Clips per second of ``fn(*job)`` over all jobs (after one warm-up call)."""
    fn(*jobs[0])
    start = time.perf_counter()
    for job in jobs:
        fn(*job)
    return len(jobs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--clips", type=int, default=24, help="clips timed per measurement")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=25, help="frame rate of the test videos")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions (best of)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_videos(Path(tmp), args.videos, args.seconds, args.fps)
        room = args.seconds - NUM_FRAMES / FPS
        jobs = [(paths[i % len(paths)], float(rng.uniform(0, room))) for i in range(args.clips)]
        sampler = ClipSampler(NUM_FRAMES, FPS, RATE)
        transforms = {
            "video": VideoClipTransform(crop=200, resize=224),
            "audio": LogMelTransform(sample_rate=RATE, n_fft=2048, hop_length=1024, n_mels=80, f_min=80.0, f_max=7600.0),
        }
        items = [VideoItem(p.stem, str(p)) for p in paths]
        train = ClipDataset(items, transforms, sampler, train=True, name="bench")
        evals = ClipDataset(items, transforms, sampler, train=False, name="bench")
        index = {p: i for i, p in enumerate(paths)}

        def pipeline(dataset: ClipDataset, path: Path, start: float) -> None:
            item = VideoItem(path.stem, str(path), segment=(start, start + NUM_FRAMES / FPS))
            dataset.load_item(item, item.path, index[path])

        no_hue = ClipDataset(items, {**transforms, "video": VideoClipTransform(crop=200, resize=224, hue=0.0)}, sampler, train=True, name="bench")
        measures = {
            "bare PyAV decode (floor)": bare_decode,
            "read_clip (frames + resampled audio)": lambda p, s: read_clip(p, s, NUM_FRAMES, FPS, RATE),
            "pipeline, train (decode + augment + log-mel)": lambda p, s: pipeline(train, p, s),
            "pipeline, train without hue jitter": lambda p, s: pipeline(no_hue, p, s),
            "pipeline, eval (decode + resize/crop + log-mel)": lambda p, s: pipeline(evals, p, s),
        }
        best = {name: 0.0 for name in measures}
        for _ in range(args.rounds):  # interleaved rounds, best of each: a loaded machine only ever slows a round down
            for name, fn in measures.items():
                best[name] = max(best[name], rate(fn, jobs))
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; one process, 1 torch thread")
    print(f"clips: {NUM_FRAMES} frames at {FPS:g} fps (3.2 s) + 48 kHz mono audio, from {args.videos} videos 224x224 @ {args.fps} fps, {args.clips} clips each\n")
    print("| what | clips/s per worker | time vs bare decode |")
    print("| --- | ---: | ---: |")
    floor = best["bare PyAV decode (floor)"]
    for name, value in best.items():
        print(f"| {name} | {value:.2f} | {floor / value:.2f}x |")


if __name__ == "__main__":
    main()
