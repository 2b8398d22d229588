"""The model's randomness (dropout, DropToken) is a function of the training batch's position, so a resume draws the same."""

from __future__ import annotations

import os

import torch
from lightning.pytorch import Trainer

from scale_helpers import build_model
from versanet.seeding import derived_seed


def test_each_training_batch_draws_from_a_seed_of_seed_epoch_batch_and_rank(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(os.environ, "PL_GLOBAL_SEED", "11")
    model = build_model("nce", dropout=0.5)
    model.trainer = Trainer(max_steps=1, logger=False, enable_checkpointing=False, accelerator="cpu", enable_progress_bar=False)
    model.seed_batch(3)
    first = torch.rand(5)
    torch.rand(100)  # whatever ran before (another run's history) does not matter
    model.seed_batch(3)
    assert torch.equal(torch.rand(5), first)
    torch.manual_seed(derived_seed(11, 0, 3, 0))
    assert torch.equal(torch.rand(5), first)  # (seed 11, epoch 0, batch 3, rank 0)
    model.seed_batch(4)
    assert not torch.equal(torch.rand(5), first)
    monkeypatch.setitem(os.environ, "PL_GLOBAL_SEED", "12")
    model.seed_batch(3)
    assert not torch.equal(torch.rand(5), first)
