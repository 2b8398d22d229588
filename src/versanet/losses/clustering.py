"""MCN's multimodal clustering: online k-means over a queue of fused embeddings, and the loss that pulls each modality to its centroid.

Legend: ``B`` clips on this rank, ``W`` world size, ``G = W*B`` global batch, ``Q`` queue rows,
``K`` centroids, ``D`` joint-space width, ``M`` modalities.

Each training step (MCN's reference, ``train_tri_kmeans.py`` with ``--kmeans 1 --use_queue 1 --fastC 1``):

1. fuse: ``f_i = mean_m x_{m,i}`` over the modalities' joint-space embeddings (``(v + a + t) / 3``);
2. gather ``f`` from every rank (no gradient) -> ``[G, D]``, rank-major, identical on every rank;
3. cluster: the points are the queue followed by the batch once the queue is full, else the batch
   alone. Every ``refit_every`` steps (20), k-means is fitted on them, warm-started from the current
   centroids (randomly initialised from the points the first time); at other steps each point is
   only assigned to its nearest centroid. Only the batch's labels are used;
4. loss on the current batch with the centroids as constants: ``L = 1/M sum_m CE(x_m C^T - margin *
   onehot(y), y)`` (``loss_on: modalities``, the reference's default; ``loss_on: fused`` is its ``--mean 1``),
   raw dot products, margin 0.001;
5. after the step, push the batch's fused embeddings into the FIFO queue (newest first). MCN keeps
   the first 16 of every video's 32 clips (``group_size: 32, queue_per_group: 16``); the queue
   holds 20 steps of them, ``20 * 16 * 128 = 40,960`` rows.

k-means (:func:`kmeans`): cosine assignment (argmax of the cosine similarity to each centroid),
plain-mean update (a centroid is the mean of the raw, unnormalised points assigned to it), an empty
cluster's centroid becomes the zero vector, at most ``max_iter`` (100) iterations, stopping once the
summed squared centroid change is ``<= tol`` (1e-4). The labels are those of the last assignment,
the centroids those after the last update (as ``fast_pytorch_kmeans.KMeans.fit_predict``, which MCN
calls).

DDP: every rank holds the same queue (filled with the gathered batch) and runs the same k-means on
the same points with the same seeded initialisation; rank 0's centroids and labels are then
broadcast, so the state is bit-identical on every rank whatever the kernels' reduction order. Each
rank's loss is the mean over its local clips; DDP's gradient averaging makes it the global-batch
mean. Checkpoints keep the centroids, whether they are fitted and the step of the last fit; the
queue (1 GB at MCN's size) only with ``checkpoint_queue: true``; without it a resumed run refills it
over ``Q / rows per step`` steps, clustering the batch alone meanwhile, as at the start. The queue
is held outside the module's buffers (as "extra state") so that DDP does not broadcast it every step.

Where versanet differs from the reference on purpose: the reference restarts k-means from random
points at the first step of every epoch and counts the re-fit period within the epoch; versanet
counts global steps and always warm-starts after the first fit. The reference tests "queue full"
by its last row being non-zero; versanet counts the rows written.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from versanet.distributed import gather_no_grad, is_distributed, rank
from versanet.objective import ObjectiveTerm, TermInputs
from versanet.registry import register

# Why our own k-means: torch, torchmetrics, torchvision and Lightning have none; scikit-learn's and
# faiss's are Euclidean or spherical (centroids renormalised) and re-seed empty clusters, and
# fast_pytorch_kmeans (what MCN imports) draws its initial points from numpy's global RNG, which
# differs between DDP ranks and after a resume. MCN needs cosine assignment with plain-mean
# centroids, empty clusters at zero and a seeded, rank-independent initialisation: 20 lines.


def cosine_assign(points: Tensor, centroids: Tensor) -> Tensor:
    """Index ``[N]`` of each point's nearest centroid by cosine similarity (a zero centroid has similarity 0; ties: the first)."""
    sim = F.normalize(points, dim=-1) @ F.normalize(centroids, dim=-1).T
    return sim.argmax(dim=1)


