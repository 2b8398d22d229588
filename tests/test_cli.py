"""The `versanet` command: list, print_config, config errors, fit/test on every quickstart graph, plugins, DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from versanet.cli import main
from versanet.models import PretrainModule

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "quickstart"
PLUGIN_CONFIG = REPO / "plugins" / "versanet-motion" / "configs" / "four_modalities.yaml"


def tiny_run_args(toy_root: Path, out: Path, steps: int = 3) -> list[str]:
    """Overrides that shrink a quickstart config to a few steps on the session's toy world."""
    return [
        f"--data.init_args.root={toy_root}", "--data.init_args.toy=null", "--data.init_args.num_workers=0",
        "--data.init_args.batch_size=8", f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={out}",
        "--trainer.callbacks=[]",
    ]


def logged_scalars(folder: Path) -> dict[str, list[float]]:
    """Every scalar curve in the TensorBoard event files under ``folder``: tag -> values in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves: dict[str, list[float]] = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            curves.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return curves


LEARNED_TEMPERATURES = """
model:
  init_args:
    graph:
      class_path: ModalityGraph
      init_args:
        spaces: {va: 32, vat: 16}
        edges:
          - {source: video, space: va, head: {class_path: MLPBNHead}}
          - {source: video@va, space: vat, head: {class_path: ReLULinearBNHead}}
          - {source: audio, space: va}
          - {source: text, space: vat}
        terms:
          - {space: va, a: video, b: audio, loss: {class_path: NCELoss, init_args: {learnable_temperature: true}}}
          - {space: vat, a: video, b: text, loss: {class_path: MILNCELoss, init_args: {learnable_temperature: true}}}
