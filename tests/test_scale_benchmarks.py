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
    for row in ("bare PyAV decode (floor)", "strict floor", "read_clip", "pipeline, train, from mp4 files", "pipeline, train, from shards", "pipeline, eval"):
        assert f"| {row}" in out or row in out
    assert "load average" in out
