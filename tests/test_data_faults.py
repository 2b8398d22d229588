"""Bad files never crash an epoch: each is counted (across DataLoader workers, into the checkpoint) and reported; a mostly-bad corpus stops with an error naming it."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from fixtures_data import MediaCache, write_video
from versanet.data.captioned_video import VideoFolderDataModule
from versanet.data.check import check_corpus, data_check
from versanet.data.failures import DataHealth, TooManyBadSamples
from versanet.data.transforms import LogMelTransform, TokenizeText, VideoClipTransform

GOOD = [f"good{i:02d}" for i in range(10)]


def write_truncated(path: Path, keep_seconds: float = 0.3) -> None:
    """A 3 s mp4 with its index first (so it still opens) cut at the byte where the video packet at ``keep_seconds`` starts.

    Its frames stop at about ``keep_seconds`` while it declares 3 s: every clip reaches past them.
    """
    write_video(path, 3.0, faststart=True)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        cut = next(p.pos for p in container.demux(stream) if p.pts is not None and p.pos is not None and p.pts * p.time_base >= keep_seconds)
    path.write_bytes(path.read_bytes()[:cut])


def write_zero_frames(path: Path) -> None:
    """An mp4 whose container is valid but holds no frame at all."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
        c.start_encoding()


def build_faulty(root: Path, media: MediaCache, good: list[str], random_files: int = 1) -> None:
    videos = root / "videos"
    for vid in good:
        media.video(videos / f"{vid}.mp4", seconds=3.0)
    write_truncated(videos / "truncated.mp4")
    rng = np.random.default_rng(0)
    for k in range(random_files):
        (videos / f"random{k}.mp4").write_bytes(rng.bytes(4000))
    media.video(videos / "noaudio.mp4", seconds=3.0, audio=False)
    write_zero_frames(videos / "zerolength.mp4")
    rows = [f"{v},0.0,1.5,a caption for {v}\n" for v in good] + ["good00,10.0,12.0,said after the video ended\n", "good01,1.5,3.0,caf\xe9 au lait\n"]
    (root / "captions.csv").write_bytes("video_id,start,end,text\n".encode() + "".join(rows[:-1]).encode() + rows[-1].encode("latin-1"))


class Consumer(LightningModule):
    """Reads every batch (a training epoch through the real loaders), learns nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.samples = 0

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.samples += len(batch["index"])
        return (self.w * batch["video"].mean()).sum() + (self.w * batch["audio"].mean()).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("faulty")
    media = MediaCache(base / "_media")
    media.folder.mkdir()
    build_faulty(base / "corpus", media, GOOD)
    build_faulty(base / "mostly_bad", media, GOOD[:2], random_files=8)
    return base


def datamodule(root: Path, tmp_path: Path, **kw) -> VideoFolderDataModule:
    transforms = {
        "video": VideoClipTransform(crop=16, resize=24, flip_prob=0.0),
        "audio": LogMelTransform(),
        "text": TokenizeText(num_candidates=2, max_tokens=6, vocab_size=40, model_path=str(tmp_path / "spm.model")),
    }
    args = dict(val_fraction=0.0, num_frames=4, fps=5.0, batch_size=2, num_workers=2, seed=1)
    args.update(kw)
    return VideoFolderDataModule(str(root), transforms, **args)


def trainer(tmp_path: Path, epochs: int, health: DataHealth, **kw) -> Trainer:
    return Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                   num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=str(tmp_path), callbacks=[health, *kw.pop("callbacks", [])], **kw)


def bad_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "skipping unreadable sample" in r.getMessage()]


UNUSABLE = ("random0.mp4", "truncated.mp4", "zerolength.mp4")  # the no-audio video is fine (silence)


def test_bad_files_are_counted_once_across_workers_epochs_and_the_checkpoint(faulty: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = faulty / "corpus"
    health = DataHealth(max_bad_fraction=0.6, min_samples=4, sync_every=1)
    model = Consumer()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    dm = datamodule(root, tmp_path, max_bad_fraction=0.6)
    trainer(tmp_path, 2, health, callbacks=[ckpt]).fit(model, datamodule=dm)
    assert len(dm.train_set) == 14 and model.samples == 2 * 14  # both epochs ran to their end
    expected = sorted(str(root / "videos" / name) for name in UNUSABLE)
    # each unusable file once, whichever worker met it and however often it was drawn in two epochs
    assert health.bad == 3 and sorted(health.bad_files) == expected and health.read == 2 * 14 + 3
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["callbacks"]
    state = next(v for k, v in saved.items() if k.startswith("DataHealth"))
    assert state["bad"] == 3 and state["bad_files"] == expected and state["read"] == 2 * 14 + 3
    # without workers every read is in this process: in two more epochs after the resume, no bad file is opened
    # again (the checkpoint named them) and the count stays 3
    caplog.clear()
    resumed = DataHealth(max_bad_fraction=0.6, min_samples=4, sync_every=1)
    again = datamodule(root, tmp_path, max_bad_fraction=0.6, num_workers=0)
    trainer(tmp_path, 4, resumed).fit(Consumer(), datamodule=again, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert bad_warnings(caplog) == [] and resumed.bad == 3 and resumed.read == 4 * 14 + 3
    assert set(again.train_set.bad) == set(expected)


def test_a_fresh_run_without_workers_opens_each_bad_file_once(faulty: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    health = DataHealth(max_bad_fraction=0.6, min_samples=4, sync_every=1)
    trainer(tmp_path, 3, health).fit(Consumer(), datamodule=datamodule(faulty / "corpus", tmp_path, max_bad_fraction=0.6, num_workers=0))
    warned = bad_warnings(caplog)
    assert len(warned) == 3 and sorted(Path(w.split(": ")[1]).name for w in warned) == sorted(UNUSABLE)
    assert health.bad == 3


class Evaluator(Consumer):
    """Consumer with a validation step: validation runs every epoch."""

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val/x", batch["video"].mean())


def test_unreadable_validation_files_are_reported_once_and_never_stop_a_healthy_run(faulty: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two bad files in a six-file validation split (33%, far over max_bad_fraction) with a clean training set: the run goes on."""
    root = tmp_path / "small_val"
    videos = root / "videos"
    videos.mkdir(parents=True)
    for name in [*GOOD, "random0", "zerolength"]:
        (videos / f"{name}.mp4").write_bytes((faulty / "corpus" / "videos" / f"{name}.mp4").read_bytes())
    (root / "captions.csv").write_text("video_id,start,end,text\n" + "".join(f"{v},0.0,1.5,a caption for {v}\n" for v in GOOD))
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("\n".join(GOOD[:8]))
    (root / "splits" / "val.txt").write_text("\n".join([*GOOD[8:], "random0", "zerolength", "good00", "good01"]))
    for workers in (0, 2):
        caplog.clear()
        dm = datamodule(root, tmp_path, train_split="splits/train.txt", val_split="splits/val.txt", num_workers=workers, val_batch_size=3)
        health = DataHealth(sync_every=1)
        Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                enable_checkpointing=False, num_sanity_val_steps=2, default_root_dir=str(tmp_path), callbacks=[health]).fit(Evaluator(), datamodule=dm)
        assert sorted(Path(p).name for p in health.val_bad_files) == ["random0.mp4", "zerolength.mp4"] and health.bad == 0
        if workers == 0:  # every read in this process: each bad file opened once in the sanity check and 3 validation passes
            assert len(bad_warnings(caplog)) == 2


