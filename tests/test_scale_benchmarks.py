"""The scale benchmarks run and print their tables (tiny sizes; the figures themselves are in docs/scale.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import data_throughput  # noqa: E402
import step_time  # noqa: E402
from versanet.encoders.small import SmallVideoCNN  # noqa: E402


def test_step_time_prints_time_memory_and_the_loss_share(capsys: pytest.CaptureFixture, one_thread: None) -> None:
    step_time.ROWS["tiny"] = step_time.mmv_row(lambda: SmallVideoCNN(widths=(4, 8), out_dim=16))
    try:
        step_time.main(["--backbones", "tiny", "--batch", "2", "--frames", "4", "--size", "32", "--seconds", "0.4", "--steps", "1"])
    finally:
        del step_time.ROWS["tiny"]
    out = capsys.readouterr().out
    assert "world size 1" in out and "saved activations MB + params/grads/Adam MB" in out
    row = next(line for line in out.splitlines() if line.startswith("| FAC, tiny |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) > 0 and "%" in cells[4] and cells[5] == "0.0000"


def test_data_throughput_measures_files_and_shards(capsys: pytest.CaptureFixture) -> None:
    data_throughput.main(["--videos", "1", "--clips", "2", "--rounds", "1", "--seconds", "4", "--no-gpu-table"])
    out = capsys.readouterr().out
    for row in ("bare PyAV decode (floor)", "strict floor", "read_clip", "pipeline, train, from mp4 files", "pipeline, train, from shards", "pipeline, eval",
                "pipeline, train, VATT inputs"):
        assert f"| {row}" in out or row in out
    assert "load average" in out


def test_step_time_vatt_b_row_runs_vatt_bbs_towers_at_tiny_inputs(capsys: pytest.CaptureFixture, one_thread: None) -> None:
    """The real VATT-B row (Base video/audio Transformers with DropToken, T5-Small text): ~10 CPU s at 4x32x32 video."""
    step_time.main(["--backbones", "VATT-B", "--batch", "2", "--frames", "4", "--size", "32", "--seconds", "0.02", "--steps", "1"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| FAC, VATT-B |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert 190e6 < int(cells[1].replace(",", "")) < 200e6 and float(cells[2]) > 0  # VATT-BBS: 193.9M with FAC heads


def test_cores_per_gpu_vatt_rows_count_the_pretrained_towers_flops() -> None:
    rows = data_throughput.vatt_cores_per_gpu_rows(clips_per_core=9.0, mfu=0.4)
    # VATT-B video 32x224x224 and audio 153,600 samples, DropToken 50% (benchmarks/vatt_flops.py's figures), x3 for training
    assert rows[0] == "| VATT video base + audio base, DropToken 50% | 163.5 + 115.6 | 837 | 472 | 52 |"
    assert [r.split("|")[1].split()[2] for r in rows] == ["base", "medium", "large"]
