"""Exact resume: a `versanet fit` killed with SIGKILL mid-epoch and resumed from last.ckpt logs the same per-step losses as an
uninterrupted run with the same seed (data order, clip windows, caption windows and augmentations included)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STEPS = 12  # 64 training videos / batch 8 = 8 batches per epoch: the run crosses an epoch boundary after the resume
KILL_AT = 5  # mid-epoch 0


def tiny_config(path: Path, toy_root: Path) -> Path:
    """The quickstart FAC config at toy size, with two loader workers and a checkpoint every step."""
    config = yaml.safe_load((REPO / "configs" / "quickstart" / "fac.yaml").read_text())
    config["trainer"].update(max_steps=STEPS, limit_val_batches=0, num_sanity_val_steps=0, log_every_n_steps=1, enable_progress_bar=False,
                             logger={"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(path.parent / "run")}},
                             callbacks=[{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                         "init_args": {"dirpath": str(path.parent / "ckpt"), "save_last": True, "every_n_train_steps": 1}}])
    config["trainer"].pop("max_epochs", None)
    encoders = config["model"]["init_args"]["encoders"]
    encoders["video"]["init_args"].update(widths=[4, 8], out_dim=16)
    encoders["audio"]["init_args"].update(widths=[4, 8], out_dim=16)
    encoders["text"]["init_args"].update(embed_dim=8, out_dim=16)
    config["model"]["init_args"]["graph"]["init_args"].update(va_dim=16, vat_dim=8)
    config["data"]["init_args"].update(root=str(toy_root), toy=None, batch_size=8, num_workers=2, num_frames=4)
    path.write_text(yaml.safe_dump(config))
    return path


def fit(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "versanet.cli", "fit", "--config", str(config), f"--trainer.default_root_dir={out}", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=out.parent)


def losses(root: Path) -> dict[int, float]:
    """``{step: train/loss}`` from the CSV logs under ``root`` (every version: a resumed run writes a new one)."""
    out: dict[int, float] = {}
    for path in sorted(root.rglob("metrics.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                if row.get("train/loss"):
                    out[int(row["step"])] = float(row["train/loss"])
    return out


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_loss_curve(toy_root: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "crash").mkdir()
    full_cfg = tiny_config(tmp_path / "full" / "config.yaml", toy_root)
    crash_cfg = tiny_config(tmp_path / "crash" / "config.yaml", toy_root)
    full = fit(full_cfg, tmp_path / "full" / "run")
    marker = tmp_path / "crash" / "paused"
    crash = fit(crash_cfg, tmp_path / "crash" / "run", f"--trainer.callbacks+=resume_helpers.PauseAt",
                f"--trainer.callbacks.step={KILL_AT}", f"--trainer.callbacks.marker={marker}")
    deadline = time.time() + 300
    while not marker.exists():
        assert crash.poll() is None, crash.stdout.read()[-3000:]
        assert time.time() < deadline, "the run never reached the pause"
        time.sleep(0.2)
    os.kill(crash.pid, signal.SIGKILL)  # a crash: nothing is flushed or saved
    crash.wait(30)
    last = tmp_path / "crash" / "ckpt" / "last.ckpt"
    assert last.is_file()
    resumed = fit(crash_cfg, tmp_path / "crash" / "run", f"--ckpt_path={last}")
    for proc in (full, resumed):
        output = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, output[-3000:]
    reference, crashed = losses(tmp_path / "full" / "run"), losses(tmp_path / "crash" / "run")
    assert sorted(reference) == list(range(STEPS))
    assert sorted(crashed) == list(range(STEPS))  # steps before the kill from the first run, the rest from the resumed one
    after = [s for s in range(KILL_AT, STEPS)]
    assert [crashed[s] for s in after] == [reference[s] for s in after], "the resumed run read other batches than the uninterrupted one"
    assert len(set(reference.values())) > STEPS // 2  # the curve moves: equal curves are not equal by accident
