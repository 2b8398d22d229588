"""Benchmark MMV's backbones: parameters, forward GFLOPs per clip, forward+backward time per clip.

    python benchmarks/backbones.py            # 32x200x200 video, 3.2 s of 48 kHz audio (log-mel [1, 151, 80])
    python benchmarks/backbones.py --quick    # 8x112x112 video, 0.8 s audio: a smoke run in seconds

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on one forward (1 multiply-add =
2 FLOPs; convolutions and matmuls only; many papers quote multiply-adds as "FLOPs": halve ours to
compare). Time is the median wall time of up to ``--reps`` forward+backward passes (train mode, after
``--warmup`` passes; ``--budget-s`` caps the time per backbone and precision, so the heavy
networks get one timed pass), divided by the batch size, in fp32 and under
``torch.autocast("cpu", bfloat16)``; the number of timed passes is shown in brackets.

On a CPU shared with other jobs, ``--threads 1`` can be many times faster than 2 threads (OpenMP
threads wait for each other when a core is taken away); the header prints the load average.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from versanet.encoders.mmv.audio_resnet import DMVR_LOGMEL, AudioResNet50, logmel_frames
from versanet.encoders.base import Encoder
from versanet.encoders.mmv.r2plus1d import R2Plus1D18
from versanet.encoders.mmv.s3dg import S3DG
from versanet.encoders.mmv.tsm_resnet import TSMResNet50, TSMResNet50x2

BACKBONES: dict[str, Callable[[], Encoder]] = {
    "S3DG": S3DG,
    "TSMResNet50": TSMResNet50,
    "TSMResNet50x2": TSMResNet50x2,
    "R2Plus1D18": R2Plus1D18,
    "AudioResNet50": AudioResNet50,
}


def make_input(enc: Encoder, batch: int, frames: int, size: int, seconds: float) -> torch.Tensor:
    if enc.modality == "audio":
        t = logmel_frames(seconds, DMVR_LOGMEL["sample_rate"], DMVR_LOGMEL["hop_length"])
        return torch.randn(batch, 1, t, DMVR_LOGMEL["n_mels"])
    return torch.rand(batch, 3, frames, size, size)


@torch.no_grad()
def forward_gflops(enc: Encoder, x: torch.Tensor) -> float:
    """Forward FLOPs of one clip, counted on the meta device (shapes only, no arithmetic)."""
    meta = copy.deepcopy(enc).to("meta").eval()
    counter = FlopCounterMode(display=False)
    with counter:
        meta(x[:1].to("meta"))
    return counter.get_total_flops() / 1e9


def fwd_bwd_seconds(enc: Encoder, x: torch.Tensor, bf16: bool, warmup: int, reps: int, budget_s: float) -> tuple[float, int]:
    """Median seconds per clip of forward+backward, and how many passes were timed.

    After ``warmup`` untimed passes, time up to ``reps`` passes, stopping early (after at least one)
    once ``budget_s`` is spent. A warm-up pass slower than 10 s is kept as a timed pass: at that
    size one-time costs (oneDNN primitive creation) are negligible, and the run stays short.
    """
    enc.train()
    times: list[float] = []
    spent, warm = 0.0, 0
    while len(times) < reps and (not times or spent < budget_s):
        enc.zero_grad(set_to_none=True)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = enc(x)
        y.float().sum().backward()
        elapsed = time.perf_counter() - start
        if warm < warmup and elapsed < 10.0:
            warm += 1
            continue
        warm = warmup
        times.append(elapsed)
        spent += elapsed
    return statistics.median(times) / x.shape[0], len(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8x112x112 video, 0.8 s audio")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=45.0, help="stop timing a backbone/precision after this many seconds (>= 1 pass)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--models", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--no-bf16", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    frames, size, seconds = (8, 112, 0.8) if args.quick else (32, 200, 3.2)

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    print(f"# torch {torch.__version__}, {cpu}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    audio_t = logmel_frames(seconds, DMVR_LOGMEL["sample_rate"], DMVR_LOGMEL["hop_length"])
    print(f"# video [B, 3, {frames}, {size}, {size}]; audio {seconds} s at 48 kHz -> log-mel [B, 1, {audio_t}, 80]; batch {args.batch}; "
          f"time = median of (n) timed fwd+bwd passes "
          f"(up to {args.reps}, after {args.warmup} warm-up unless a pass takes > 10 s, {args.budget_s:.0f} s budget), per clip")
    print("| backbone | input | params | GFLOPs/clip (fwd, torch FlopCounterMode, 2/MAC) | fp32 fwd+bwd s/clip | bf16 autocast fwd+bwd s/clip |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name in args.models:
        torch.manual_seed(0)
        enc = BACKBONES[name]()
        x = make_input(enc, args.batch, frames, size, seconds)
        gflops = forward_gflops(enc, x)
        fp32, n32 = fwd_bwd_seconds(enc, x, False, args.warmup, args.reps, args.budget_s)
        bf16, n16 = (float("nan"), 0) if args.no_bf16 else fwd_bwd_seconds(enc, x, True, args.warmup, args.reps, args.budget_s)
        shape = "x".join(str(d) for d in x.shape[1:])
        print(f"| {name} | {shape} | {enc.num_parameters():,} | {gflops:.1f} | {fp32:.2f} ({n32}) | {bf16:.2f} ({n16}) |", flush=True)
        del enc, x
    print(f"# load average after: {os.getloadavg()[0]:.1f}", file=sys.stdout)


if __name__ == "__main__":
    main()
