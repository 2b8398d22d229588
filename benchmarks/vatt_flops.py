"""VATT compute: GFLOPs per clip with and without DropToken, and training-step throughput.

    python benchmarks/vatt_flops.py                  # GFLOPs of BBS/MBS/LBS/MA at the paper's inputs + tiny CPU throughput
    python benchmarks/vatt_flops.py --models mbs     # just VATT-MBS (paper: 784.8 GFLOPs -> 375.4 with DropToken 50%)
    python benchmarks/vatt_flops.py --skip-throughput
    python benchmarks/vatt_flops.py --device cuda --full-size --precision bf16 --peak-tflops 989   # on a GPU: MFU

GFLOPs: one forward pass of one clip through each tower (video 32x224x224, audio 153,600 samples,
text 16 words) with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (shapes only, no
memory): matmuls, convolutions and attention, 1 multiply-add = 2 FLOPs (halve to compare with
multiply-add counts). "DropToken" is the training-mode pass at the config's rate (50%): it keeps 784 of
1568 video and 600 of 1200 audio tokens; the tokeniser still sees the whole clip.

Throughput: forward + backward + Adam step of a whole pretraining model (encoders, heads, both losses)
on a random batch; the median of ``--reps`` timed steps after ``--warmup``, in clips per second.
Default: the quickstart's tiny VATT (``configs/quickstart/vatt.yaml``) on CPU; ``--full-size`` uses the
model's paper config and input sizes. ``--peak-tflops`` adds model FLOPs utilisation: 3 x forward FLOPs
(forward + backward) per clip x clips/s / peak. On a CPU shared with other jobs, ``--threads 1`` can be
much faster than 2 (OpenMP threads wait for each other); the header prints the load average.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningModule
from torch.utils.flop_counter import FlopCounterMode

from versanet import registry
from versanet.encoders import Encoder
from versanet.models import PretrainModule

REPO = Path(__file__).resolve().parents[1]
PAPER_GFLOPS = {"mbs": (784.8, 375.4)}
CLIP = {"video": (32, 224, 224), "audio": 153_600, "text": 16}


def build_model(config: Path, device: str | torch.device = "cpu") -> PretrainModule:
    """The ``model:`` section of a versanet config, instantiated on ``device`` (``meta``: shapes only)."""
    registry.load_builtin()
    parser = ArgumentParser()
    parser.add_subclass_arguments(LightningModule, "model")
    section = yaml.safe_load(config.read_text())["model"]
    with torch.device(device):
        return parser.instantiate(parser.parse_object({"model": section})).model


def clip_input(modality: str, encoder: Encoder, batch: int, sizes: dict[str, Any], device: str | torch.device) -> torch.Tensor:
    """A random ``[batch, *input]`` (one candidate per clip) of the given sizes."""
    if modality == "video":
        t, h, w = sizes["video"]
        return torch.rand(batch, 3, t, h, w, device=device) * 2 - 1
    if modality == "audio":
        return torch.randn(batch, 1, sizes["audio"], device=device) * 0.1
    vocab = getattr(encoder, "vocab_size", 2)
    return torch.randint(1, max(2, vocab), (batch, sizes["text"]), device=device)


@torch.no_grad()
def tower_gflops(encoder: Encoder, x: torch.Tensor, training: bool) -> tuple[float, int]:
    """(forward GFLOPs of one clip, output tokens) of one tower; ``training`` applies its DropToken."""
    encoder.train(training)
    counter = FlopCounterMode(display=False)
    with counter:
        tokens = encoder.forward_tokens(x)
    return counter.get_total_flops() / 1e9, tokens.tokens.shape[1]


def flops_table(names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        model = build_model(REPO / "configs" / "vatt" / f"{name}.yaml", "meta")
        total = {False: 0.0, True: 0.0}
        for modality, encoder in model.encoders.items():
            x = clip_input(modality, encoder, 1, CLIP, "meta")
            full, n_full = tower_gflops(encoder, x, training=False)
            dropped, n_dropped = tower_gflops(encoder, x, training=True)
            total[False] += full
            total[True] += dropped
            rows.append({"model": name, "tower": f"{modality} ({type(encoder).__name__}, {encoder.size.d_model}-d x {encoder.size.num_layers})",
                         "tokens": f"{n_full} -> {n_dropped}", "full": full, "drop": dropped})
        paper = PAPER_GFLOPS.get(name)
        rows.append({"model": name, "tower": "total", "tokens": "", "full": total[False], "drop": total[True], "paper": paper})
    return rows


def print_flops(rows: list[dict[str, Any]]) -> None:
    print("\nGFLOPs per clip (forward; video 32x224x224, audio 153,600 samples, text 16 words; 2 FLOPs per multiply-add)")
    header = f"{'model':<6} {'tower':<36} {'tokens':>12} {'no DropToken':>13} {'DropToken 50%':>14} {'ratio':>6}  paper"
    print(header)
    print("-" * len(header))
    for r in rows:
        paper = f"{r['paper'][0]} -> {r['paper'][1]} (ratio {r['paper'][1] / r['paper'][0]:.3f})" if r.get("paper") else ""
        print(f"{r['model']:<6} {r['tower']:<36} {r['tokens']:>12} {r['full']:>13.1f} {r['drop']:>14.1f} {r['drop'] / r['full']:>6.3f}  {paper}")


def train_step_seconds(model: PretrainModule, batch: dict[str, Any], precision: str, warmup: int, reps: int) -> list[float]:
    """Wall seconds of ``reps`` forward + backward + Adam steps (after ``warmup`` untimed ones)."""
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    times = []
    for i in range(warmup + reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            emb = model(batch)
            loss = model.objective(batch, emb)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def throughput(args: argparse.Namespace) -> None:
    config = REPO / "configs" / ("vatt" if args.full_size else "quickstart") / (f"{args.models[0]}.yaml" if args.full_size else "vatt.yaml")
    model = build_model(config, args.device)
    if args.grad_checkpointing:
        for encoder in model.encoders.values():
            encoder.set_grad_checkpointing(True)
    if args.full_size:
        sizes = CLIP
    else:
        data = yaml.safe_load(config.read_text())["data"]["init_args"]
        crop = data["transforms"]["video"]["init_args"]["crop"]
        sizes = {"video": (data["num_frames"], crop, crop), "audio": data["transforms"]["audio"]["init_args"]["num_samples"], "text": 16}
    k = 5 if args.full_size else 3  # captions per clip (MIL-NCE candidates)
    batch = {m: clip_input(m, enc, args.batch * (k if m == "text" else 1), sizes, args.device) for m, enc in model.encoders.items()}
    batch["text"] = batch["text"].reshape(args.batch, k, -1)
    batch["mask"] = {"text": torch.ones(args.batch, k, dtype=torch.bool, device=args.device)}
    times = train_step_seconds(model, batch, args.precision, args.warmup, args.reps)
    median = statistics.median(times)
    flags = ", ".join(f for f, on in (("grad checkpointing", args.grad_checkpointing),) if on) or "defaults"
    print(f"\nTraining step ({config.relative_to(REPO)}, batch {args.batch}, {args.precision}, {args.device}, {flags}; "
          f"video {sizes['video']}, audio {sizes['audio']} samples, text {k} x {sizes['text']} words)")
    print(f"  median {median * 1000:.0f} ms per step over {len(times)} steps (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})"
          f" -> {args.batch / median:.1f} clips/s")
    if args.peak_tflops:
        meta = build_model(config, "meta")
        per_clip = sum(tower_gflops(enc, clip_input(m, enc, 1, sizes, "meta"), training=True)[0] for m, enc in meta.encoders.items())
        achieved = 3 * per_clip * 1e9 * args.batch / median
        print(f"  model FLOPs utilisation: 3 x {per_clip:.1f} GFLOPs x {args.batch / median:.1f} clips/s = "
              f"{achieved / 1e12:.1f} TFLOP/s = {100 * achieved / (args.peak_tflops * 1e12):.1f}% of {args.peak_tflops} TFLOP/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["bbs", "mbs", "lbs", "ma"], choices=["bbs", "mbs", "lbs", "ma"])
    parser.add_argument("--skip-flops", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--full-size", action="store_true", help="time the first of --models at the paper's sizes (needs a GPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak TFLOP/s at --precision, for MFU")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if not args.skip_flops:
        print_flops(flops_table(args.models))
    if not args.skip_throughput:
        throughput(args)


if __name__ == "__main__":
    main()
