"""FSDP through Lightning's FSDPStrategy on 2 CPU processes (gloo): gradients, resume, shared trunks, accumulation.

The model is the layout of VATT-MA at toy size: two encoders sharing one trunk of blocks. FSDP wraps it as the
large models are wrapped (one unit per block, or per trunk, per encoder and per head).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scale_helpers import BlockTrunk, TinyBlock, build_model, fit_job, global_batch, reference_step, run_ranks, vatt_batch
from versanet.encoders import Encoder
from versanet.heads import Head


def assert_close_dicts(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], atol: float) -> None:
    assert set(got) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, atol=atol, rtol=1e-4, msg=lambda m: f"{name}: {m}")


@pytest.mark.slow
def test_sharded_checkpoint_resumes_exactly_and_consolidates_with_the_shared_trunk_once(tmp_path: Path) -> None:
    """Trunk, encoders and heads as units, negatives accumulation on: step-1 gradients equal one process holding the
    whole batch; a run resumed from the step-2 sharded checkpoint ends where the uninterrupted run ends; Lightning's
    consolidation tool turns the checkpoint into one file whose state dict holds the trunk once and loads strictly."""
    expected_loss, expected_grads = reference_step(build_model(shared_trunk=True), global_batch(8))
    job = {"model": {"shared_trunk": True, "accumulation": 2}, "clips": 8, "steps": 4, "strategy": "fsdp",
           "strategy_kwargs": {"auto_wrap_policy": {BlockTrunk, Encoder, Head}, "state_dict_type": "sharded"}}
    straight = run_ranks(2, {**job, "save_every": 2, "root": str(tmp_path / "a"), "out": str(tmp_path / "a.pt")})
    assert straight["losses"][0] == pytest.approx(expected_loss, abs=1e-5)
    assert_close_dicts(straight["grads"], expected_grads, atol=1e-5)

    resumed = run_ranks(2, {**job, "root": str(tmp_path / "b"), "ckpt_path": str(tmp_path / "a" / "step=2.ckpt"), "out": str(tmp_path / "b.pt")})
    assert resumed["losses"] == pytest.approx(straight["losses"][2:], abs=1e-6)
    assert_close_dicts(resumed["params"], straight["params"], atol=1e-6)

    single = tmp_path / "step4.ckpt"
    subprocess.run([sys.executable, "-m", "lightning.pytorch.utilities.consolidate_checkpoint", str(tmp_path / "a" / "step=4.ckpt"), "--output_file", str(single)],
                   check=True, capture_output=True, timeout=300)
    state = torch.load(single, map_location="cpu", weights_only=False)["state_dict"]
    assert [k for k in state if k.endswith("blocks.0.fc.weight")] == ["trunks.shared.blocks.0.fc.weight"]
    fresh = build_model(shared_trunk=True)
    fresh.load_state_dict(state)  # strict: the encoders' views of the trunk are filled from trunks.shared.*
    assert_close_dicts(dict(fresh.named_parameters()), straight["params"], atol=0)


@pytest.mark.slow
def test_blocks_of_a_shared_trunk_as_units_give_the_single_process_gradients(tmp_path: Path) -> None:
    """The usual large-model layout: only the blocks are units (the rest, shared trunk leftovers included, in the root)."""
    expected_loss, expected_grads = reference_step(build_model(shared_trunk=True), global_batch(8))
    got = run_ranks(2, {"model": {"shared_trunk": True}, "clips": 8, "strategy": "fsdp", "strategy_kwargs": {"auto_wrap_policy": {TinyBlock}},
                        "out": str(tmp_path / "c.pt")})
    assert got["losses"][0] == pytest.approx(expected_loss, abs=1e-5)
    assert_close_dicts(got["grads"], expected_grads, atol=1e-5)


@pytest.mark.slow
def test_vatt_ma_under_the_documented_vatt_policy_gives_the_single_process_gradients(tmp_path: Path) -> None:
    """docs/scale.md's VATT policy (Transformer layers, the shared VATTTrunk, encoders, heads) with negatives accumulation."""
    from versanet.encoders.vatt import VATTTrunk
    from versanet.encoders.vatt.transformer import T5EncoderLayer, TransformerEncoderLayer

    expected_loss, expected_grads = reference_step(build_model(vatt_ma=True), vatt_batch(8))
    policy = {TransformerEncoderLayer, T5EncoderLayer, VATTTrunk, Encoder, Head}
    got = run_ranks(2, {"model": {"vatt_ma": True, "accumulation": 2}, "clips": 8, "strategy": "fsdp", "strategy_kwargs": {"auto_wrap_policy": policy},
                        "out": str(tmp_path / "v.pt")})
    assert got["losses"][0] == pytest.approx(expected_loss, abs=1e-5)
    assert_close_dicts(got["grads"], expected_grads, atol=1e-5)
    assert [k for k in got["params"] if k.endswith("layers.0.mha.q.weight")] == ["trunks.shared.layers.0.mha.q.weight"]


def test_accumulation_under_fsdp_refuses_encoders_outside_units(tmp_path: Path) -> None:
    try:
        with pytest.raises(RuntimeError, match="needs every encoder and head in an FSDP unit of its own; not wrapped: encoders.video, encoders.audio"):
            fit_job({"model": {"shared_trunk": True, "accumulation": 2}, "clips": 4, "strategy": "fsdp", "strategy_kwargs": {"auto_wrap_policy": {TinyBlock}},
                     "out": str(tmp_path / "c.pt")})
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
