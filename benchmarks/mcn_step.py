"""MCN training-step time at the paper's batch (4,096 triplets) on CPU at reduced width, and the share in k-means and the queue.

    python benchmarks/mcn_step.py [--batch 4096] [--width 256] [--audio_frames 1000] [--repeats 3]

Builds configs/mcn/howto100m.yaml's model (three MMS terms, the clustering term, reconstruction
weight 50) with the joint space and the networks narrowed (``--width`` for the 6144-d space,
ResDAVEnet's stages and the text network scaled to match), video features 4096-d as released, a
full queue of ``10 * batch`` rows (MCN's 40,960 at 4,096) of random fused embeddings, K = 256.
Times, as medians over ``--repeats``:

- assign step: forward + loss + backward + Adam on one batch, k-means only assigning (19 steps in 20);
- fit step: the same with k-means re-fitted on queue + batch (1 step in 20);
- inside them: k-means (fit or assignment), the queue push (gather + FIFO shift), and their share,
  amortised over MCN's 20-step cycle.

Prints a markdown table with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from versanet.encoders.mcn.precomputed import PrecomputedFeatures
from versanet.encoders.mcn.resdavenet import ResDAVEnet
from versanet.encoders.mcn.text import SentenceMaxPool
from versanet.graph import Edge, LossTerm, ModalityGraph, Retrieval
from versanet.heads.decoders import ReconstructionDecoder
from versanet.heads.gated import GatedEmbeddingUnit, GatedLinearHead
from versanet.losses import MaskedMarginSoftmax
from versanet.losses.clustering import ClusteringTerm
from versanet.losses.reconstruction import ReconstructionTerm
from versanet.models import PretrainModule


def build(width: int, batch: int) -> tuple[PretrainModule, ClusteringTerm]:
    audio_widths = [max(8, width // 8)] * 2 + [max(8, width // 4), max(8, width // 2), width]
    clustering = ClusteringTerm("joint", num_clusters=256, queue_size=10 * batch, refit_every=20, group_size=32, queue_per_group=16)
    graph = ModalityGraph(
        {"joint": width},
        [Edge("video", "joint", GatedEmbeddingUnit), Edge("audio", "joint", GatedLinearHead), Edge("text", "joint", GatedEmbeddingUnit)],
        [LossTerm("joint", "text", "video", MaskedMarginSoftmax()), LossTerm("joint", "audio", "text", MaskedMarginSoftmax()),
         LossTerm("joint", "audio", "video", MaskedMarginSoftmax()), clustering,
         ReconstructionTerm("joint", decoder=lambda i, o: ReconstructionDecoder(i, o, hidden_dim=max(64, width // 6)))],
        name="mcn", reduction="sum", retrieval=[Retrieval("joint", "text", ["video", "audio"], "sum_dot")],
    )
    encoders = {"video": PrecomputedFeatures(4096), "audio": ResDAVEnet(widths=audio_widths),
                "text": SentenceMaxPool(vocab_size=5000, embed_dim=300, out_dim=width)}
    model = PretrainModule(encoders, graph, lr=1e-4)
    return model, clustering


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--audio_frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, term = build(args.width, args.batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    b = args.batch
    batch = {"video": torch.nn.functional.normalize(torch.rand(b, 4096), dim=1), "audio": torch.randn(b, 41, args.audio_frames),
             "text": torch.randint(1, 5000, (b, 20)), "index": torch.arange(b)}
    batch["audio"][:, -1] = 1.0
    term.queue = torch.randn(term.queue_size, args.width)
    term.queue_rows = term.queue_size
    timings: dict[str, list[float]] = {k: [] for k in ("assign_step", "fit_step", "kmeans_fit", "assign", "queue")}

    original_cluster, original_update = term.cluster, term.update
    spent: dict[str, float] = {}

    def timed_cluster(fused_all, step):  # noqa: ANN001, ANN202
        t = time.perf_counter()
        out = original_cluster(fused_all, step)
        spent["cluster"] = time.perf_counter() - t
        return out

    def timed_update(inputs):  # noqa: ANN001, ANN202
        t = time.perf_counter()
        original_update(inputs)
        spent["queue"] = time.perf_counter() - t

    term.cluster, term.update = timed_cluster, timed_update  # type: ignore[method-assign]
    model.train()
    for step in [1] + list(range(20, 20 * (args.repeats + 1), 20)) + list(range(21, 21 + args.repeats)):
        model._trainer = None  # noqa: SLF001
        start = time.perf_counter()
        emb = model(batch)
        inputs = model.term_inputs(batch, emb)
        inputs.step = step
        losses = {name: t(inputs) for name, t in model.terms.items()}
        loss = sum(model.terms[n].weight * v for n, v in losses.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        inputs_detached = model.term_inputs(batch, {k: v.detach() for k, v in emb.items()})
        inputs_detached.step = step
        term.update(inputs_detached)
        total = time.perf_counter() - start
        if step == 1:
            continue  # warm-up (first fit from random points happens here)
        fit = step % 20 == 0
        timings["fit_step" if fit else "assign_step"].append(total)
        timings["kmeans_fit" if fit else "assign"].append(spent["cluster"])
        timings["queue"].append(spent["queue"])
    med = {k: statistics.median(v) for k, v in timings.items() if v}
    cycle = med["fit_step"] + 19 * med["assign_step"]
    clustering = med["kmeans_fit"] + 19 * med["assign"] + 20 * med["queue"]
    load = os.getloadavg()
    print(f"MCN step, batch {b} triplets, joint width {args.width}, audio {args.audio_frames} frames, queue {term.queue_size} x {args.width}, "
          f"K=256, {torch.get_num_threads()} threads, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; medians of {args.repeats}")
    print("| what | seconds |")
    print("| --- | --- |")
    print(f"| step, k-means assigning only (19 of 20) | {med['assign_step']:.2f} |")
    print(f"| step with the k-means re-fit (1 of 20) | {med['fit_step']:.2f} |")
    print(f"| k-means re-fit on queue + batch ({term.last_fit['iterations']:.0f} iterations) | {med['kmeans_fit']:.2f} |")
    print(f"| k-means assignment of the batch | {med['assign']:.3f} |")
    print(f"| queue push (gather + FIFO shift) | {med['queue']:.3f} |")
    print(f"| share of k-means + queue over a 20-step cycle | {clustering / cycle:.1%} |")


if __name__ == "__main__":
    main()
