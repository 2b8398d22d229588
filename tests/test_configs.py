"""Every shipped config builds what it states: its model, data module and trainer are instantiated (not just
printed) and the paper configs' numbers are read back from the built objects.

Benchmark protocols and variants only make sense composed after a dataset preset; their compositions are
checked in tests/test_downstream_configs.py and the presets in tests/test_data_check.py. Building the MMV
networks (TSM-ResNet50x2 has 94M parameters) takes most of this file's ~40 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from lightning.pytorch import LightningDataModule, LightningModule

from versanet.cli import main

REPO = Path(__file__).resolve().parents[1]


def standalone(path: Path) -> bool:
    """A config that names its model and its data (a data include counts): one `--config` runs it."""
    config = yaml.safe_load(path.read_text()) or {}
    model, data = config.get("model"), config.get("data")
    return isinstance(model, dict) and "class_path" in model and (isinstance(data, str) or (isinstance(data, dict) and "class_path" in data))


STANDALONE = sorted(p for p in [*REPO.glob("configs/**/*.yaml"), *REPO.glob("plugins/*/configs/*.yaml")] if standalone(p))


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_downstream_training import write_small_checkpoint

    return write_small_checkpoint(tmp_path_factory.mktemp("configs") / "small.ckpt")


def build(*args: str):  # noqa: ANN201 - VersanetCLI
    from test_cli import build as build_cli

    return build_cli(*args)


@pytest.mark.parametrize("path", STANDALONE, ids=[str(p.relative_to(REPO)) for p in STANDALONE])
def test_config_builds(path: Path, small_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    config = yaml.safe_load(path.read_text())
    args = ["--config", str(path)]
    if "checkpoint" in (config["model"].get("init_args") or {}):
        args.append(f"--model.init_args.checkpoint={small_checkpoint}")
    cli = build(*args)
    assert isinstance(cli.model, LightningModule) and isinstance(cli.datamodule, LightningDataModule)
    assert type(cli.model).__name__ == config["model"]["class_path"].rsplit(".", 1)[-1]


@pytest.mark.parametrize("name", ["fac_s3dg", "fac_tsm50", "fac_tsm50x2", "shared_s3dg", "disjoint_s3dg", "va_s3dg", "va_r2plus1d18"])
def test_mmv_configs_build_the_paper_setting(name: str, one_thread) -> None:
    cli = build("--config", str(REPO / "configs" / "mmv" / f"{name}.yaml"))
    model, transforms = cli.model, cli.datamodule.transforms
    assert model.hparams.lr == 0.002 and model.hparams.optimizer == "adam" and cli.trainer.max_steps == 500000
    assert all(float(t.loss.temperature) == pytest.approx(0.07) for t in model.graph.terms)
    video = transforms["video"]
    assert (video.crop, video.resize, video.flip_prob) == (200, 224, 0.5) and video.short_range == (200, 268)  # scale 0.8-1.2 of 224
    audio = transforms["audio"]
    assert (audio.sample_rate, audio.n_mels, audio.mel.n_fft, audio.mel.hop_length, audio.mel.f_max) == (48000, 80, 2048, 1024, 7600.0)
    if name.startswith("fac"):
        assert model.graph.spaces == {"va": 512, "vat": 256}
    if not name.startswith("va_"):
        assert type(model.encoders["text"]).__name__ == "Word2VecTextEncoder" and model.encoders["text"].out_dim == 2048
        assert (transforms["text"].num_candidates, transforms["text"].max_tokens) == (4, 16)
    expected = {"s3dg": ("S3DG", 1024), "tsm50": ("TSMResNet50", 2048), "tsm50x2": ("TSMResNet50x2", 4096), "r2plus1d18": ("R2Plus1D18", 512)}
    cls, width = expected[name.split("_", 1)[1]]
    assert type(model.encoders["video"]).__name__ == cls and model.encoders["video"].out_dim == width


def test_a_nested_data_file_with_a_bad_name_is_caught(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("class_path: CaptionedVideoDataModul\ninit_args: {root: x, transforms: {}}\n")
    cfg = tmp_path / "main.yaml"
    cfg.write_text((REPO / "configs" / "mmv" / "va_s3dg.yaml").read_text().replace("data: ../data/modules/howto100m_audioset_va.yaml", "data: data.yaml"))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(cfg)])
    assert "data.yaml: data: unknown class_path 'CaptionedVideoDataModul'; did you mean: CaptionedVideoDataModule" in str(exit_info.value.code)


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