"""


def test_fit_writes_tensorboard_curves_of_every_term_temperature_and_retrieval(toy_root: Path, tmp_path: Path) -> None:
    """The default logger is TensorBoard (`tensorboard --logdir runs/`): one curve per loss term, learned temperature and R@k."""
    overlay = tmp_path / "learned_temperatures.yaml"
    overlay.write_text(LEARNED_TEMPERATURES)
    main(["fit", "--config", str(QUICKSTART / "fac.yaml"), "--config", str(overlay), *tiny_run_args(toy_root, tmp_path, steps=4),
          "--trainer.log_every_n_steps=1", "--trainer.val_check_interval=2"])
    assert next(tmp_path.rglob("events.out.tfevents.*")).parent.name == "version_0"  # lightning_logs/version_0 beside checkpoints/
    curves = logged_scalars(tmp_path)
    for term in ("video_audio@va", "video_text@vat"):
        assert len(curves[f"train/{term}"]) == 4 and len(curves[f"val/{term}"]) == 2
        temperature = curves[f"train/{term}/temperature"]
        assert temperature[0] == pytest.approx(0.07, rel=0.05) and temperature[-1] != temperature[0]  # learned: it moves
    assert len(curves["train/loss"]) == 4
    for pair in ("text_to_video@vat", "video_to_text@vat", "audio_to_video@va", "video_to_audio@va"):
        for metric in ("R@1", "R@5", "R@10", "MedR", "MeanR"):
            assert len(curves[f"val/{pair}/{metric}"]) == 2, (pair, metric)


def test_list_prints_every_kind_with_descriptions(capsys: pytest.CaptureFixture) -> None:
    main(["list"])
    out = capsys.readouterr().out
    for header in ("encoders:", "heads:", "losses:", "graphs:", "transforms:", "datasets:"):
        assert header in out
    assert "SmallVideoCNN" in out and "Small 3D CNN on RGB clips" in out
    assert "MotionCNN" in out and "plugins: motion (versanet_motion)" in out


def build(*args: str):  # noqa: ANN201 - VersanetCLI
    """What `versanet fit ARGS` would train, built but not run: the CLI with its model, data module and trainer."""
    from lightning.pytorch import LightningDataModule, LightningModule

    from versanet.cli import VersanetCLI

    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        return VersanetCLI(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True, args=list(args), run=False)
    finally:
        sys.argv = argv


@pytest.mark.parametrize(("name", "spaces"), [("fac", {"va": 128, "vat": 64}), ("shared", {"vat": 128}), ("disjoint", {"va": 128, "vt": 64})])
def test_quickstart_configs_build_what_they_state(name: str, spaces: dict[str, int], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:  # --print_config resolves every default without building anything
        main(["fit", "--config", str(QUICKSTART / f"{name}.yaml"), "--print_config"])
    assert exit_info.value.code in (0, None) and "class_path: versanet.encoders.small.SmallVideoCNN" in capsys.readouterr().out
    cli = build("--config", str(QUICKSTART / f"{name}.yaml"))
    model = cli.model
    assert model.graph.name == name and model.graph.spaces == spaces
    for edge in model.graph.edges:  # each head maps its source's width to its space's
        source = model.encoders[edge.source].out_dim if "@" not in edge.source else spaces[edge.source.split("@")[1]]
        out = model.heads[edge.key](torch.randn(4, source)).shape
        assert out == (4, spaces[edge.space]), edge.key
    assert {t.name: float(t.loss.temperature) for t in model.graph.terms} == pytest.approx({t.name: 0.07 for t in model.graph.terms})
    assert cli.trainer.max_epochs == 12 and model.hparams.warmup_steps == 40 and cli.datamodule.transforms["video"].crop == 56


def test_unknown_class_path_fails_before_training_with_close_matches(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((QUICKSTART / "fac.yaml").read_text().replace("class_path: SmallVideoCNN", "class_path: SmallVideoCN"))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(bad)])
    message = str(exit_info.value.code)
    assert "bad.yaml: model.init_args.encoders.video" in message
    assert "did you mean: SmallVideoCNN" in message


def test_bad_graph_fails_before_training(toy_root: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "bad_graph.yaml"
    cfg.write_text((QUICKSTART / "fac.yaml").read_text().replace("class_path: FAC\n      init_args: {va_dim: 128, vat_dim: 64}", "class_path: ModalityGraph\n      init_args: {spaces: {va: 8}, edges: [{source: video, space: va}, {source: audio, space: va}], terms: [{space: vt, a: video, b: text}]}"))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(cfg), *tiny_run_args(toy_root, tmp_path / "run")])
    assert str(exit_info.value.code) == "versanet: error: loss term video_text@vt names unknown space 'vt'; spaces are: va"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["fac", "shared", "disjoint"])
def test_quickstart_configs_fit_and_the_checkpoint_loads_back(name: str, toy_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main(["fit", "--config", str(QUICKSTART / f"{name}.yaml"), *tiny_run_args(toy_root, tmp_path)])
    ckpts = sorted(tmp_path.rglob("*.ckpt"))
    assert len(ckpts) == 1
    model = PretrainModule.load_from_checkpoint(ckpts[0], map_location="cpu")  # no arguments: the config is in the checkpoint
    assert model.graph.name == name
    state = torch.load(ckpts[0], map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    capsys.readouterr()
    main(["test", "--config", str(QUICKSTART / f"{name}.yaml"), *tiny_run_args(toy_root, tmp_path / "test"), f"--ckpt_path={ckpts[0]}", "--trainer.limit_test_batches=2"])
    out = capsys.readouterr().out
    assert "test/text_to_video@" in out and "R@1" in out


def test_plugin_modality_in_a_four_modality_graph(toy_root: Path, tmp_path: Path) -> None:
    main(["fit", "--config", str(PLUGIN_CONFIG), *tiny_run_args(toy_root, tmp_path), "--trainer.limit_val_batches=2", "--trainer.val_check_interval=3", "--trainer.log_every_n_steps=1"])
    model = PretrainModule.load_from_checkpoint(next(tmp_path.rglob("*.ckpt")), map_location="cpu")
    assert type(model.encoders["motion"]).__name__ == "MotionCNN"
    summary = model.graph.summary({m: e.out_dim for m, e in model.encoders.items()}, model.heads)
    assert "motion --MLPBNHead--> va [64 -> 128]" in summary and "term motion_audio@va: NCELoss(motion, audio) in va, weight 0.5" in summary
    tags = logged_scalars(tmp_path)
    assert "val/motion_to_audio@va/R@1" in tags and "train/motion_audio@va" in tags


@pytest.mark.slow
def test_ddp_two_cpu_processes_fit_the_toy_config(toy_root: Path, tmp_path: Path) -> None:
    """`Trainer(strategy="ddp", accelerator="cpu", devices=2)` via the CLI (Lightning relaunches the command per rank)."""
    cmd = [sys.executable, "-m", "versanet.cli", "fit", "--config", str(QUICKSTART / "fac.yaml"), *tiny_run_args(toy_root, tmp_path, steps=4),
           "--trainer.strategy=ddp", "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.limit_val_batches=2", "--trainer.val_check_interval=4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "`Trainer.fit` stopped: `max_steps=4` reached" in proc.stderr + proc.stdout
    assert "torch has no CPU SyncBatchNorm" in proc.stderr + proc.stdout
    assert "val/text_to_video@vat/R@1" in logged_scalars(tmp_path)
