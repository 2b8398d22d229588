"""WebDataset shards: corpus -> shards -> the same samples; per-epoch deterministic order; resumption; disjoint shards per rank."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from distributed_helpers import free_port
from versanet.data.captioned_video import CaptionedVideoDataModule
from versanet.data.shards import ShardDataset, ShardLoader, data_shard, read_shard_keys, write_shards
from versanet.data.transforms import LogMelTransform, TokenizeText, VideoClipTransform


def _dm(root: Path, tmp: Path, **kw) -> CaptionedVideoDataModule:
    transforms = {
        "video": VideoClipTransform(crop=32, resize=40, flip_prob=0.0),
        "audio": LogMelTransform(),
        "text": TokenizeText(num_candidates=2, max_tokens=8, vocab_size=64, model_path=str(tmp / "spm.model")),
    }
    dm = CaptionedVideoDataModule(str(root), transforms, num_frames=4, fps=5.0, batch_size=2, num_workers=0, **kw)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def sharded(toy_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[CaptionedVideoDataModule, list[str], Path]:
    """The toy world's 16 validation videos in 8 shards of 2."""
    tmp = tmp_path_factory.mktemp("shards")
    dm = _dm(toy_root, tmp)
    result = write_shards(dm.val_set.items, str(tmp / "val-%06d.tar"), maxcount=2, seed=3)
    assert result["samples"] == 16 and not result["missing"]
    return dm, result["shards"], tmp


def indices(dataset: ShardDataset) -> list[int]:
    return [int(s["index"]) for s in dataset]


def test_round_trip_gives_the_same_samples(sharded: tuple) -> None:
    dm, shards, _ = sharded
    assert len(shards) == 8
    keys = [k for shard in shards for k in read_shard_keys(shard)]
    assert sorted(keys) == sorted(it.key for it in dm.val_set.items)  # every video once
    stream = ShardDataset(shards, dm.val_set, shuffle_buffer=0)
    seen = 0
    for sample in stream:
        reference = dm.val_set[sample["index"]]  # the same item read from its file
        for m in ("video", "audio", "text"):
            assert torch.equal(sample[m], reference[m]), m
        assert sample["label"] == reference["label"] and sample["mask"]["text"].tolist() == reference["mask"]["text"].tolist()
        seen += 1
    assert seen == 16


def test_shuffling_is_deterministic_per_epoch(sharded: tuple) -> None:
    dm, shards, _ = sharded
    stream = ShardDataset(shards, dm.val_set, seed=5, shuffle_buffer=4)
    first = indices(stream)
    assert indices(stream) == first  # same seed and epoch: same order
    stream.set_epoch(1)
    second = indices(stream)
    assert second != first and sorted(second) == sorted(first) == list(range(16))


def test_resuming_mid_epoch_continues_with_the_unseen_samples(sharded: tuple) -> None:
    dm, shards, _ = sharded
    for workers in (0, 2):
        def loader() -> ShardLoader:
            return ShardLoader(ShardDataset(shards, dm.val_set, seed=1, shuffle_buffer=4), batch_size=2, num_workers=workers)

        full = [b["index"].tolist() for b in loader()]
        interrupted = loader()
        it = iter(interrupted)
        head = [next(it)["index"].tolist() for _ in range(3)]
        state = interrupted.state_dict()
        assert state == {"epoch": 0, "batches": 3}
        del it
        resumed = loader()
        resumed.load_state_dict(state)
        tail = [b["index"].tolist() for b in resumed]
        if workers == 0:
            assert head + tail == full
        else:  # same samples; batches may interleave differently across workers
            assert head == full[:3] and sorted(sum(tail, [])) == sorted(sum(full[3:], []))


def _rank_main(rank: int, world: int, port: int, shards: list[str], root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        dm = CaptionedVideoDataModule(root, {"video": VideoClipTransform(crop=32, resize=40)}, num_frames=2, fps=5.0, labels=None)
        dm.setup("fit")
        dataset = ShardDataset(shards, dm.val_set, seed=0, shuffle_buffer=0)
        loader = ShardLoader(dataset, batch_size=2, num_workers=2)
        seen = [i for b in loader for i in b["index"].tolist()]
        Path(out, f"rank{rank}.json").write_text(json.dumps({"indices": seen, "shards": dataset.my_shards()}))
    finally:
        dist.destroy_process_group()


def test_two_ranks_with_two_workers_read_disjoint_shards(sharded: tuple, toy_root: Path, tmp_path: Path) -> None:
    _, shards, _ = sharded
    port = free_port()
    # forked ranks (no re-import: spawn costs seconds per process on a loaded machine), gloo process group
    mp.start_processes(_rank_main, args=(2, port, shards, str(toy_root), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text())["indices"] for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == list(range(16))
    assert len(ranks[0]) == len(ranks[1]) == 8  # 8 shards of 2: 4 shards per rank, 2 per worker


def test_data_shard_command_and_training_from_shards(toy_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "data.yaml"
    config.write_text(f"""
data:
  class_path: CaptionedVideoDataModule
  init_args:
    root: {toy_root}
    num_frames: 4
    fps: 5.0
    transforms:
      video: {{class_path: VideoClipTransform, init_args: {{crop: 32, resize: 40}}}}
""")
    data_shard(str(config), str(tmp_path / "shards"), split="val", maxcount=5)
    out = capsys.readouterr().out
    assert "wrote 16 samples" in out and "into 4 shards" in out
    pattern = out.split("--data.init_args.shards='")[1].split("'")[0]
    assert pattern.endswith("val-{000000..000003}.tar")
    dm = _dm(toy_root, tmp_path, shards=pattern, samples_per_epoch=8)
    batches = list(dm.train_dataloader())
    assert len(batches) == 4 and batches[0]["video"].shape == (2, 3, 4, 32, 32) and batches[0]["bad_count"].tolist() == [0, 0]


class _Recorder(__import__("lightning.pytorch", fromlist=["LightningModule"]).LightningModule):
    """Records the dataset indices of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[int] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.seen += batch["index"].tolist()
        return (self.w * batch["video"].mean()).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_a_run_resumed_mid_epoch_from_shards_sees_each_sample_once(sharded: tuple, toy_root: Path, tmp_path: Path) -> None:
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint

    _, shards, tmp = sharded
    pattern = shards  # 8 shards x 2 samples: one epoch = 8 batches of 2

    def run(max_steps: int, ckpt: str | None) -> list[int]:
        dm = CaptionedVideoDataModule(str(toy_root), {"video": VideoClipTransform(crop=32, resize=40)}, num_frames=2, fps=5.0, batch_size=2, num_workers=0)
        dm.shards = pattern  # a list of URLs works as well as a brace pattern
        model = _Recorder()
        Trainer(max_steps=max_steps, max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=str(tmp_path),
                callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1)]).fit(model, datamodule=dm, ckpt_path=ckpt)
        return model.seen

    first = run(3, None)
    assert len(first) == 6
    rest = run(-1, str(next((tmp_path / "ckpt").glob("*step=3*.ckpt"))))
    assert sorted(first + rest) == list(range(16))  # no sample twice, none missed