@torch.no_grad()
def kmeans(
    points: Tensor, num_clusters: int, init: Tensor | None = None, max_iter: int = 100, tol: float = 1e-4,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, int]:
    """Cosine-assignment, plain-mean k-means (see the module docstring).

    Args:
        points: ``[N, D]``.
        num_clusters: K.
        init: ``[K, D]`` starting centroids; None draws K distinct points with ``generator`` (CPU).
        max_iter, tol: stop after ``max_iter`` iterations or once ``sum ||c_new - c||^2 <= tol``.

    Returns ``(labels [N], centroids [K, D], iterations run)``; labels are the last assignment.
    """
    n, dim = points.shape
    if init is None:
        if n < num_clusters:
            raise ValueError(f"k-means needs at least {num_clusters} points to draw its initial centroids, got {n}; lower num_clusters")
        pick = torch.randperm(n, generator=generator)[:num_clusters].to(points.device)
        centroids = points[pick].clone()
    else:
        if init.shape != (num_clusters, dim):
            raise ValueError(f"k-means init has shape {tuple(init.shape)}, expected ({num_clusters}, {dim})")
        centroids = init.to(points).clone()
    labels = torch.zeros(n, dtype=torch.long, device=points.device)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        labels = cosine_assign(points, centroids)
        counts = torch.bincount(labels, minlength=num_clusters).to(points.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, labels, points)
        new = sums / counts.clamp(min=1).unsqueeze(1)  # an empty cluster's sum is 0: its centroid becomes 0
        error = (new - centroids).pow(2).sum()
        centroids = new
        if error <= tol:
            break
    return labels, centroids, iterations


def centroid_loss(x: Tensor, centroids: Tensor, labels: Tensor, margin: float) -> Tensor:
    """``CE(x C^T - margin * onehot(y), y)``, mean over rows: ``x [N, D]``, ``centroids [K, D]`` (constants), ``labels [N]``."""
    logits = x @ centroids.T
    logits = logits - margin * F.one_hot(labels, centroids.shape[0]).to(logits.dtype)
    return F.cross_entropy(logits, labels)


