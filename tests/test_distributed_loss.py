"""Local loss + gather with gradient on 2 gloo processes == the global-batch loss on 1 process.

Each rank holds B clips; the single process holds all 2B. The model has no batch norm (its
statistics are per process by design), so loss and every parameter gradient must agree.
"""

from __future__ import annotations


import pytest
import torch
import torch.distributed as dist
from torch import nn

from distributed_helpers import run_gloo
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


def _worker(rank: int) -> tuple[float, dict]:
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
    return reported.item() / 2, {n: p.grad.numpy().copy() for n, p in model.named_parameters()}


def test_two_processes_equal_one_process_global_batch() -> None:
    model = TwoTower()
    loss = model(*global_batch())
    loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}

    reported, grads = run_gloo(_worker)[0]
    assert reported == pytest.approx(loss.item(), abs=1e-5)
    assert set(grads) == set(expected)
    for name, grad in grads.items():
        grad = torch.from_numpy(grad)
        torch.testing.assert_close(grad, expected[name], atol=1e-5, rtol=1e-4, msg=lambda m: f"{name}: {m}")
        assert grad.abs().sum() > 0, name
