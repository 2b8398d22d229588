"""Input pipeline throughput per core: decoded-and-augmented clips against bare PyAV decoding of the same windows.

    python benchmarks/data_throughput.py [--videos 6] [--clips 24] [--seconds 10] [--fps 25] [--rounds 5]
    python benchmarks/data_throughput.py --quick     # 3 videos, 8 clips, 3 rounds: a smoke run

Writes a few 224x224 test videos (H.264 + AAC 48 kHz at ``--fps``, the papers' clip settings: 32 frames
at 10 fps = 3.2 s, 224 short side, 48 kHz audio) and the same videos as WebDataset shards (what
``versanet data shard`` writes), then measures, in one process with one torch thread (a DataLoader
worker's lot), the same ``--clips`` windows through:

- floor: bare PyAV decode: open, seek, decode the window's video and audio packets, the 32 frames
  nearest the 10 fps targets as RGB arrays (``frame.to_ndarray(format="rgb24")``), the audio frames as arrays;
- strict floor: the same with one reused single-thread converter per clip, as versanet's reader converts
  (``to_ndarray(format=...)`` builds a multi-threaded converter per frame, ~10% of the floor's CPU time);
- read_clip: versanet's decoder (plus audio mixed to mono float at 48 kHz);
- pipeline, train, from mp4 files: a training sample of :class:`~versanet.data.datasets.base.ClipDataset`
  (decode, VideoClipTransform with MMV's augmentation: scale jitter, 200 px crop, flip, colour jitter;
  the dmvr log-mel, 80 bins);
- pipeline, train, from shards: the same samples read from the tar shards by
  :class:`~versanet.data.shards.ShardDataset` (tar reading and JSON included);
- pipeline, eval, from mp4 files: the deterministic eval transforms (resize + centre crop);
- pipeline, train, VATT inputs: VATT's training sample (``configs/vatt/data_mix.yaml``): the same
  augmentation with a 224 px crop in [-1, 1], and the raw 48 kHz waveform (153,600 samples, 1% noise)
  instead of the log-mel.

Time is CPU time of the process (``time.process_time``: every thread of it, decoder threads
included), so "clips/s per core" is clips per CPU-second: it does not depend on how busy the
machine's other cores are, as wall time on a shared machine does. Measurements are interleaved in
``--rounds`` rounds; the table gives the median round. Wall-clock ms/clip is shown for reference.

A second table turns the training pipeline's clips/s per core into the cores that feed one GPU,
for each backbone (FLOPs per clip from ``benchmarks/backbones.py``'s counter, forward + backward
= 3x forward, at a stated GPU peak and MFU); VATT's rows use VATT's pipeline and its towers' FLOPs
as pretrained (32x224x224 video and 153,600 samples with DropToken 50%, ``benchmarks/vatt_flops.py``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from versanet.data.datasets.base import ClipDataset, VideoItem
from versanet.data.sampling import ClipSampler
from versanet.data.shards import ShardDataset, write_shards
from versanet.data.toy import ToyWorldConfig, render_toy_clip, write_toy_mp4
from versanet.data.transforms import LogMelTransform, VideoClipTransform
from versanet.data.waveform import WaveformTransform
from versanet.data.video_io import read_clip

NUM_FRAMES, FPS, RATE = 32, 10.0, 48000
CLIP_SECONDS = NUM_FRAMES / FPS
# NVIDIA's published dense bf16 tensor-core peak of an H100 SXM / H200 SXM (the same chip): 989 TFLOP/s
GPU_PEAK_TFLOPS = 989.0


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


def bare_decode(path: Path, start: float, reuse_converter: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The floor: the 32 frames nearest ``start + i/10`` as RGB arrays and the window's audio frames, with plain PyAV.

    ``reuse_converter``: convert with one single-thread libswscale context for the clip (as versanet's reader
    does) instead of ``to_ndarray(format="rgb24")``'s new context per frame: the strict floor.
    """
    convert = (lambda f, r=VideoReformatter(): r.reformat(f, format="rgb24", threads=1).to_ndarray()) if reuse_converter else (lambda f: f.to_ndarray(format="rgb24"))
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
                        frames.append(convert(pick[1]))
                    prev = (t, frame)
                    video_done = len(frames) == NUM_FRAMES
                elif packet.stream is aus and not audio_done and t + frame.samples / frame.sample_rate >= start:
                    audio.append(frame.to_ndarray())
                    audio_done = t > end
            if video_done and audio_done:
                break
    return np.stack(frames), np.concatenate(audio, axis=-1)


