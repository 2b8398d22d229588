"""A tiny VATT learns on the toy world, and its checkpoint goes through every benchmark family.

One short run of the quickstart VATT (``configs/quickstart/vatt.yaml``, 120 steps of 32 clips instead
of 500) on a fresh 320 + 80 video toy world is shared by the tests here: held-out retrieval must clear chance by a margin (the README-sized
run's figures are in ``docs/vatt.md``), then the checkpoint is fine-tuned at a higher resolution than
it was pretrained at, probed through its raw-waveform tower and through images tiled along time, and
queried zero-shot in S_vat, each with the configs of ``configs/vatt/benchmarks/``.
Torch runs single-threaded here: on a small shared CPU box that is several times faster.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import versanet.downstream  # noqa: F401 - registers the benchmark modules and toy data modules
from versanet.benchmark_suite import run_benchmark
from versanet.cli import run_cli
from versanet.data.toy import ToyWorldConfig, generate_toy_world

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "quickstart"
BENCH = REPO / "configs" / "vatt" / "benchmarks"
VAL = 80


@pytest.fixture(scope="module", autouse=True)
def _single_thread(cli_single_thread: None) -> None:
    """Every test here runs single-threaded (see ``cli_single_thread``)."""


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(toy world root, checkpoint, held-out retrieval results) of a 120-step quickstart VATT run."""
    base = tmp_path_factory.mktemp("vatt_toy")
    root = generate_toy_world(base / "toy", ToyWorldConfig(num_train=320, num_val=VAL, seconds=4.0, seed=5), workers=2)
    cli = run_cli([
        "fit", "--config", str(QUICKSTART / "vatt.yaml"), f"--data.init_args.root={root}", "--data.init_args.toy=null",
        "--data.init_args.num_workers=1", "--trainer.max_epochs=12", "--trainer.check_val_every_n_epoch=12",
        "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={base / 'pretrain'}",
        "--trainer.callbacks=[{class_path: lightning.pytorch.callbacks.ModelCheckpoint, init_args: {save_last: true}}]",
        "--model.init_args.warmup_steps=20",
    ])
    results = {(r["query"], r["gallery"]): r for r in cli.model.retrieval_results}
    return Path(root), Path(cli.trainer.checkpoint_callback.last_model_path), results


@pytest.mark.slow
def test_a_short_vatt_run_learns_cross_modal_retrieval(pretrained: tuple[Path, Path, dict]) -> None:
    _, _, results = pretrained
    chance = 1 / VAL
    text_video, video_audio = results[("text", "video")], results[("video", "audio")]
    print({pair: {k: round(r[k], 3) for k in ("R@1", "R@10", "MedR")} for pair, r in results.items()}, f"chance R@1 {chance:.4f}")
    assert text_video["n"] == VAL
    # 120 steps: colour and some of shape and motion are learned (the 500-step quickstart's figures are in docs/vatt.md)
    assert text_video["R@10"] >= 3 * 10 * chance and text_video["MedR"] <= VAL / 4
    assert video_audio["R@10"] >= 2 * 10 * chance and video_audio["MedR"] <= VAL / 3


@pytest.mark.slow
def test_vatt_benchmarks_fine_tune_at_a_new_resolution_and_probe_audio_images_and_text(pretrained: tuple[Path, Path, dict], tmp_path: Path) -> None:
    root, ckpt, _ = pretrained
    common = [f"--data.init_args.root={root}"]

    # fine-tuning at 72x72: 9x9 spatial tokens against the 7x7 tables of pretraining
    from versanet.downstream.finetune import FineTuneModule

    backbone = FineTuneModule(str(ckpt)).backbone.train()
    assert backbone.pos_embedding_lookup.buckets == (2, 7, 7)
    tokens = backbone.forward_tokens(torch.rand(2, 3, 8, 72, 72) * 2 - 1)
    assert tokens.grid == (2, 9, 9) and tokens.tokens.shape[1] == 162
    tuned = run_benchmark(BENCH / "toy_finetune.yaml", str(ckpt), tmp_path / "finetune", [*common, "--trainer.max_epochs=1", "--trainer.limit_train_batches=3"])
    assert 0.0 <= tuned["test/top1"] <= 1.0
    # frozen probes on colour labels (5 classes): the timbre of the raw waveform, a still frame tiled along time
    colour = [*common, "--data.init_args.label_key=colour", f"--model.init_args.cache_dir={tmp_path / 'cache'}"]
    audio = run_benchmark(BENCH / "toy_audio.yaml", str(ckpt), tmp_path / "audio", colour)
    image = run_benchmark(BENCH / "toy_image.yaml", str(ckpt), tmp_path / "image", colour)
    assert audio["test/top1"] >= 0.4 and image["test/top1"] >= 0.6  # chance 0.2
    zero_shot = run_benchmark(BENCH / "toy_retrieval.yaml", str(ckpt), tmp_path / "retrieval", common)
    assert zero_shot["test/text_to_video/R@10"] >= 2 * 10 / VAL