@register("term")
class ClusteringTerm(ObjectiveTerm):
    """MCN's clustering loss with online k-means over a queue of fused embeddings (see the module docstring).

    Args:
        space: the joint space whose embeddings are fused and clustered.
        modalities: the modalities fused (their mean) and pulled to their centroid.
        num_clusters: K (256).
        queue_size: rows of past fused embeddings kept (40,960 in MCN; 0: cluster the batch alone).
        refit_every: re-fit k-means every this many steps (20); assign only in between.
        margin: subtracted from the assigned centroid's logit (0.001).
        loss_on: ``modalities`` (the mean of each modality's loss, MCN's default) or ``fused`` (the fused embedding's).
        group_size, queue_per_group: rows come in groups of ``group_size`` consecutive clips of one
            video; the first ``queue_per_group`` of each group enter the queue (MCN: 32 and 16).
        max_iter, tol: k-means stopping rule (100, 1e-4).
        seed: seeds the initial draw of centroids (with the step), identical on every rank.
        checkpoint_queue: keep the queue in checkpoints (see the module docstring).
        weight: the term's weight (1 in MCN).
    """

    def __init__(
        self,
        space: str,
        modalities: list[str] = ["video", "audio", "text"],  # noqa: B006 - shown as is by --print_config
        num_clusters: int = 256,
        queue_size: int = 40960,
        refit_every: int = 20,
        margin: float = 0.001,
        loss_on: Literal["modalities", "fused"] = "modalities",
        group_size: int = 1,
        queue_per_group: int = 1,
        max_iter: int = 100,
        tol: float = 1e-4,
        seed: int = 0,
        checkpoint_queue: bool = False,
        weight: float = 1.0,
        name: str | None = None,
    ) -> None:
        super().__init__(weight, name)
        if loss_on not in ("modalities", "fused"):
            raise ValueError(f"ClusteringTerm.loss_on must be 'modalities' or 'fused', not {loss_on!r}")
        if not 1 <= queue_per_group <= group_size:
            raise ValueError(f"ClusteringTerm: queue_per_group ({queue_per_group}) must lie in [1, group_size={group_size}]")
        if num_clusters < 1 or refit_every < 1 or queue_size < 0:
            raise ValueError("ClusteringTerm: num_clusters and refit_every must be positive and queue_size non-negative")
        self.space, self.modalities = space, list(modalities)
        self.num_clusters, self.queue_size, self.refit_every = num_clusters, queue_size, refit_every
        self.margin, self.loss_on = float(margin), loss_on
        self.group_size, self.queue_per_group = group_size, queue_per_group
        self.max_iter, self.tol, self.seed = max_iter, tol, seed
        self.checkpoint_queue = checkpoint_queue
        self.register_buffer("centroids", torch.zeros(num_clusters, 0))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.register_buffer("last_fit_step", torch.full((), -1, dtype=torch.long))
        self.queue = torch.zeros(queue_size, 0)  # not a buffer: see the module docstring
        self.queue_rows = 0
        self._pending: Tensor | None = None  # this step's gathered fused embeddings, pushed by update()
        self.last_fit = {"iterations": 0.0, "empty_clusters": 0.0, "seconds": 0.0}

    def default_name(self) -> str:
        return f"clustering@{self.space}"

    def reads(self) -> list[str]:
        return [f"{m}@{self.space}" for m in self.modalities]

    def build(self, graph: Any, modality_dims: dict[str, int]) -> None:
        dim = graph.spaces[self.space]
        self.centroids = torch.zeros(self.num_clusters, dim)
        self.queue = torch.zeros(self.queue_size, dim)

    def describe(self) -> str:
        return (f"ClusteringTerm(mean of {', '.join(self.modalities)} in {self.space}; k-means K={self.num_clusters}, "
                f"queue {self.queue_size}, re-fit every {self.refit_every} steps)")

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        if not self.checkpoint_queue:
            return {}
        return {"queue": self.queue.cpu(), "queue_rows": self.queue_rows}

    def set_extra_state(self, state: Any) -> None:
        if isinstance(state, dict) and "queue" in state:
            self.queue = state["queue"].to(self.centroids.device)
            self.queue_rows = int(state["queue_rows"])

    def _queue_on(self, ref: Tensor) -> Tensor:
        if self.queue.device != ref.device or self.queue.dtype != ref.dtype:
            self.queue = self.queue.to(device=ref.device, dtype=ref.dtype)
        return self.queue

    # ------------------------------------------------------------------ the step
    def fuse(self, inputs: TermInputs) -> Tensor:
        """``[B, D]``: the mean of the modalities' embeddings."""
        return torch.stack([inputs.emb[f"{m}@{self.space}"] for m in self.modalities]).mean(0)

    @torch.no_grad()
    def cluster(self, fused_all: Tensor, step: int) -> Tensor:
        """Labels ``[G]`` of the gathered batch; re-fits k-means (queue + batch) when due. Changes state."""
        due = not bool(self.fitted) or (step % self.refit_every == 0 and step != int(self.last_fit_step))
        if not due:
            return cosine_assign(fused_all, self.centroids.to(fused_all.dtype))
        queue = self._queue_on(fused_all)
        points = torch.cat([queue, fused_all]) if self.queue_size and self.queue_rows >= self.queue_size else fused_all
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        init = self.centroids.to(points.dtype) if bool(self.fitted) else None
        labels, centroids, iterations = kmeans(points, self.num_clusters, init, self.max_iter, self.tol, generator)
        empty = self.num_clusters - int(labels.unique().numel())
        labels = labels[-fused_all.shape[0] :].contiguous()
        if is_distributed():  # identical on every rank by construction; rank 0's copy removes any reduction-order drift
            dist.broadcast(centroids, 0)
            dist.broadcast(labels, 0)
        self.centroids.copy_(centroids.to(self.centroids.dtype))
        self.fitted.fill_(True)
        self.last_fit_step.fill_(step)
        self.last_fit = {"iterations": float(iterations), "empty_clusters": float(empty), "seconds": time.perf_counter() - start}
        return labels

    def forward(self, inputs: TermInputs) -> Tensor:
        xs = [inputs.emb[f"{m}@{self.space}"] for m in self.modalities]
        fused = torch.stack(xs).mean(0)
        if inputs.training:
            fused_all = gather_no_grad(fused.detach())
            self._pending = fused_all
            labels_all = self.cluster(fused_all, inputs.step)
        elif bool(self.fitted):  # evaluation: assign to the current centroids, change nothing
            labels_all = cosine_assign(gather_no_grad(fused.detach()), self.centroids.to(fused.dtype))
        else:
            return fused.sum() * 0.0  # no centroids yet (a sanity check before training)
        b = fused.shape[0]
        labels = labels_all[rank() * b : (rank() + 1) * b]
        centroids = self.centroids.to(fused.dtype)
        if self.loss_on == "fused":
            return centroid_loss(fused, centroids, labels, self.margin)
        return sum(centroid_loss(x, centroids, labels, self.margin) for x in xs) / len(xs)

    @torch.no_grad()
    def update(self, inputs: TermInputs) -> None:
        """Push this step's gathered fused embeddings into the FIFO queue (newest first)."""
        fused_all, self._pending = self._pending, None
        if not self.queue_size or not inputs.training:
            return
        if fused_all is None:
            fused_all = gather_no_grad(self.fuse(inputs))
        if fused_all.shape[0] % self.group_size:
            raise ValueError(f"ClusteringTerm: {fused_all.shape[0]} rows are not whole groups of group_size={self.group_size} clips per video")
        new = fused_all.reshape(-1, self.group_size, fused_all.shape[-1])[:, : self.queue_per_group].reshape(-1, fused_all.shape[-1])
        queue = self._queue_on(new)
        if new.shape[0] >= self.queue_size:
            self.queue = new[: self.queue_size].clone()
        else:
            self.queue = torch.cat([new, queue[: self.queue_size - new.shape[0]]])
        self.queue_rows = min(self.queue_size, self.queue_rows + new.shape[0])

    def metrics(self) -> dict[str, Tensor]:
        fill = self.queue_rows / self.queue_size if self.queue_size else 1.0
        return {"queue_fill": torch.tensor(fill), "empty_clusters": torch.tensor(self.last_fit["empty_clusters"]),
                "kmeans_iterations": torch.tensor(self.last_fit["iterations"])}
