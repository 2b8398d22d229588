"""Mistakes a user makes on the command line end in one line naming what to fix, never a traceback or a usage dump."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from versanet.cli import main

REPO = Path(__file__).resolve().parents[1]
FAC = REPO / "configs" / "quickstart" / "fac.yaml"


def exit_message(args: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code not in (0, None), "the command should have failed"
    return str(info.value.code)


def test_abbreviated_options_are_refused() -> None:
    """argparse would take --trainer.max_step as --trainer.max_steps (prefix matching): it must be refused instead."""
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(FAC), "--trainer.max_step", "3", "--print_config"])
    assert info.value.code not in (0, None)
    with pytest.raises(SystemExit) as info:
        main(["toy-data", "/tmp/x", "--num_tr", "3"])
    assert info.value.code not in (0, None)


def test_a_data_root_that_does_not_exist_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_corpus"
    message = exit_message(["fit", "--config", str(FAC), f"--data.init_args.root={missing}", "--data.init_args.toy=null",
                            "--trainer.max_steps=1", f"--trainer.default_root_dir={tmp_path}", "--trainer.callbacks=[]"])
    assert message.count("\n") == 0 and str(missing) in message and "does not exist" in message


@pytest.mark.slow
def test_the_command_prints_no_traceback_for_a_missing_root(tmp_path: Path) -> None:
    """The console script end to end: stderr ends with the one line, and holds no traceback."""
    missing = tmp_path / "nowhere"
    proc = subprocess.run(
        [sys.executable, "-m", "versanet.cli", "fit", "--config", str(FAC), f"--data.init_args.root={missing}", "--data.init_args.toy=null",
         "--trainer.max_steps=1", f"--trainer.default_root_dir={tmp_path}", "--trainer.callbacks=[]"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"versanet: error: CaptionedVideoDataModule: data root {missing} does not exist (set --data.init_args.root)"


def test_a_head_given_in_dim_says_so_in_one_line(tmp_path: Path) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text("""
model:
  init_args:
    graph:
      class_path: ModalityGraph
      init_args:
        spaces: {va: 16}
        edges:
          - {source: video, space: va, head: {class_path: MLPBNHead, init_args: {in_dim: 128}}}
          - {source: audio, space: va, head: {class_path: LinearHead}}
        terms:
          - {space: va, a: video, b: audio}
""")
    message = exit_message(["fit", "--config", str(FAC), "--config", str(graph), "--print_config"])
    assert message.count("\n") == 0, message
    assert "model.init_args.graph.init_args.edges[0].head" in message
    assert "in_dim" in message and "set by the graph" in message


def test_an_argument_a_class_does_not_take_is_named_with_the_ones_it_does(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(FAC.read_text().replace("init_args: {va_dim: 128, vat_dim: 64}", "init_args: {va_dim: 128, vat_dims: 64}"))
    message = exit_message(["fit", "--config", str(bad), "--print_config"])
    assert message.count("\n") == 0, message
    assert "model.init_args.graph" in message and "FAC takes no argument 'vat_dims'" in message and "vat_dim" in message
