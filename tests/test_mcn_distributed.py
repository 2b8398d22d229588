"""MCN's clustering term and MMS on 2 gloo processes == one process holding the global batch.

Over three steps (k-means fitted at steps 0 and 2, assignment only at step 1; the queue fills at
step 2), every rank must hold the same queue and centroids as the single process, the mean of the
ranks' losses must equal its loss, and the averaged gradients its gradients.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from torch import nn

from distributed_helpers import run_gloo
from versanet.losses import MaskedMarginSoftmax
from versanet.losses.clustering import ClusteringTerm
from versanet.objective import TermInputs

B, D_IN, D, STEPS = 4, 5, 6, 3  # B clips per rank (2 videos x 2 clips), 2 ranks


class Towers(nn.Module):
    """Three linear towers into a 6-d space, the clustering term (K=3, queue 8, re-fit every 2) and MMS."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.towers = nn.ModuleDict({m: nn.Linear(D_IN, D) for m in ("v", "a", "t")})
        self.term = ClusteringTerm("s", ["v", "a", "t"], num_clusters=3, queue_size=8, refit_every=2, group_size=2, queue_per_group=1, seed=3)
        self.term.build(SimpleNamespace(spaces={"s": D}), {})
        self.mms = MaskedMarginSoftmax()

    def step(self, x: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        emb = {f"{m}@s": tower(x[m]) for m, tower in self.towers.items()}
        inputs = TermInputs(emb, {}, x["v"].shape[0], step)
        loss = self.term(inputs) + self.mms(emb["v@s"], emb["t@s"])
        self.term.update(TermInputs({k: v.detach() for k, v in emb.items()}, {}, x["v"].shape[0], step))
        return loss


def global_batch(step: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return {m: torch.randn(2 * B, D_IN, generator=g) for m in ("v", "a", "t")}


def run(model: Towers, rows: slice, world: int) -> list[tuple[float, dict[str, torch.Tensor]]]:
    out = []
    for step in range(STEPS):
        model.zero_grad()
        loss = model.step({m: x[rows] for m, x in global_batch(step).items()}, step)
        loss.backward()
        reported = loss.detach().clone()
        if world > 1:  # what DDP does: average gradients (and, for reporting, the loss) over ranks
            for p in model.parameters():
                dist.all_reduce(p.grad)
                p.grad /= world
            dist.all_reduce(reported)
        out.append((reported.item() / world, {n: p.grad.clone() for n, p in model.named_parameters()}))
    return out


def _worker(rank: int) -> tuple:
    model = Towers()
    results = run(model, slice(rank * B, (rank + 1) * B), 2)
    as_numpy = [(loss, {n: g.numpy() for n, g in grads.items()}) for loss, grads in results]
    return rank, as_numpy, model.term.queue.numpy(), model.term.centroids.numpy(), model.term.queue_rows


@pytest.mark.slow  # two spawned processes: ~50 s on 2 busy cores, mostly imports
def test_clustering_term_on_two_processes_equals_one_process_global_batch() -> None:
    single = Towers()
    expected = run(single, slice(0, 2 * B), 1)
    assert single.term.queue_rows == 8  # 4 rows a step (the first clip of each of 4 videos), capped at 8

    got = run_gloo(_worker)
    for rank, results, q, centroids, rows in got:
        q, centroids = torch.from_numpy(q), torch.from_numpy(centroids)
        results = [(loss, {n: torch.from_numpy(g) for n, g in grads.items()}) for loss, grads in results]
        assert rows == single.term.queue_rows
        torch.testing.assert_close(q, single.term.queue, msg=lambda m: f"rank {rank} queue: {m}")
        torch.testing.assert_close(centroids, single.term.centroids, msg=lambda m: f"rank {rank} centroids: {m}")
        for step, ((loss, grads), (exp_loss, exp_grads)) in enumerate(zip(results, expected)):
            assert loss == pytest.approx(exp_loss, abs=1e-5), f"step {step}"
            for name, grad in grads.items():
                torch.testing.assert_close(grad, exp_grads[name], atol=1e-5, rtol=1e-4, msg=lambda m: f"step {step} {name}: {m}")
