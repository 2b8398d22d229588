"""Two "nodes" of one process each, launched by torchrun on this machine, train through `versanet fit` from shared shards.

What a multi-node run is, minus the network: each node runs the same `torchrun --nnodes 2 --node-rank R ...`
command, Lightning reads the torchrun environment (world size, node rank) and joins the processes over
gloo; both read the shards from one folder (shared storage), each its own half.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from test_cli import QUICKSTART, tiny_run_args
from versanet.data.shards import data_shard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_of_one_process_fit_from_shared_shards(toy_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "data.yaml"
    config.write_text(f"data:\n  class_path: CaptionedVideoDataModule\n  init_args: {{root: {toy_root}, transforms: {{}}}}\n")
    data_shard(str(config), str(tmp_path / "shards"), split="train", maxcount=16)
    pattern = capsys.readouterr().out.split("--data.init_args.shards='")[1].split("'")[0]
    port = free_port()

    def node(rank: int) -> list[str]:
        return [
            sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1", f"--node-rank={rank}",
            "--master-addr=127.0.0.1", f"--master-port={port}",
            "-m", "versanet.cli", "fit", "--config", str(QUICKSTART / "fac.yaml"), *tiny_run_args(toy_root, tmp_path, steps=3),
            "--trainer.accelerator=cpu", "--trainer.strategy=ddp", "--trainer.devices=1", "--trainer.num_nodes=2",
            f"--data.init_args.shards={pattern}", "--data.init_args.samples_per_epoch=32",
            "--model.init_args.negatives_accumulation=2", "--trainer.log_every_n_steps=1",
            f"--trainer.logger={{'class_path': 'lightning.pytorch.loggers.CSVLogger', 'init_args': {{'save_dir': '{tmp_path}'}}}}",
        ]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(node(r), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path) for r in (0, 1)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert "All distributed processes registered. Starting with 2 processes" in outputs[0]
    assert "`Trainer.fit` stopped: `max_steps=3` reached" in outputs[0]
    metrics = next(tmp_path.rglob("metrics.csv")).read_text()
    assert "train/video_text@vat" in metrics.splitlines()[0]
    assert len(list(tmp_path.rglob("*.ckpt"))) == 1  # written once, by global rank 0