def cpu_and_wall(fn: Callable[[], int]) -> tuple[float, float]:
    """CPU seconds and wall seconds per clip of ``fn`` (which returns how many clips it made)."""
    cpu, wall = time.process_time(), time.perf_counter()
    clips = fn()
    return (time.process_time() - cpu) / clips, (time.perf_counter() - wall) / clips


def cores_per_gpu_table(clips_per_core: float, mfu: float, vatt_clips_per_core: float | None = None) -> list[str]:
    """Rows: per backbone, training FLOPs per clip (video + audio tower), GPU clips/s at ``mfu`` of the peak, cores
    (VATT's rows at ``vatt_clips_per_core``, its own pipeline's figure, when given)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from backbones import BACKBONES, forward_gflops, make_input

    audio = BACKBONES["AudioResNet50"]()
    audio_gflops = forward_gflops(audio, make_input(audio, 1, NUM_FRAMES, 200, CLIP_SECONDS))
    rows = []
    for name in ("S3DG", "TSMResNet50", "TSMResNet50x2", "R2Plus1D18"):
        video = BACKBONES[name]()
        gflops = forward_gflops(video, make_input(video, 1, NUM_FRAMES, 200, CLIP_SECONDS))
        train_gflops = 3 * (gflops + audio_gflops)
        gpu_clips = mfu * GPU_PEAK_TFLOPS * 1e3 / train_gflops
        rows.append(f"| {name} + AudioResNet50 | {gflops:.1f} + {audio_gflops:.1f} | {train_gflops:.0f} | {gpu_clips:.0f} | {gpu_clips / clips_per_core:.0f} |")
        del video
    if vatt_clips_per_core is not None:
        rows += vatt_cores_per_gpu_rows(vatt_clips_per_core, mfu)
    return rows


def vatt_cores_per_gpu_rows(clips_per_core: float, mfu: float) -> list[str]:
    """VATT's video Transformer (Base/Medium/Large) + audio Base as pretrained: DropToken 50%, shapes on the meta device."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from vatt_flops import tower_gflops

    from versanet.encoders.vatt import VATTAudio, VATTVideo

    with torch.device("meta"):
        audio = VATTAudio("base", droptoken_rate=0.5)
        audio_gflops = tower_gflops(audio, torch.empty(1, 1, 153_600), training=True)[0]
        rows = []
        for size in ("base", "medium", "large"):
            video_gflops = tower_gflops(VATTVideo(size, droptoken_rate=0.5), torch.empty(1, 3, NUM_FRAMES, 224, 224), training=True)[0]
            train_gflops = 3 * (video_gflops + audio_gflops)
            gpu_clips = mfu * GPU_PEAK_TFLOPS * 1e3 / train_gflops
            rows.append(f"| VATT video {size} + audio base, DropToken 50% | {video_gflops:.1f} + {audio_gflops:.1f} | {train_gflops:.0f} | "
                        f"{gpu_clips:.0f} | {gpu_clips / clips_per_core:.0f} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--clips", type=int, default=24, help="clips (windows) per measurement")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=25, help="frame rate of the test videos")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved repetitions (the median is reported)")
    parser.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation assumed for the cores-per-GPU table")
    parser.add_argument("--quick", action="store_true", help="3 videos, 8 clips, 3 rounds, no cores-per-GPU table")
    parser.add_argument("--no-gpu-table", action="store_true", help="skip the cores-per-GPU table")
    args = parser.parse_args(argv)
    if args.quick:
        args.videos, args.clips, args.rounds, args.no_gpu_table = 3, 8, 3, True
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_videos(Path(tmp), args.videos, args.seconds, args.fps)
        jobs = [(paths[i % len(paths)], float(rng.uniform(0, args.seconds - CLIP_SECONDS))) for i in range(args.clips)]
        windows = [VideoItem(f"{p.stem}-{k}", str(p), segment=(s, s + CLIP_SECONDS)) for k, (p, s) in enumerate(jobs)]
        shards = write_shards(windows, f"{tmp}/shards/train-%06d.tar", maxcount=8)["shards"]
        sampler = ClipSampler(NUM_FRAMES, FPS, RATE)
        transforms = {
            "video": VideoClipTransform(crop=200, resize=224),
            "audio": LogMelTransform(sample_rate=RATE, n_fft=2048, hop_length=1024, n_mels=80, f_min=80.0, f_max=7600.0),
        }
        train = ClipDataset(windows, transforms, sampler, train=True, name="bench")
        vatt_transforms = {  # configs/vatt/data_mix.yaml's training transforms
            "video": VideoClipTransform(crop=224, resize=224, value_range=(-1.0, 1.0), max_frames=NUM_FRAMES),
            "audio": WaveformTransform(sample_rate=RATE, num_samples=int(CLIP_SECONDS * RATE), noise=0.01),
        }
        vatt_train = ClipDataset(windows, vatt_transforms, sampler, train=True, name="bench-vatt")
        evals = ClipDataset(windows, transforms, sampler, train=False, name="bench")
        from_shards = ShardDataset(shards, train, shuffle_buffer=0)

        def each(fn: Callable) -> Callable[[], int]:
            def run() -> int:
                for job in jobs:
                    fn(*job)
                return len(jobs)
            return run

        def items(dataset: ClipDataset) -> Callable[[], int]:
            def run() -> int:
                for i in range(len(windows)):
                    dataset[i]
                return len(windows)
            return run

        measures: dict[str, Callable[[], int]] = {
            "bare PyAV decode (floor)": each(bare_decode),
            "bare PyAV decode, one reused converter (strict floor)": each(lambda p, s: bare_decode(p, s, reuse_converter=True)),
            "read_clip (frames + mono 48 kHz audio)": each(lambda p, s: read_clip(p, s, NUM_FRAMES, FPS, RATE)),
            "pipeline, train, from mp4 files": items(train),
            "pipeline, train, from shards": lambda: sum(1 for _ in from_shards),
            "pipeline, eval, from mp4 files": items(evals),
            "pipeline, train, VATT inputs, from mp4 files": items(vatt_train),
        }
        for fn in measures.values():  # warm-up: imports, first-call allocations, page cache
            fn()
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in measures}
        for _ in range(args.rounds):
            for name, fn in measures.items():
                results[name].append(cpu_and_wall(fn))
    load_after = os.getloadavg()
    cpu = {name: statistics.median(r[0] for r in rounds) for name, rounds in results.items()}
    wall = {name: statistics.median(r[1] for r in rounds) for name, rounds in results.items()}
    floor = cpu["bare PyAV decode (floor)"]
    print(f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; one process, 1 torch thread, PyAV {av.__version__}")
    print(f"clips: {NUM_FRAMES} frames at {FPS:g} fps ({CLIP_SECONDS:g} s) + 48 kHz mono audio, from {args.videos} videos 224x224 @ {args.fps} fps; "
          f"{args.clips} windows per measurement, median of {args.rounds} interleaved rounds\n")
    strict = cpu["bare PyAV decode, one reused converter (strict floor)"]
    print("| what | CPU ms/clip | clips/s per core | CPU time vs bare decode | vs strict floor | wall ms/clip |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in measures:
        print(f"| {name} | {cpu[name] * 1e3:.1f} | {1 / cpu[name]:.1f} | {cpu[name] / floor:.2f}x | {cpu[name] / strict:.2f}x | {wall[name] * 1e3:.1f} |")
    if not args.no_gpu_table:
        per_core = 1 / cpu["pipeline, train, from mp4 files"]
        vatt_per_core = 1 / cpu["pipeline, train, VATT inputs, from mp4 files"]
        print(f"\ncores that feed one GPU: {args.mfu:.0%} MFU of {GPU_PEAK_TFLOPS:g} TFLOP/s (dense bf16, H100/H200 SXM), "
              f"training pipeline at {per_core:.1f} clips/s per core (VATT's: {vatt_per_core:.1f}); FLOPs: torch FlopCounterMode, 2 per multiply-add, "
              "32x200x200 video + 3.2 s log-mel (VATT: 32x224x224 + 153,600 samples, DropToken 50%)")
        print("| backbones | GFLOPs/clip fwd (video + audio) | train GFLOPs/clip (3x fwd) | GPU clips/s | cores per GPU |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for row in cores_per_gpu_table(per_core, args.mfu, vatt_per_core):
            print(row)


if __name__ == "__main__":
    main()
