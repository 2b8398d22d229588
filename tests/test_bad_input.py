"""Bad input is counted, named and never silently used: captions that cannot be positives, files in other containers,
short clips, problems `versanet data check` must report (with a failing exit status), `versanet benchmark` when
everything failed, and the documented way of configuring DataHealth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from fixtures_data import MediaCache
from versanet.cli import main, run_cli
from versanet.data.captioned_video import VideoFolderDataModule
from versanet.data.captions import read_captions_report
from versanet.data.check import data_check
from versanet.data.failures import DataHealth
from versanet.data.transforms import VideoClipTransform

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five videos in four containers, one id twice, a text file among them, and a caption file with every kind of bad row."""
    base = tmp_path_factory.mktemp("bad_input")
    media = MediaCache(base / "_media")
    media.folder.mkdir()
    videos = base / "corpus" / "videos"
    media.video(videos / "clip_mp4.mp4", seconds=3.0)
    media.video(videos / "clip_mkv.mkv", seconds=3.0)
    media.video(videos / "clip_webm.webm", seconds=3.0, audio=False)
    media.video(videos / "clip_avi.avi", seconds=3.0)
    media.video(videos / "short.mp4", seconds=1.0)
    media.video(videos / "clip_mp4.mkv", seconds=3.0)  # a second container of the same id
    (videos / "notes.txt").write_text("not a video")
    rows = [
        "clip_mp4,0.0,1.5,the first caption",
        "clip_mp4,2.0,1.0,ends before it starts",
        "clip_mp4,1.0,2.0,   ",
        "clip_mkv,0.0,3.0,a caption for the mkv",
        "ghost,0.0,2.0,a video that does not exist",
        "ghost,2.0,4.0,its second caption",
    ]
    (base / "corpus" / "captions.csv").write_text("video_id,start,end,text\n" + "\n".join(rows) + "\n")
    return base / "corpus"


def folder(root: Path, **kw) -> VideoFolderDataModule:
    args = dict(val_fraction=0.0, num_frames=4, fps=5.0, batch_size=2, num_workers=0)
    args.update(kw)
    return VideoFolderDataModule(str(root), {"video": VideoClipTransform(crop=16, resize=20, flip_prob=0.0)}, **args)


def test_captions_that_cannot_be_positives_are_dropped_before_sampling_and_counted(corpus: Path) -> None:
    captions, problems = read_captions_report(corpus / "captions.csv")
    assert [c.text for c in captions["clip_mp4"]] == ["the first caption"]
    assert any("1 caption(s) with end before start dropped (first: video 'clip_mp4', 2.00-1.00s" in p for p in problems)
    assert any("1 caption(s) with empty text dropped (first: video 'clip_mp4'" in p for p in problems)
    dm = folder(corpus)
    dm.setup("fit")
    item = next(it for it in dm.train_set.items if it.key == "clip_mp4")
    assert [c.text for c in item.captions] == ["the first caption"]
    rng = np.random.default_rng(0)
    for _ in range(20):  # MIL-NCE windows: only the usable caption is ever a candidate
        raw = dm.train_set.sampler.decode(item.path, item.key, frozenset({"frames", "captions"}), True, rng, captions=item.captions)[0]
        assert raw.captions == ["the first caption"]


def test_every_container_is_read_and_what_is_not_read_is_named(corpus: Path) -> None:
    dm = folder(corpus)
    dm.setup("fit")
    names = sorted(Path(it.path).name for it in dm.train_set.items)
    assert names == ["clip_avi.avi", "clip_mkv.mkv", "clip_mp4.mkv", "clip_webm.webm", "short.mp4"]  # of two containers, the first by name
    sample = dm.train_set[names.index("clip_webm.webm")]
    assert sample["video"].shape == (3, 4, 16, 16) and sample["bad_count"] == 0
    assert sorted(p.name for p in dm.files.skipped) == ["notes.txt"] and len(dm.files.duplicates) == 1


def test_data_check_reports_caption_and_container_problems_and_fails(corpus: Path, capsys: pytest.CaptureFixture) -> None:
    report = data_check(str(corpus), workers=1)
    found = {kind: [p for p, _ in rows] for kind, rows in report.problems.items()}
    assert found["captions_no_video"] == ["ghost"]
    assert found["captions_empty"] == ["clip_mp4"] and found["captions_reversed"] == ["clip_mp4"]
    assert sorted(Path(p).name for p in found["not_read"]) == ["clip_mp4.mp4", "notes.txt"]
    assert report.files == 5 and report.exit_code == 1
    out = capsys.readouterr().out
    assert "caption rows for videos that do not exist: 1" in out and "ghost: 2 caption(s)" in out
    with pytest.raises(SystemExit) as info:  # the command's exit status
        main(["data", "check", str(corpus), "--workers", "1"])
    assert info.value.code == 1
    main(["data", "check", str(corpus), "--workers", "1", "--strict", "false"])  # reported, exit status 0
    assert "(--strict false: exit status 0)" in capsys.readouterr().out


