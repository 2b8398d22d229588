"""negatives_accumulation (GradCache): the objective on the whole batch, the networks one micro-batch at a time.

The main check runs the real thing: 2 gloo processes x 2 micro-batches each under Lightning's DDP must give
the loss and every parameter gradient of ONE process holding the whole global batch in one pass. The
single-process checks pin what makes that hold: the same dropout draws in both passes (RNG restored), per
micro-batch BatchNorm statistics with running statistics updated once per micro-batch, and the LR schedule,
logging, gradient clipping and bf16 autocast of the default path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback

from scale_helpers import GRAPHS, build_model, fit_job, global_batch, graph_batch, reference_micro_batches, reference_step, run_ranks
from versanet.models.accumulation import keep_running_stats, split_batch
from versanet.schedules import warmup_cosine
from versanet.seeding import derived_seed


def assert_same_gradients(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(expected)
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, atol=1e-5, rtol=1e-4, msg=lambda m: f"{name}: {m}")
        assert grad.abs().sum() > 0, name


@pytest.mark.slow
@pytest.mark.parametrize("graph", sorted(GRAPHS))  # NCE, MIL-NCE with masks, MCN (MMS, clustering, reconstruction)
def test_two_ranks_of_two_micro_batches_equal_one_process_holding_the_global_batch(graph: str, tmp_path: Path) -> None:
    expected_loss, expected = reference_step(build_model(graph), graph_batch(graph, 8))
    got = run_ranks(2, {"model": {"graph": graph, "accumulation": 2}, "clips": 8, "strategy": "ddp", "out": str(tmp_path / "rank0.pt")})
    assert got["losses"][0] == pytest.approx(expected_loss, abs=1e-5)
    assert_same_gradients(got["grads"], expected)


def test_dropout_draws_are_the_same_in_the_cached_pass_and_the_rerun(tmp_path: Path) -> None:
    def reference(seed: int) -> tuple[float, dict[str, torch.Tensor]]:
        model = build_model("milnce_masks", dropout=0.5)
        torch.manual_seed(seed)
        return reference_micro_batches(model, global_batch(8), parts=2)

    fit_job({"model": {"graph": "milnce_masks", "accumulation": 2, "dropout": 0.5}, "clips": 8, "out": str(tmp_path / "c.pt")})
    got = torch.load(tmp_path / "c.pt", weights_only=True)
    # the module seeds torch's RNG from (seed, epoch, batch, rank) before each training batch (PretrainModule.seed_batch)
    expected_loss, expected = reference(derived_seed(int(os.environ.get("PL_GLOBAL_SEED", "0")), 0, 0, 0))
    _, other_draws = reference(7)
    assert not torch.allclose(other_draws["encoders.video.net.0.weight"], expected["encoders.video.net.0.weight"])  # dropout matters
    assert got["losses"][0] == pytest.approx(expected_loss, abs=1e-5)
    assert_same_gradients(got["grads"], expected)


def test_batchnorm_normalises_per_micro_batch_and_updates_running_statistics_once_per_micro_batch(tmp_path: Path) -> None:
    reference = build_model("nce", norm=True)
    expected_loss, expected = reference_micro_batches(reference, global_batch(8), parts=2)
    trainer = fit_job({"model": {"graph": "nce", "accumulation": 2, "norm": True}, "clips": 8, "out": str(tmp_path / "c.pt")})
    got = torch.load(tmp_path / "c.pt", weights_only=True)
    assert got["losses"][0] == pytest.approx(expected_loss, abs=1e-5)
    assert_same_gradients(got["grads"], expected)
    bn, expected_bn = trainer.lightning_module.encoders["video"].net[1], reference.encoders["video"].net[1]
    assert int(bn.num_batches_tracked) == 2  # two micro-batches; the cached pass left no trace
    torch.testing.assert_close(bn.running_mean, expected_bn.running_mean)
    torch.testing.assert_close(bn.running_var, expected_bn.running_var)


def test_keep_running_stats_restores_them() -> None:
    bn = torch.nn.BatchNorm1d(3)
    with torch.no_grad(), keep_running_stats(bn):
        bn(torch.randn(5, 3) + 4)
    assert torch.equal(bn.running_mean, torch.zeros(3)) and int(bn.num_batches_tracked) == 0


def test_split_batch_cuts_every_per_clip_entry_and_keeps_the_rest() -> None:
    batch = {**global_batch(5), "name": "x", "keys": list("abcde")}
    parts = split_batch(batch, 2, 5)
    assert [len(p["index"]) for p in parts] == [3, 2]
    assert parts[1]["text"].shape == (2, 3, 6) and parts[1]["mask"]["text"].shape == (2, 3) and parts[1]["keys"] == ["d", "e"]
    assert parts[0]["name"] == parts[1]["name"] == "x"
    with pytest.raises(ValueError, match="cannot split a batch of 5 clips into 6 micro-batches"):
        split_batch(batch, 6, 5)


class Watch(Callback):
    """Gradient norms before clipping (``on_before_optimizer_step``) and after it (the step's end), and learning rates."""

    def __init__(self) -> None:
        self.before: list[float] = []
        self.after: list[float] = []
        self.lrs: list[float] = []

    @staticmethod
    def norm(module: torch.nn.Module) -> float:
        return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters() if p.grad is not None])).item()

    def on_before_optimizer_step(self, trainer: Any, pl_module: torch.nn.Module, optimizer: Any) -> None:
        self.before.append(self.norm(pl_module))
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_train_batch_end(self, trainer: Any, pl_module: torch.nn.Module, *args: Any) -> None:
        self.after.append(self.norm(pl_module))


def test_schedule_logging_clipping_and_bf16_work_as_on_the_default_path(tmp_path: Path) -> None:
    watch = Watch()
    job = {"model": {"graph": "milnce_masks", "accumulation": 2, "warmup_steps": 0}, "clips": 8, "steps": 3, "out": str(tmp_path / "c.pt"),
           "callbacks": [watch], "trainer": {"gradient_clip_val": 0.05, "precision": "bf16-mixed", "log_every_n_steps": 1}}
    trainer = fit_job(job)
    assert trainer.global_step == 3
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
    schedule = warmup_cosine(optimizer, 3, 0, 0.0)
    expected_lrs = []
    for _ in range(3):
        expected_lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert watch.lrs == pytest.approx(expected_lrs)
    assert all(before > 0.05 for before in watch.before) and all(after == pytest.approx(0.05, rel=1e-3) for after in watch.after)
    assert {"train/loss", "train/video_audio@va", "train/video_text@vat", "train/video_audio@va/temperature"} <= set(trainer.logged_metrics)


def test_several_steps_follow_the_one_pass_run(tmp_path: Path) -> None:
    """Each step starts from clean gradients: three accumulated steps trace the losses of three one-pass steps."""
    runs = {}
    for n in (1, 2):
        fit_job({"model": {"graph": "milnce_masks", "accumulation": n}, "clips": 8, "steps": 3, "out": str(tmp_path / f"{n}.pt")})
        runs[n] = torch.load(tmp_path / f"{n}.pt", weights_only=True)
    assert runs[2]["losses"] == pytest.approx(runs[1]["losses"], abs=1e-5)
    assert len(set(runs[1]["losses"])) == 3
    for name, value in runs[1]["params"].items():
        torch.testing.assert_close(runs[2]["params"][name], value, atol=1e-5, rtol=1e-4)
