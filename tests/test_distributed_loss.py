"""Local loss + gather with gradient on 2 gloo processes == the global-batch loss on 1 process.

Each rank holds B clips; the single process holds all 2B. The model has no batch norm (its
statistics are per process by design), so loss and every parameter gradient must agree.
"""

from __future__ import annotations


import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from distributed_helpers import free_port
from versanet.losses import NCELoss

B, D_IN, D, K = 4, 6, 5, 3


class TwoTower(nn.Module):
    """video [N, D_IN] -> [N, D]; text candidates [N*K, D_IN] -> [N*K, D]; learnable temperature."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.video = nn.Sequential(nn.Linear(D_IN, 8), nn.Tanh(), nn.Linear(8, D))
        self.text = nn.Linear(D_IN, D)
        self.nce = NCELoss(learnable_temperature=True)
        self.milnce = NCELoss(learnable_temperature=True)

    def forward(self, v, a, t, t_mask, v_mask) -> torch.Tensor:
        video = self.video(v)
        return 0.5 * (self.nce(video, self.video(a), a_mask=v_mask) + self.milnce(video, self.text(t), a_mask=v_mask, b_mask=t_mask))


def global_batch():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(2 * B, D_IN, generator=g)
    a = torch.randn(2 * B, D_IN, generator=g)
    t = torch.randn(2 * B * K, D_IN, generator=g)
    t_mask = torch.rand(2 * B, K, generator=g) > 0.3
    t_mask[1] = False  # a clip without text (AudioSet-like)
    t_mask[6, 0] = True
    v_mask = torch.ones(2 * B, dtype=torch.bool)
    v_mask[5] = False
    return v, a, t, t_mask, v_mask


def _worker(rank: int, port: int, queue) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model = TwoTower()
        v, a, t, t_mask, v_mask = global_batch()
        rows = slice(rank * B, (rank + 1) * B)
        loss = model(v[rows], a[rows], t[rank * B * K : (rank + 1) * B * K], t_mask[rows], v_mask[rows])
        loss.backward()
        # what DDP does: average gradients and (for reporting) the loss over ranks
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= 2
        reported = loss.detach().clone()
        dist.all_reduce(reported)
        if rank == 0:  # numpy arrays travel by value (tensors would be shared memory that dies with this process)
            queue.put((reported.item() / 2, {n: p.grad.numpy().copy() for n, p in model.named_parameters()}))
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_process_global_batch() -> None:
    model = TwoTower()
    loss = model(*global_batch())
    loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    reported, grads = queue.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert reported == pytest.approx(loss.item(), abs=1e-5)
    assert set(grads) == set(expected)
    for name, grad in grads.items():
        grad = torch.from_numpy(grad)
        torch.testing.assert_close(grad, expected[name], atol=1e-5, rtol=1e-4, msg=lambda m: f"{name}: {m}")
        assert grad.abs().sum() > 0, name
