"""Shared fixtures: a small toy world on disk (real mp4 files with audio), generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from versanet import registry
from versanet.data.toy import ToyWorldConfig, generate_toy_world

registry.load_builtin()

SMALL_TOY = ToyWorldConfig(num_train=64, num_val=16, seconds=4.0)


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64 + 16 video toy world (4 s clips) shared by the data, CLI and training tests."""
    root = tmp_path_factory.mktemp("toy")
    generate_toy_world(root, SMALL_TOY, workers=2)
    return root


@pytest.fixture
def one_thread():
    """Tiny inputs: one intra-op thread is as fast, and much faster on a shared, busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cli_single_thread():
    """For modules that run `versanet` commands in process: one torch thread (much faster on a small shared CPU box)
    and no pytest arguments in sys.argv (LightningCLI warns when it sees both)."""
    import sys

    threads, argv = torch.get_num_threads(), sys.argv
    torch.set_num_threads(1)
    sys.argv = sys.argv[:1]
    yield
    torch.set_num_threads(threads)
    sys.argv = argv