def test_each_fault_is_reported_by_data_check(faulty: Path, capsys: pytest.CaptureFixture) -> None:
    report = data_check(str(faulty / "corpus"), max_report=5, workers=2)
    out = capsys.readouterr().out
    root = faulty / "corpus" / "videos"
    found = {kind: [p for p, _ in items] for kind, items in report.problems.items()}
    assert report.files == 14 and report.checked == 14
    assert found["unreadable"] == [str(root / "random0.mp4")]
    assert found["truncated"] == [str(root / "truncated.mp4")]
    assert found["zero_length"] == [str(root / "zerolength.mp4")]
    assert found["no_audio"] == [str(root / "noaudio.mp4")]
    assert found["captions_outside"] == [str(root / "good00.mp4")]
    assert len(found["caption_file"]) == 1 and "not valid UTF-8 on 1 line(s) (first: line 13)" in report.problems["caption_file"][0][1]
    assert "truncated (packets end before the declared duration, or demuxing fails): 1" in out and "good00.mp4: 1 caption(s) outside" in out
    short = check_corpus(VideoFolderDataModule(str(faulty / "corpus"), {}, num_frames=40, fps=10.0), workers=1)
    assert short.count("short") == 12  # every readable video is 3 s (the truncated one 0.3 s) < 4 s


def test_a_mostly_bad_corpus_stops_with_an_error_naming_it(faulty: Path, tmp_path: Path) -> None:
    # per process: the dataset's own threshold (10 of 12 files bad; judged once 20 reads were made: in the second pass)
    dm = datamodule(faulty / "mostly_bad", tmp_path, max_bad_fraction=0.2, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    with pytest.raises(TooManyBadSamples, match=r"VideoFolderDataModule train under .*mostly_bad: 10 of \d+ samples tried could not be read"):
        for _ in range(3):
            for i in range(len(dm.train_set)):
                dm.train_set[i]
    # in a run with workers, whichever threshold trips first (here the worker's) stops it, naming the dataset
    dm = datamodule(faulty / "mostly_bad", tmp_path, max_bad_fraction=0.2)
    with pytest.raises(TooManyBadSamples, match=r"VideoFolderDataModule (train )?under .*mostly_bad: "):
        trainer(tmp_path, 3, DataHealth(max_bad_fraction=0.3, min_samples=4, sync_every=1)).fit(Consumer(), datamodule=dm)
    # over all workers: the callback's threshold (> 10% of the reads so far), the per-worker one set loose
    dm = datamodule(faulty / "corpus", tmp_path, max_bad_fraction=1.0)
    with pytest.raises(TooManyBadSamples, match=r"VideoFolderDataModule under .*corpus: [1-3] of \d+ training files read were unreadable \(> max_bad_fraction 0.1\)"):
        trainer(tmp_path, 1, DataHealth(max_bad_fraction=0.1, min_samples=4, sync_every=1)).fit(Consumer(), datamodule=dm)


def test_bad_caption_rows_and_encoding_do_not_stop_reading(faulty: Path, tmp_path: Path) -> None:
    dm = datamodule(faulty / "corpus", tmp_path)
    caps = dm.read_captions()
    assert [c.text for c in caps["good01"]][-1] == "caf\ufffd au lait"
    strict = datamodule(faulty / "corpus", tmp_path, caption_errors="strict")
    from versanet.data.captions import CaptionFileError

    with pytest.raises(CaptionFileError, match="not valid UTF-8"):
        strict.read_captions()
    shutil.rmtree(tmp_path, ignore_errors=True)
