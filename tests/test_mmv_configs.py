"""The MMV paper configs: composed from shared data files, resolved values asserted, and run as they are on the released
layouts (HowTo100M caption.json + videos, AudioSet CSVs, their mix) with only the backbones' widths shrunk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from fixtures_data import MediaCache, make_audioset, make_howto100m, write_word2vec_bin
from versanet.cli import main
from versanet.data.check import data_check

REPO = Path(__file__).resolve().parents[1]
MMV = sorted((REPO / "configs" / "mmv").glob("*.yaml"))
IDS = [p.stem for p in MMV]
BENCHMARKS = sorted((REPO / "configs" / "benchmarks").glob("*.yaml"))


def resolved(capsys: pytest.CaptureFixture, *configs: Path | str, extra: tuple[str, ...] = ()) -> dict:
    args = ["fit"]
    for config in configs:
        args += ["--config", str(config)]
    with pytest.raises(SystemExit) as info:
        main([*args, *extra, "--print_config"])
    assert info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def short(class_path: str) -> str:
    return class_path.rsplit(".", 1)[-1]


@pytest.mark.parametrize("path", MMV, ids=IDS)
def test_each_mmv_config_resolves_to_the_shared_data_trainer_and_checkpoint(path: Path, capsys: pytest.CaptureFixture) -> None:
    config = resolved(capsys, path)
    data = config["data"]["init_args"]
    assert short(config["data"]["class_path"]) == "MixedDataModule" and data["proportions"] == [0.5, 0.5]
    htm, audioset = data["datamodules"]
    assert short(htm["class_path"]) == "HowTo100MDataModule" and short(audioset["class_path"]) == "AudioSetPretrainDataModule"
    assert htm["init_args"]["captions"] == "caption.json" and htm["init_args"]["train_split"] is None  # the release ships no split files
    assert audioset["init_args"]["train_segments"] == "unbalanced_train_segments.csv"
    for child in (htm, audioset):
        assert {k: child["init_args"][k] for k in ("num_frames", "fps", "audio_rate", "short_side")} == {"num_frames": 32, "fps": 10.0, "audio_rate": 48000, "short_side": 224}
    transforms = htm["init_args"]["transforms"]  # shared by both corpora (data.transforms: null)
    assert data["transforms"] is None and short(transforms["video"]["class_path"]) == "VideoClipTransform"
    encoders = config["model"]["init_args"]["encoders"]
    if "text" in encoders:
        assert short(encoders["text"]["class_path"]) == "Word2VecTextEncoder" and short(transforms["text"]["class_path"]) == "Word2VecTokenize"
        assert data["modalities"] is None
    else:
        assert data["modalities"] == ["video", "audio"]
    trainer = config["trainer"]
    assert {k: trainer[k] for k in ("max_steps", "precision", "strategy", "val_check_interval", "limit_val_batches")} == {
        "max_steps": 500000, "precision": "bf16-mixed", "strategy": "ddp", "val_check_interval": 10000, "limit_val_batches": 50}
    (checkpoint,) = [c for c in trainer["callbacks"] if short(c["class_path"]) == "ModelCheckpoint"]
    assert checkpoint["init_args"]["dirpath"] == f"runs/mmv-{path.stem}/checkpoints" and checkpoint["init_args"]["save_last"] is True
    assert trainer["default_root_dir"] == f"runs/mmv-{path.stem}"


def test_the_benchmarks_default_checkpoint_is_written_by_an_mmv_config() -> None:
    written = {f"runs/mmv-{p.stem}/checkpoints/last.ckpt" for p in MMV}
    defaults = {yaml.safe_load(p.read_text())["model"]["init_args"].get("checkpoint") for p in BENCHMARKS}
    mmv_defaults = {d for d in defaults if d and d.startswith("runs/mmv")}
    assert mmv_defaults and mmv_defaults <= written


@pytest.mark.parametrize("preset", ["howto100m", "howto100m_audioset"])
def test_the_documented_data_recipe_composes_with_the_mmv_configs(preset: str, capsys: pytest.CaptureFixture) -> None:
    """`versanet fit --config configs/mmv/fac_s3dg.yaml --config configs/data/<preset>.yaml`: the text pipeline matches the text encoder."""
    config = resolved(capsys, REPO / "configs" / "mmv" / "fac_s3dg.yaml", REPO / "configs" / "data" / f"{preset}.yaml")
    data = config["data"]
    first = data["init_args"]["datamodules"][0] if "datamodules" in data["init_args"] else data
    assert short(first["class_path"]) == "HowTo100MDataModule"
    assert short(first["init_args"]["transforms"]["text"]["class_path"]) == "Word2VecTokenize"
    assert short(config["model"]["init_args"]["encoders"]["text"]["class_path"]) == "Word2VecTextEncoder"


# ------------------------------------------------------------------ running them on the released layouts
SHRUNK = {  # the same backbone classes, narrow and shallow: the configs run in seconds on a CPU
    "S3DG": {"width_multiplier": 0.125},
    "TSMResNet50": {"layers": [1, 1, 1, 1], "channels": [16, 32, 64, 128], "stem_chs": 8},
    "TSMResNet50x2": {"layers": [1, 1, 1, 1], "channels": [16, 32, 64, 128], "stem_chs": 8},
    # R(2+1)D-18 has no width argument: full width on 32-frame clips costs minutes on a CPU, so its config runs with a
    # narrow S3D-G in the same place (the data, graph and heads are what this test is about; tests/test_backbones.py checks R(2+1)D)
    "R2Plus1D18": {"class_path": "S3DG", "width_multiplier": 0.125},
    "AudioResNet50": {"layers": [1, 1, 1, 1], "channels": [16, 32, 64, 128], "stem_chs": 8},
    "Word2VecTextEncoder": {"out_dim": 64},
}


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder with data/howto100m, data/audioset and data/GoogleNews-vectors-negative300.bin, where the configs look."""
    base = tmp_path_factory.mktemp("mmv_run")
    media = MediaCache(base / "_media")
    media.folder.mkdir()
    make_howto100m(base / "data" / "howto100m", media)
    make_audioset(base / "data" / "audioset", media)
    words = ["first", "chop", "onion", "then", "fry", "pan", "serve", "hot", "unused"]
    write_word2vec_bin(base / "data" / "GoogleNews-vectors-negative300.bin", words)
    return base


