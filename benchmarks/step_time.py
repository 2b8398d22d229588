"""Training-step time and memory per video backbone, and the share of the step spent in the loss and its gather.

    python benchmarks/step_time.py                                  # CPU-sized: 8x112x112 video, batch 4
    python benchmarks/step_time.py --paper --batch 8 --bf16         # 32x200x200 video, 3.2 s of 48 kHz audio (a GPU)
    python benchmarks/step_time.py --backbones VATT-B               # VATT-BBS's Transformers on raw video/audio (DropToken 50%)
    torchrun --nproc-per-node 2 benchmarks/step_time.py --batch 4   # W ranks: the loss gathers W*B clips

Each row is MMV's FAC model (``PretrainModule``) around one video backbone: the backbone, the audio
ResNet-50 on log-mel, a text encoder (16 tokens, K=4 captions per clip, MIL-NCE), the FAC heads and
NCE + MIL-NCE, trained by Adam. Per step (median of ``--steps`` after one warm-up):

- step: forward, objective, backward and the optimizer step; wall seconds on a GPU, CPU seconds of the
  process on a CPU (core-seconds: a shared machine's load does not move them as it moves wall time);
- loss + gather: the objective alone, forward and backward, on the step's embeddings (normalise,
  gather across ranks, similarities, log-sum-exp), and its share of the step; "gather" is the
  cross-rank gather of the embeddings alone, forward and backward (0 on one process);
- memory: on a GPU, the peak allocated during the step; on a CPU, what the step holds: the tensors
  autograd saves for backward (counted with ``torch.autograd.graph.saved_tensors_hooks``, each storage
  once) plus parameters, gradients and Adam's two moments (16 bytes per fp32 parameter);
- under torchrun the step is one rank's (no DDP wrapper: its gradient all-reduce overlaps the backward
  and is not timed); the loss gathers every rank's embeddings;
- on a GPU only: bf16 autocast (``--bf16``) and model FLOPs utilisation, the step's FLOPs (counted
  with ``torch.utils.flop_counter.FlopCounterMode``, forward and backward) over its time and the
  device's dense bf16 peak (``--peak-tflops``, default 989: H100/H200 SXM). Nothing needs a GPU.

Rows are the ``ROWS`` table: a new backbone is one entry. ``VATT-B`` is VATT-BBS's towers (video and audio
Transformer-Base on raw tubelets and the raw waveform, DropToken 50% as in pretraining, text T5-Small) with the
same FAC heads and losses; its video is cut into 4x16x16 tubelets, so ``--size`` should be a multiple of 16
(``--paper`` with VATT: ``--frames 32 --size 224``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import nullcontext
from typing import Any, Callable

import torch
from torch import Tensor

from versanet.distributed import gather_with_grad, is_distributed, rank, world_size
from versanet.encoders import Encoder
from versanet.encoders.mmv.audio_resnet import DMVR_LOGMEL, AudioResNet50, logmel_frames
from versanet.encoders.mmv.s3dg import S3DG
from versanet.encoders.mmv.tsm_resnet import TSMResNet50, TSMResNet50x2
from versanet.encoders.small import EmbeddingTextEncoder
from versanet.encoders.vatt import VATTAudio, VATTText, VATTVideo
from versanet.graph import FAC
from versanet.models import PretrainModule

K, TOKENS, VOCAB = 4, 16, 1000


def mmv_row(video: Callable[[], Encoder]) -> Callable[[int, int, int, float], tuple[dict[str, Encoder], dict[str, Any]]]:
    """An MMV row: ``video`` backbone + audio ResNet-50 on log-mel + a text encoder, with a batch of their inputs."""

    def build(batch: int, frames: int, size: int, seconds: float) -> tuple[dict[str, Encoder], dict[str, Any]]:
        encoders = {"video": video(), "audio": AudioResNet50(), "text": EmbeddingTextEncoder(vocab_size=VOCAB, embed_dim=300, out_dim=2048)}
        inputs = {
            "video": torch.rand(batch, 3, frames, size, size),
            "audio": torch.randn(batch, 1, logmel_frames(seconds, DMVR_LOGMEL["sample_rate"], DMVR_LOGMEL["hop_length"]), DMVR_LOGMEL["n_mels"]),
            "text": torch.randint(1, VOCAB, (batch, K, TOKENS)),
            "mask": {"text": torch.ones(batch, K, dtype=torch.bool)},
        }
        return encoders, inputs

    return build


def vatt_b_row(batch: int, frames: int, size: int, seconds: float) -> tuple[dict[str, Encoder], dict[str, Any]]:
    """VATT-BBS's towers as pretrained: video and audio Transformers (Base) on raw tubelets and the raw 48 kHz
    waveform with DropToken 50%, the text T5-Small over frozen word vectors, with a batch of their inputs."""
    encoders = {
        "video": VATTVideo("base", droptoken_rate=0.5),
        "audio": VATTAudio("base", droptoken_rate=0.5),
        "text": VATTText("small", vocab_size=VOCAB),
    }
    inputs = {
        "video": torch.rand(batch, 3, frames, size, size) * 2 - 1,
        "audio": torch.randn(batch, 1, int(seconds * 48_000)) * 0.1,
        "text": torch.randint(1, VOCAB, (batch, K, TOKENS)),
        "mask": {"text": torch.ones(batch, K, dtype=torch.bool)},
    }
    return encoders, inputs


ROWS: dict[str, Callable[[int, int, int, float], tuple[dict[str, Encoder], dict[str, Any]]]] = {
    "S3DG": mmv_row(S3DG),
    "TSMResNet50": mmv_row(TSMResNet50),
    "TSMResNet50x2": mmv_row(TSMResNet50x2),
    "VATT-B": vatt_b_row,
}


def to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    return x.to(device) if isinstance(x, Tensor) else x


def median_seconds(fn: Callable[[], None], steps: int, device: torch.device) -> float:
    """Median seconds of ``fn`` over ``steps`` calls after one warm-up: wall time on a GPU (synchronised), CPU time
    of the process on a CPU (all its threads: core-seconds, which on a shared machine do not depend on the load)."""
    sync, clock = (torch.cuda.synchronize, time.perf_counter) if device.type == "cuda" else ((lambda: None), time.process_time)
    fn()
    times = []
    for _ in range(steps):
        sync()
        start = clock()
        fn()
        sync()
        times.append(clock() - start)
    return statistics.median(times)


def saved_bytes(fn: Callable[[], Tensor]) -> tuple[Tensor, int]:
    """``fn()`` and the bytes of the tensors autograd saved for its backward (each storage counted once)."""
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


def measure(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    torch.manual_seed(0)
    encoders, batch = ROWS[name](args.batch, args.frames, args.size, args.seconds)
    model = PretrainModule(encoders, FAC(), warmup_steps=0).to(device).train()
    batch = to_device(batch, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else nullcontext()

    def loss() -> Tensor:
        with autocast:
            return model.objective(batch, model(batch))["loss"]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()

    step_s = median_seconds(step, args.steps, device)
    with torch.no_grad(), autocast:
        emb = {k: v.detach() for k, v in model(batch).items()}

    def objective() -> None:
        leaves = {k: v.clone().requires_grad_() for k, v in emb.items()}
        model.objective(batch, leaves)["loss"].backward()

    def gather() -> None:
        nodes = [v.clone().requires_grad_() for k, v in emb.items() if "@" in k]
        torch.stack([gather_with_grad(v).float().sum() for v in nodes]).sum().backward()

    loss_s = median_seconds(objective, args.steps, device)
    gather_s = median_seconds(gather, args.steps, device) if is_distributed() else 0.0
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    row = {"step_s": step_s, "loss_s": loss_s, "gather_s": gather_s, "params": params}
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        step()
        row["memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            loss().backward()
        row["mfu"] = counter.get_total_flops() / step_s / (args.peak_tflops * 1e12)
    else:
        out, activations = saved_bytes(loss)
        out.backward()
        row["activations_mb"] = activations / 2**20
        row["state_mb"] = 16 * params / 2**20
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["S3DG", "TSMResNet50"], choices=list(ROWS))
    parser.add_argument("--batch", type=int, default=4, help="clips per process")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--seconds", type=float, default=0.8, help="audio seconds (log-mel frames follow)")
    parser.add_argument("--paper", action="store_true", help="the papers' clips: 32x200x200 video, 3.2 s audio")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="device peak for MFU (dense bf16; H100/H200 SXM: 989)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.paper:
        args.frames, args.size, args.seconds = 32, 200, 3.2
    if args.threads:
        torch.set_num_threads(args.threads)
    if "RANK" in os.environ and not torch.distributed.is_initialized():  # launched by torchrun
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    rows = {name: measure(name, args, device) for name in args.backbones}
    if rank() != 0:
        return
    gpu = device.type == "cuda"
    print(f"# device {torch.cuda.get_device_name(device) if gpu else 'cpu'}, {torch.get_num_threads()} threads, world size {world_size()}, "
          f"load average {os.getloadavg()[0]:.1f}; batch {args.batch} per process, video {args.frames}x{args.size}x{args.size}, "
          f"audio {args.seconds:g} s, text {K}x{TOKENS} tokens; {'bf16 autocast' if args.bf16 else 'fp32'}; median of {args.steps} steps")
    memory = "peak allocated MB" if gpu else "saved activations MB + params/grads/Adam MB"
    extra = " | MFU" if gpu else ""
    unit = "s" if gpu else "CPU s"
    print(f"| model | params | step {unit} | clips/{unit} per process | loss + gather {unit} (share) | gather {unit} | {memory}{extra} |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if gpu else ""))
    for name, r in rows.items():
        mem = f"{r['memory_mb']:.0f}" if gpu else f"{r['activations_mb']:.0f} + {r['state_mb']:.0f}"
        mfu = f" | {r['mfu']:.1%}" if gpu else ""
        print(f"| FAC, {name} | {r['params']:,} | {r['step_s']:.3f} | {args.batch / r['step_s']:.1f} | "
              f"{r['loss_s']:.4f} ({r['loss_s'] / r['step_s']:.1%}) | {r['gather_s']:.4f} | {mem}{mfu} |")
    if is_distributed():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
