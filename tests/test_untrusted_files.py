"""A crafted file never runs code: every command that takes a path refuses a malicious pickle, naming the file.

The payload's ``__reduce__`` makes unpickling call ``open(marker, "w")``: if any load unpickled it
with ``weights_only=False`` the marker file would appear. ``test_the_payload_runs_when_unpickled``
shows it does, so every other test here would fail on a loader that unpickles.
Entry points covered (every path a user can hand versanet): ``--model.init_args.checkpoint`` of each
benchmark family and of ``DeflationRecalibration``, ``--model.init_args.image_encoder``,
``versanet benchmark --ckpt`` and ``--overrides``, ``versanet deflate``, ``versanet weights convert``
(a PyTorch release, a Haiku ``.npz``), ``versanet fit/test --ckpt_path``, the frozen-feature cache,
word2vec subset caches, and a weights-only checkpoint whose config names a class from a module
versanet has not imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from versanet.checkpoint import CheckpointError, load_pretrained
from versanet.cli import main

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "configs" / "benchmarks"


class Payload:
    """Unpickling this calls ``open(marker, "w")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (open, (str(self.marker), "w"))


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Path]:
    """(a malicious file laid out like a checkpoint, the marker its payload would create)."""
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Payload(marker)}, "format": "versanet.image_encoder"}, evil)
    return evil, marker


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small, honest pretraining checkpoint (save_pretrained), for commands that need one beside the crafted file."""
    from test_downstream_training import write_small_checkpoint

    return write_small_checkpoint(tmp_path_factory.mktemp("good") / "pretrain.ckpt")


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # LightningCLI must not see pytest's arguments


def refused(command: list[str], evil: Path, marker: Path) -> str:
    """Run a `versanet` command in-process; it must fail with a message naming ``evil``, without running the payload."""
    with pytest.raises((SystemExit, CheckpointError)) as info:
        main(command)
    message = str(info.value.code if isinstance(info.value, SystemExit) else info.value)
    assert not marker.exists(), f"the payload ran: {command}"
    assert str(evil) in message, message
    return message


def test_the_payload_runs_when_unpickled(crafted: tuple[Path, Path]) -> None:
    evil, marker = crafted
    torch.load(evil, weights_only=False)  # what deflation.py did with image-encoder files
    assert marker.exists()


@pytest.mark.parametrize("config", ["toy_linear.yaml", "toy_finetune.yaml", "toy_retrieval.yaml", "toy_steps.yaml", "toy_audio.yaml", "toy_image.yaml"])
def test_benchmark_checkpoint_argument(config: str, crafted: tuple[Path, Path]) -> None:
    evil, marker = crafted
    command = "test" if "retrieval" in config or "steps" in config else "fit"
    message = refused([command, "--config", str(BENCH / config), f"--model.init_args.checkpoint={evil}"], evil, marker)
    assert "was refused" in message and "tensors and plain data" in message


def test_image_encoder_argument(crafted: tuple[Path, Path], good_checkpoint: Path) -> None:
    evil, marker = crafted
    refused(["fit", "--config", str(BENCH / "toy_image.yaml"), f"--model.init_args.checkpoint={good_checkpoint}",
             "--model.init_args.method=deflated", f"--model.init_args.image_encoder={evil}"], evil, marker)


def test_benchmark_command_ckpt_and_overrides(crafted: tuple[Path, Path], good_checkpoint: Path, tmp_path: Path) -> None:
    evil, marker = crafted
    refused(["benchmark", "--ckpt", str(evil), "--suite", "toy", "--only", "[toy_linear_shape]", "--strict", "true",
             "--output", str(tmp_path / "a")], evil, marker)
    refused(["benchmark", "--ckpt", str(good_checkpoint), "--suite", "toy", "--only", "[toy_image_shape]", "--strict", "true",
             "--output", str(tmp_path / "b"), "--overrides", f"[--model.init_args.method=deflated,--model.init_args.image_encoder={evil}]"],
            evil, marker)


def test_deflation_commands(crafted: tuple[Path, Path]) -> None:
    evil, marker = crafted
    refused(["deflate", str(evil), str(evil.with_name("out.pt"))], evil, marker)
    refused(["fit", "--config", str(REPO / "configs" / "deflation" / "recalibrate_toy.yaml"), f"--model.init_args.checkpoint={evil}"], evil, marker)
    from versanet.deflation import load_image_encoder

    with pytest.raises(CheckpointError, match=f"image encoder file {evil} was refused"):
        load_image_encoder(evil)
    assert not marker.exists()


def test_weight_converters(crafted: tuple[Path, Path], tmp_path: Path) -> None:
    import numpy as np

    from versanet.weights.layout import ConversionError

    evil, marker = crafted
    refused(["weights", "convert", "--from", "milnce_s3d", str(evil), str(tmp_path / "out.ckpt")], evil, marker)
    npz = tmp_path / "evil.npz"
    np.savez(npz, **{"s3d/conv/w": np.array([Payload(marker)], dtype=object)})  # an object array is a pickle inside the npz
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    with pytest.raises(ConversionError, match=f"{npz}: not a numpy .npz of plain arrays"):
        main(["weights", "convert", "--from", "mmv_haiku_npz", str(npz), str(tmp_path / "out.ckpt"), "--vocab", str(tmp_path / "vocab.txt")])
    assert not marker.exists()


@pytest.mark.parametrize("command", ["test", "fit"])
def test_ckpt_path_of_lightning_commands(command: str, crafted: tuple[Path, Path], toy_root: Path, tmp_path: Path) -> None:
    from test_cli import tiny_run_args

    evil, marker = crafted
    message = refused([command, "--config", str(REPO / "configs" / "quickstart" / "fac.yaml"), *tiny_run_args(toy_root, tmp_path),
                       f"--ckpt_path={evil}"], evil, marker)
    assert "was refused" in message and "GLOBAL io.open" in message
    refused([command, "--config", str(REPO / "configs" / "quickstart" / "fac.yaml"), *tiny_run_args(toy_root, tmp_path),
             f"--ckpt_path={evil}", "--weights_only=false"], evil, marker)
    with pytest.raises(SystemExit, match="--weights_only false is refused"):  # asking for an unsafe load is refused before any data is read
        main([command, "--config", str(REPO / "configs" / "quickstart" / "fac.yaml"), *tiny_run_args(toy_root, tmp_path),
              f"--ckpt_path={tmp_path / 'other.ckpt'}", "--weights_only=false"])


def test_caches(crafted: tuple[Path, Path], tmp_path: Path) -> None:
    from versanet.downstream.features import FeatureCache, describe_cache
    from versanet.text.word2vec import Word2VecFormatError, Word2VecSubset

    evil, marker = crafted
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "k.pt").write_bytes(evil.read_bytes())
    with pytest.raises(CheckpointError, match="feature cache file .*k.pt was refused"):
        FeatureCache(cache).load("k")
    with pytest.raises(CheckpointError, match="k.pt was refused"):
        describe_cache(cache / "k.pt")
    with pytest.raises(Word2VecFormatError, match="evil.ckpt"):
        Word2VecSubset.load(evil)
    assert not marker.exists()


def test_a_weights_only_checkpoint_may_not_name_code_to_import(good_checkpoint: Path, tmp_path: Path) -> None:
    data = torch.load(good_checkpoint, weights_only=True)
    data["hyper_parameters"]["encoders"]["video"]["class_path"] = "antigravity.Encoder"  # importing it would open a browser
    bad = tmp_path / "names_a_module.ckpt"
    torch.save(data, bad)
    with pytest.raises(CheckpointError, match="encoders.video.class_path names 'antigravity.Encoder'"):
        load_pretrained(bad)
    assert "antigravity" not in sys.modules
    assert load_pretrained(good_checkpoint).checkpoint_config["graph"]["class_path"] == "FAC"