def test_data_check_reads_the_mix_of_an_mmv_config_relative_to_the_config(released: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`versanet data check configs/mmv/fac_s3dg.yaml` from any folder: the nested data file is found next to the config."""
    monkeypatch.chdir(released)
    report = data_check(str(REPO / "configs" / "mmv" / "fac_s3dg.yaml"), workers=1)
    assert report.name.startswith("MixedDataModule of HowTo100MDataModule under data/howto100m + AudioSetPretrainDataModule under data/audioset")
    assert report.files == 4 + 4 and report.count("unreadable") == 0 and report.count("missing") == 0


@pytest.mark.slow
@pytest.mark.parametrize("path", MMV, ids=IDS)
def test_each_mmv_config_trains_as_it_is_on_the_released_layouts(path: Path, released: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> None:  # noqa: ANN001
    monkeypatch.chdir(released)
    config = yaml.safe_load(path.read_text())
    encoders = config["model"]["init_args"]["encoders"]
    small = {}
    for m, e in encoders.items():
        shrunk = dict(SHRUNK[e["class_path"]])
        class_path = shrunk.pop("class_path", e["class_path"])
        small[m] = {"class_path": class_path, "init_args": shrunk if class_path != e["class_path"] else {**e.get("init_args", {}), **shrunk}}
    overlay = tmp_path / "shrink.yaml"
    overlay.write_text(yaml.safe_dump({"model": {"init_args": {"encoders": small}}}))
    main([
        "fit", "--config", str(path), "--config", str(overlay),
        "--trainer.max_steps=2", "--trainer.precision=32-true", "--trainer.strategy=auto", "--trainer.devices=1", "--trainer.accelerator=cpu",
        "--trainer.limit_val_batches=1", "--trainer.val_check_interval=2", "--trainer.num_sanity_val_steps=0", "--trainer.log_every_n_steps=1",
        "--trainer.enable_progress_bar=false", "--trainer.callbacks.every_n_train_steps=1",
        "--data.init_args.batch_size=2", "--data.init_args.num_workers=0",
    ])
    last = released / "runs" / f"mmv-{path.stem}" / "checkpoints" / "last.ckpt"
    assert last.is_file()  # where the benchmarks look
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["global_step"] == 2
    loader = state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert loader["epoch"] == 0 and loader["batches"] in (0, 2)  # the loader's position, for an exact resume
    if "text" in encoders:  # the word2vec subset was built from HowTo100M's captions, under HowTo100M's root
        assert (released / "data" / "howto100m" / "word2vec" / "GoogleNews-vectors-negative300.subset.pt").is_file()
        assert not (released / "data" / "audioset" / "word2vec").exists()
