"""Benchmark configs and suites: each suite entry composes its configs into the documented values, the table puts the papers' numbers beside ours."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest
import yaml

import versanet.data.datasets  # noqa: F401 - registers the benchmark data modules
import versanet.downstream  # noqa: F401 - registers the benchmark modules
from versanet.benchmark_suite import PAPER_RESULTS, SuiteError, find_suite, format_table, load_suite
from versanet.cli import run_cli
from versanet.downstream.common import edge_path, shared_space
from versanet.graph import FAC, Disjoint, GraphError, Shared

BENCH = Path(__file__).resolve().parents[1] / "configs" / "benchmarks"
CONFIGS = sorted(p.name for p in BENCH.glob("*.yaml"))


def resolved(configs: list[str], command: str = "fit") -> dict:
    """The fully resolved config of ``versanet <command> --config A --config B ...`` (what LightningCLI would run)."""
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stdout(out):
        run_cli([command, *(a for c in configs for a in ("--config", c)), "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(out.getvalue())


def lookup(config: dict, dotted: str):
    for key in dotted.split("."):
        config = config[key]
    return config


# Per suite entry, resolved values that come from different files of the composition: a preset value the protocol must
# keep, and a protocol value that must override the preset's (a wrong order, a replaced section or a missed file changes one).
COMPOSED = {
    "ucf101_linear": {"data.class_path": "versanet.data.datasets.UCF101DataModule", "data.init_args.fps": 12.5, "data.init_args.split": 1,
                      "data.init_args.transforms.video.init_args.crop": 200, "data.init_args.val_fraction": 0.0, "model.init_args.train_views": 10},
    "hmdb51_linear": {"data.class_path": "versanet.data.datasets.HMDB51DataModule", "data.init_args.root": "data/hmdb51",
                      "data.init_args.transforms.video.init_args.crop": 200, "model.class_path": "versanet.downstream.LinearProbeModule"},
    "hmdb51_finetune": {"data.init_args.eval_crops": 3, "data.init_args.eval_clips": 10, "data.init_args.val_fraction": 0.1, "data.init_args.batch_size": 8,
                        "data.init_args.transforms.video.init_args.color_jitter_prob": 0.8, "model.init_args.lr": 0.01, "trainer.max_epochs": 30},
    "k400_finetune": {"data.class_path": "versanet.data.datasets.KineticsDataModule", "data.init_args.root": "data/kinetics400", "model.init_args.lr": 0.005,
                      "data.init_args.eval_clips": 10, "data.init_args.eval_crops": 3, "data.init_args.val_fraction": 0.01, "data.init_args.batch_size": 8,
                      "trainer.max_epochs": 30, "trainer.default_root_dir": "runs/benchmarks/k400_finetune"},
    "k600_linear": {"data.init_args.root": "data/kinetics600", "data.init_args.fps": 12.5, "data.init_args.eval_crops": 1, "model.init_args.solver": "adam"},
    "esc50_linear": {"data.init_args.transforms.audio.init_args.sample_rate": 48000, "data.init_args.eval_clips": 10, "model.init_args.modality": "audio"},
    "audioset_mlp": {"data.init_args.val_fraction": 0.0, "data.init_args.train_segments": "balanced_train_segments.csv", "model.init_args.head": "mlp"},
    "voc_linear_naive": {"data.init_args.root": "data/VOCdevkit/VOC2007", "data.init_args.transforms.image.init_args.scale": [0.5, 1.0]},
    "imagenet_linear_naive": {"data.init_args.batch_size": 64, "data.init_args.transforms.image.init_args.flip_prob": 0.5, "model.init_args.solver": "adam"},
    "youcook2_zeroshot": {"data.init_args.eval_clips": 4, "model.init_args.gallery": ["video"],
                          "data.init_args.transforms.text.class_path": "versanet.text.Word2VecTokenize"},
    "msrvtt_zeroshot_va": {"data.init_args.root": "data/msrvtt", "model.init_args.gallery": ["video", "audio"], "data.init_args.audio_rate": 48000,
                           "data.init_args.transforms.audio.init_args.n_mels": 80, "data.init_args.transforms.text.init_args.remove_stop_words": True},
    "crosstask": {"data.init_args.num_frames": 16, "data.init_args.transforms.video.init_args.crop": 200},
    "toy_lowshot_colour": {"model.init_args.train_per_class": 1, "model.init_args.train_views": 1, "data.init_args.label_key": "colour",
                           "data.init_args.eval_clips": 3, "data.init_args.transforms.video.init_args.crop": 56, "trainer.max_epochs": 2},
    "toy_zeroshot_va": {"model.init_args.gallery": ["video", "audio"], "data.init_args.audio_rate": 16000, "data.init_args.fps": 5.0,
                        "data.init_args.transforms.text.init_args.num_candidates": 3},
}
TRANSFORMS = {"crosstask": {"video", "text"}, "youcook2_zeroshot": {"video", "text"}, "msrvtt_zeroshot_va": {"video", "audio", "text"}}
ENTRIES = [(suite, e) for suite in ("toy", "mmv") for e in load_suite(find_suite(suite))["benchmarks"]]


@pytest.mark.parametrize(("suite", "entry"), ENTRIES, ids=[f"{s}:{e['key']}" for s, e in ENTRIES])
def test_suite_entries_compose_as_documented(suite: str, entry: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    zero_shot = any(k in entry["key"] for k in ("zeroshot", "steps", "crosstask"))
    config = resolved(entry["config"], "test" if zero_shot else "fit")
    assert lookup(config, "model.class_path").startswith("versanet.downstream.") and lookup(config, "data.class_path").startswith("versanet.")
    for dotted, value in COMPOSED.get(entry["key"], {}).items():
        assert lookup(config, dotted) == value, (entry["key"], dotted)
    if entry["key"] in TRANSFORMS:  # a later file replaces the whole mapping: the preset's extra transforms are gone
        assert set(lookup(config, "data.init_args.transforms")) == TRANSFORMS[entry["key"]]


def test_every_benchmark_config_is_used_by_a_suite() -> None:
    used = {Path(c).name for _, e in ENTRIES for c in e["config"]}
    assert set(CONFIGS) <= used, set(CONFIGS) - used


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
