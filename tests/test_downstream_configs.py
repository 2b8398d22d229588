"""Benchmark configs and suites: every config parses, suites resolve, the table puts the papers' numbers beside ours."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import versanet.data.datasets  # noqa: F401 - registers the benchmark data modules
import versanet.downstream  # noqa: F401 - registers the benchmark modules
from versanet.benchmark_suite import PAPER_RESULTS, SuiteError, find_suite, format_table, load_suite
from versanet.cli import run_cli
from versanet.downstream.common import edge_path, shared_space
from versanet.graph import FAC, Disjoint, GraphError, Shared

BENCH = Path(__file__).resolve().parents[1] / "configs" / "benchmarks"
CONFIGS = sorted(p.name for p in BENCH.glob("*.yaml"))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_benchmark_config_parses(name: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    command = "test" if any(k in name for k in ("zeroshot", "retrieval", "steps", "crosstask")) else "fit"
    with pytest.raises(SystemExit) as exit_info:
        run_cli([command, "--config", str(BENCH / name), "--print_config"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "checkpoint:" in out and "class_path: versanet." in out


def test_suites_resolve_and_every_paper_benchmark_key_exists() -> None:
    toy, mmv = load_suite(find_suite("toy")), load_suite(find_suite("mmv"))
    assert {e["key"] for e in toy["benchmarks"]} >= {"toy_linear_shape", "toy_lowshot_colour", "toy_zeroshot", "toy_steps", "toy_finetune_shape"}
    keys = {e["key"] for e in mmv["benchmarks"]}
    reported = {k for numbers in PAPER_RESULTS.values() for k in numbers}
    # VATT fine-tunes on AudioSet and ImageNet: other protocols than our frozen-feature ones, listed but not run
    assert reported - {"audioset_finetune", "imagenet_finetune"} <= keys
    with pytest.raises(SuiteError, match="no suite named"):
        find_suite("nope")


def test_table_puts_the_papers_numbers_beside_ours() -> None:
    suite = load_suite(find_suite("mmv"))
    row = {"name": "ours", "checkpoint": "/x.ckpt", "init": "pretrained", "results": {
        "ucf101_linear": {"top-1": {"value": 80.25, "splits": {"1": 80.0, "2": 80.5, "3": 80.25}}},
        "msrvtt_zeroshot": {"R@10": {"value": 25.0}, "MedR": {"value": 60.0}},
        "crosstask": {"_error": "FileNotFoundError: data/crosstask/crosstask_release/tasks_primary.txt"},
    }}
    table = format_table({"suite": suite, "rows": [row]})
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("| Model"))
    ours = next(line for line in lines if line.startswith("| ours"))
    cells = dict(zip([c.strip() for c in header.split("|")[1:-1]], [c.strip() for c in ours.split("|")[1:-1]]))
    assert cells["UCF101 lin."] == "80.2" and cells["MSR-VTT T->V R@10"] == "25.0" and cells["MSR-VTT T->V MedR"] == "60"
    assert cells["CrossTask recall"] == "err" and cells["HMDB51 lin."] == "-"
    s3dg = next(line for line in lines if line.startswith("| MMV FAC S3D-G (paper)"))
    assert "89.6" in s3dg and "68.0" in s3dg
    vatt = next(line for line in lines if line.startswith("| VATT (paper)"))
    assert "29.7" in vatt and "| 49 |" in vatt
    assert "split 1 80.0, split 2 80.5, split 3 80.2" in table and "tasks_primary.txt" in table


def test_joint_space_of_two_modalities_follows_the_graph() -> None:
    fac = FAC(va_dim=8, vat_dim=4)
    assert shared_space(fac, "text", "video") == "vat" and shared_space(fac, "video", "audio") == "va"
    assert [e.key for e in edge_path(fac, "video", "vat")] == ["video->va", "video@va->vat"]
    # FAC has no audio-text edge: audio reaches S_vat through the video's fine-to-coarse head (MMV's eval-time trick)
    assert [e.key for e in edge_path(fac, "audio", "vat")] == ["audio->va", "video@va->vat"]
    assert shared_space(fac, "text", "audio") == "vat"
    with pytest.raises(GraphError, match="does not reach"):
        edge_path(fac, "audio", "vat", borrow=False)
    assert shared_space(Shared(dim=8), "text", "audio") == "vat"
    assert shared_space(Disjoint(va_dim=8, vt_dim=4), "text", "video") == "vt"


def test_banked_heads_are_independent_classifiers() -> None:
    from versanet.downstream.frozen import BankedClassifier

    bank = BankedClassifier(3, 5, 4, hidden_dim=6)
    x = torch.randn(7, 5)
    out = bank(x)
    assert out.shape == (7, 3, 4)
    for m in range(3):  # member m is its own MLP
        h = torch.relu(x @ bank.weights[0][m].T + bank.biases[0][m])
        assert torch.allclose(out[:, m], h @ bank.weights[1][m].T + bank.biases[1][m], atol=1e-6)
    assert torch.allclose(bank.penalty(), sum(w.pow(2).flatten(1).sum(1) for w in bank.weights))