def test_a_clean_corpus_passes_data_check(corpus: Path, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    (clean / "videos").mkdir(parents=True)
    (clean / "videos" / "a.mp4").write_bytes((corpus / "videos" / "clip_mp4.mp4").read_bytes())
    (clean / "captions.csv").write_text("video_id,start,end,text\na,0.0,1.0,fine\n")
    assert data_check(str(clean), workers=1).exit_code == 0
    main(["data", "check", str(clean), "--workers", "1"])  # no SystemExit


def test_short_clips_are_padded_and_counted_or_skipped(corpus: Path) -> None:
    pad = folder(corpus, num_frames=16, fps=10.0)  # 1.6 s clips: short.mp4 lasts 1 s
    pad.setup("fit")
    index = next(i for i, it in enumerate(pad.train_set.items) if it.key == "short")
    sample = pad.train_set[index]
    assert sample["short_files"] == str(corpus / "videos" / "short.mp4") and sample["index"] == index
    assert pad.train_set[0 if index else 1]["short_files"] == ""
    health = DataHealth()
    health._collect({"index": [index], "short_files": [sample["short_files"]], "bad_files": [""]}, "bad")
    health.sync(None)
    assert health.short_files == {str(corpus / "videos" / "short.mp4")} and health.metrics()["data/short_clips"] == 1.0
    skip = folder(corpus, num_frames=16, fps=10.0, short_clips="skip", max_bad_fraction=1.0)
    skip.setup("fit")
    replaced = skip.train_set[index]
    assert replaced["index"] != index and replaced["bad_files"] == str(corpus / "videos" / "short.mp4")
    assert "shorter than the clip (1.00s < 1.60s; short_clips: skip)" in skip.train_set.bad[str(corpus / "videos" / "short.mp4")]
    with pytest.raises(ValueError, match="short_clips must be one of"):
        folder(corpus, short_clips="loop")


def test_datahealth_under_trainer_callbacks_as_the_docs_say(toy_root: Path, tmp_path: Path) -> None:
    """`trainer.callbacks: [{class_path: versanet.data.failures.DataHealth, ...}]` configures the one DataHealth of the run."""
    config = tmp_path / "health.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"callbacks": [
        {"class_path": "versanet.data.failures.DataHealth", "init_args": {"max_bad_fraction": 0.25, "sync_every": 2}},
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}},
    ]}}))
    cli = run_cli([
        "fit", "--config", str(REPO / "configs" / "quickstart" / "fac.yaml"), "--config", str(config),
        f"--data.init_args.root={toy_root}", "--data.init_args.toy=null", "--data.init_args.num_workers=0", "--data.init_args.batch_size=8",
        "--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
    ])
    health = [c for c in cli.trainer.callbacks if isinstance(c, DataHealth)]
    assert len(health) == 1 and health[0].max_bad_fraction == 0.25 and health[0].sync_every == 2
    assert (tmp_path / "lightning_logs").exists() or any(tmp_path.rglob("last.ckpt"))


def test_benchmark_exits_non_zero_when_every_benchmark_failed(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "broken", "benchmarks": [
        {"key": "linear", "config": str(REPO / "configs" / "benchmarks" / "toy_linear.yaml"), "metrics": {"top-1": "test/top1"}},
    ]}))
    with pytest.raises(SystemExit) as info:
        main(["benchmark", "--ckpt", str(tmp_path / "no_such.ckpt"), "--suite", str(suite), "--output", str(tmp_path / "out")])
    assert info.value.code == 1
    assert "_error" in (tmp_path / "out" / "results.json").read_text()


def test_the_toy_world_has_one_command_line() -> None:
    """`versanet toy-data` takes every field of the toy world's config; the module has no second CLI of its own."""
    import dataclasses
    import inspect

    import versanet.data.toy as toy
    from versanet.cli import toy_data

    options = set(inspect.signature(toy_data).parameters)
    assert {f.name for f in dataclasses.fields(toy.ToyWorldConfig)} <= options
    assert not hasattr(toy, "main") and "argparse" not in Path(toy.__file__).read_text()
