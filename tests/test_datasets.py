"""Every corpus reader on a miniature copy of its released layout: splits, labels, clip timing, audio alignment, captions, views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import versanet.data.captioned_video  # noqa: F401 - registers the pretraining modules
from fixtures_data import (
    AUDIOSET_CLASSES, FPS, HMDB_CLASSES, UCF_CLASSES, MediaCache, grey_level, make_audioset, make_crosstask, make_esc50, make_hmdb51,
    make_imagenet, make_kinetics, make_msrvtt, make_ucf101, make_video_folder, make_voc2007, make_youcook2,
)
from versanet import registry
from versanet.data.captioned_video import VideoFolderDataModule
from versanet.data.datasets import (
    AudioSetDataModule, AudioSetPretrainDataModule, CrossTaskDataModule, ESC50DataModule, HMDB51DataModule, ImageNetDataModule,
    KineticsDataModule, MSRVTTDataModule, UCF101DataModule, VOC2007DataModule, YouCook2DataModule,
)
from versanet.data.mixing import MixedDataModule
from versanet.data.sampling import crop_squares, even_starts
from versanet.data.transforms import LogMelTransform, RawClip, TokenizeText, VideoClipTransform
from versanet.data.video_io import read_clip

CLIP = dict(num_frames=4, fps=5.0, num_workers=0, batch_size=2)


def video_tf() -> VideoClipTransform:
    return VideoClipTransform(crop=16, resize=24, flip_prob=0.0, color_jitter_prob=0.0)


def frame_times(video: torch.Tensor) -> list[float]:
    """Source times of the frames of a transformed ``[3, T, h, w]`` clip of a grey-coded video."""
    levels = (video.mean(dim=(0, 2, 3)) * 255).tolist()
    return [min(range(30), key=lambda i: abs(grey_level(i) - lv)) / FPS for lv in levels]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("corpora")
    media = MediaCache(base / "_media")
    media.folder.mkdir()
    roots = {name: base / name for name in ("ucf", "hmdb", "kinetics", "esc", "audioset", "msrvtt", "youcook", "voc", "imagenet", "crosstask", "folder")}
    make_ucf101(roots["ucf"], media)
    make_hmdb51(roots["hmdb"], media)
    make_kinetics(roots["kinetics"], media)
    make_esc50(roots["esc"])
    make_audioset(roots["audioset"], media)
    make_msrvtt(roots["msrvtt"], media)
    make_youcook2(roots["youcook"], media)
    make_voc2007(roots["voc"])
    make_imagenet(roots["imagenet"])
    make_crosstask(roots["crosstask"], media)
    make_video_folder(roots["folder"], media)
    return roots


def test_every_contract_name_is_registered() -> None:
    names = set(registry.names("dataset"))
    wanted = {"UCF101DataModule", "HMDB51DataModule", "KineticsDataModule", "ESC50DataModule", "AudioSetDataModule", "MSRVTTDataModule",
              "YouCook2DataModule", "VOC2007DataModule", "ImageNetDataModule", "CrossTaskDataModule", "HowTo100MDataModule",
              "AudioSetPretrainDataModule", "VideoFolderDataModule", "MixedDataModule"}
    assert wanted <= names, wanted - names


def test_view_sampling_helpers() -> None:
    assert even_starts(0, 10, 2, 1) == [4.0]
    assert even_starts(0, 10, 2, 3) == [0.0, 4.0, 8.0]
    assert even_starts(0, 1, 2, 3) == [0.0, 0.0, 0.0]  # shorter than a clip: all at the start
    assert crop_squares(24, 32, 3) == [(0, 0, 24), (0, 4, 24), (0, 8, 24)]
    assert crop_squares(32, 24, 1) == [(4, 0, 24)]


def test_clip_timing_and_audio_alignment_in_avi_and_mp4(corpora: dict[str, Path]) -> None:
    """Frames come from start + i/fps; a tone starting at 1.0 s appears at (1.0 - start) * rate in the clip's audio."""
    for path in [next((corpora["hmdb"] / "hmdb51_org").rglob("*.avi")), next((corpora["folder"] / "videos").glob("*.mp4"))]:
        clip = read_clip(path, start=0.6, num_frames=8, fps=10.0, audio_rate=16000)
        levels = clip.frames.reshape(8, -1).mean(axis=1)
        assert np.allclose(levels, [grey_level(6 + i) for i in range(8)], atol=3), (path, levels)
        onset = int(np.flatnonzero(np.abs(clip.audio) > 0.1)[0])
        assert abs(onset - 0.4 * 16000) <= 16, (path, onset)  # within 1 ms
        assert np.abs(clip.audio[: 6000]).max() < 0.01


def test_ucf101_official_split_labels_and_multi_view(corpora: dict[str, Path]) -> None:
    dm = UCF101DataModule(str(corpora["ucf"]), {"video": video_tf()}, split=1, val_fraction=0.0, eval_clips=2, eval_crops=3, **CLIP)
    dm.setup("test")
    assert dm.class_names == UCF_CLASSES and dm.num_classes == 3 and not dm.multilabel
    assert len(dm.train_set) == 12 and len(dm.test_set) == 12
    assert all("_g01_" in it.key or "_g02_" in it.key for it in dm.test_set.items)
    # the release spells the class HandStandPushups in file names: the label comes from the folder
    hs = [it for it in dm.test_set.items if "HandStand" in it.key]
    assert hs and all(it.label == 2 for it in hs)
    batch = next(iter(dm.test_dataloader()))
    assert batch["video"].shape == (2, 6, 3, 4, 16, 16) and batch["mask"]["video"].shape == (2, 6)
    assert batch["label"].dtype == torch.long and batch["label"].shape == (2,)
    # clip-major views: the 3 crops of one clip share its frames (a uniform video), clips differ in time
    v = batch["video"][0]
    assert torch.allclose(v[0], v[1], atol=1e-3) and not torch.allclose(v[0], v[3], atol=1e-3)
    train = next(iter(dm.train_dataloader()))
    assert train["video"].shape == (2, 3, 4, 16, 16) and train["bad_count"].tolist() == [0, 0]


def test_ucf101_held_out_val_keeps_groups_together(corpora: dict[str, Path]) -> None:
    dm = UCF101DataModule(str(corpora["ucf"]), {"video": video_tf()}, split=1, val_fraction=0.5, **CLIP)
    dm.setup("fit")
    group = lambda key: key.rsplit("_c", 1)[0]  # noqa: E731
    train, val = {group(it.key) for it in dm.train_set.items}, {group(it.key) for it in dm.val_set.items}
    assert train and val and not train & val
    assert len(dm.train_set) + len(dm.val_set) == 12


def test_hmdb51_split_file_ids(corpora: dict[str, Path]) -> None:
    dm = HMDB51DataModule(str(corpora["hmdb"]), {"video": video_tf()}, split=1, val_fraction=0.0, **CLIP)
    dm.setup()
    assert dm.class_names == HMDB_CLASSES
    assert len(dm.train_set) == 6 and len(dm.test_set) == 2  # id 0 is unused
    assert sorted(it.label for it in dm.test_set.items) == [0, 1]
    with pytest.raises(FileNotFoundError, match="test_split2"):
        HMDB51DataModule(str(corpora["hmdb"]), {}, split=2).setup()


def test_kinetics_csv_downloader_layout_and_missing_files(corpora: dict[str, Path]) -> None:
    dm = KineticsDataModule(str(corpora["kinetics"]), {"video": video_tf()}, **CLIP)
    dm.setup()
    assert dm.class_names == ["abseiling", "zumba"]
    assert len(dm.train_set) == 3 and [it.label for it in dm.train_set.items] == [0, 1, 0]
    assert len(dm.test_set) == 1 and dm.missing["test"] == ["eeeeeeeeeee_000000_000010"]


def test_esc50_folds_wav_audio(corpora: dict[str, Path]) -> None:
    audio = LogMelTransform(sample_rate=16000)
    dm = ESC50DataModule(str(corpora["esc"]), {"audio": audio}, fold=2, num_frames=10, fps=10.0, num_workers=0, batch_size=4, eval_clips=3)
    dm.setup()
    assert dm.class_names == ["dog", "rooster"] and len(dm.train_set) == 8 and len(dm.test_set) == 2
    assert all(it.key.startswith("2-") for it in dm.test_set.items)
    sample = dm.test_set[0]
    assert sample["audio"].shape == (3, 1, 101, 40) and sample["mask"]["audio"].all()
    # 3 evenly spaced 1 s clips of a 5 s file start at 0, 2, 4 s: the tone (from 1 s) is absent only in the first
    energy = sample["audio"].exp().mean(dim=(1, 2, 3))
    assert energy[0] < energy[1] / 100 and energy[2] > energy[0] * 100


def test_audioset_multilabel_from_segment_csvs(corpora: dict[str, Path]) -> None:
    dm = AudioSetDataModule(str(corpora["audioset"]), {"audio": LogMelTransform()}, val_fraction=0.0, **CLIP)
    dm.setup()
    assert dm.multilabel and dm.class_names == [n for _, n in AUDIOSET_CLASSES]
    assert len(dm.train_set) == 3 and len(dm.test_set) == 1
    labels = {it.key: dm.train_set[i]["label"].tolist() for i, it in enumerate(dm.train_set.items)}
    assert labels["--aaaaaaaaa"] == [1.0, 1.0, 0.0] and labels["-bbbbbbbbbb"] == [0.0, 0.0, 1.0]
    assert dm.test_set[0]["label"].dtype == torch.float32


def test_retrieval_samples_msrvtt_and_youcook2(corpora: dict[str, Path], tmp_path: Path) -> None:
    text = TokenizeText(num_candidates=4, max_tokens=6, vocab_size=40, model_path=str(tmp_path / "spm.model"))
    dm = MSRVTTDataModule(str(corpora["msrvtt"]), {"video": video_tf(), "text": text}, **CLIP)
    dm.prepare_data()
    dm.setup("test")
    assert len(dm.test_set) == 3
    batch = next(iter(dm.test_dataloader()))
    assert batch["video"].shape == (2, 4, 3, 4, 16, 16) and batch["text"].shape == (2, 1, 6) and batch["mask"]["text"].shape == (2, 1)
    assert torch.equal(batch["text"][0], text.encode(["a caption about video 0"]))
    with pytest.raises(FileNotFoundError, match="MSRVTT_train.9k.csv"):
        dm.train_dataloader()

    yc = YouCook2DataModule(str(corpora["youcook"]), {"video": video_tf(), "text": text}, eval_clips=2, **CLIP)
    yc.setup("test")
    assert [it.query for it in yc.test_set.items] == ["crack the eggs", "whisk them"]
    second = yc.test_set[1]  # segment 1.5-3.0 s, 0.8 s clips at 1.5 and 2.2 s
    assert second["video"].shape == (2, 3, 4, 16, 16)
    assert frame_times(second["video"][0]) == pytest.approx([1.5, 1.7, 1.9, 2.1])
    assert frame_times(second["video"][1]) == pytest.approx([2.2, 2.4, 2.6, 2.8])
    assert len(yc.train_set) == 1


def test_images_voc_multilabel_and_imagenet(corpora: dict[str, Path]) -> None:
    voc = VOC2007DataModule(str(corpora["voc"]), num_workers=0, batch_size=2)
    voc.setup()
    assert voc.num_classes == 20 and voc.multilabel
    assert len(voc.train_set) == 3  # trainval = train + val
    s = voc.train_set[2]  # 000003: car (and a difficult car), cat only difficult
    assert s["image"].shape == (3, 224, 224) and 0 <= s["image"].min() and s["image"].max() <= 1
    names = voc.class_names
    assert s["label"][names.index("car")] == 1 and s["label"][names.index("cat")] == 0 and s["difficult"][names.index("cat")] == 1
    inet = ImageNetDataModule(str(corpora["imagenet"]), num_workers=0, batch_size=2)
    inet.setup()
    assert inet.class_names == ["n01440764", "n01443537"] and len(inet.train_set) == 4 and len(inet.test_set) == 2
    batch = next(iter(inet.test_dataloader()))
    assert batch["image"].shape == (2, 3, 224, 224) and batch["label"].tolist() == [0, 1]


def test_crosstask_per_second_clips_and_step_annotation(corpora: dict[str, Path]) -> None:
    dm = CrossTaskDataModule(str(corpora["crosstask"]), {"video": video_tf()}, num_frames=4, fps=5.0, num_workers=0)
    dm.setup("test")
    assert len(dm.test_set) == 1 and len(dm.train_set) == 1
    batch = next(iter(dm.test_dataloader()))
    assert batch["video"].shape == (1, 3, 3, 4, 16, 16)  # 3 s -> 3 per-second clips
    assert frame_times(batch["video"][0, 1]) == pytest.approx([1.1, 1.3, 1.5, 1.7])  # centred on 1.5 s
    assert batch["steps"] == [["pour water", "pour jello powder", "stir mixture"]] and batch["task"] == ["23521"]
    # step 1 covers 0.2-1.1 s (second 0's centre 0.5), step 3 covers 2.0-2.9 s (second 2's centre 2.5)
    assert batch["annotation"][0].tolist() == [[True, False, False], [False, False, False], [False, False, True]]


def test_caption_selection_in_a_video_folder(corpora: dict[str, Path], tmp_path: Path) -> None:
    root = corpora["folder"]
    text = TokenizeText(num_candidates=2, max_tokens=8, vocab_size=40, model_path=str(tmp_path / "spm.model"))
    dm = VideoFolderDataModule(str(root), {"video": video_tf(), "text": text}, val_fraction=0.0, val_split=None, eval_clips=1, **CLIP)
    dm.prepare_data()
    dm.setup()
    assert len(dm.train_set) == 4
    dm.train_set.train = False  # centred clip 1.1-1.9 s: centre 1.5 is inside both captions' bounds, the first is nearest by centre
    s = dm.train_set[0]
    assert torch.equal(s["text"], text.encode(["first part of clip00", "second part of clip00"]))
    raw_train = [dm.train_set.sampler.decode(dm.train_set.items[0].path, "x", frozenset({"frames", "captions"}), True, np.random.default_rng(k),
                                             captions=dm.train_set.items[0].captions)[0] for k in range(6)]
    for raw in raw_train:  # MIL-NCE: the clip lies inside the sampled captions' span (both: 0-3 s)
        assert 0.0 <= raw.start <= 3.0 - 0.8 + 1e-6 and len(raw.captions) == 2


def test_mixed_corpora_text_mask_and_proportions(corpora: dict[str, Path], tmp_path: Path) -> None:
    text = TokenizeText(num_candidates=2, max_tokens=8, vocab_size=40, model_path=str(tmp_path / "spm.model"))
    transforms = {"video": video_tf(), "audio": LogMelTransform(), "text": text}
    folder = VideoFolderDataModule(str(corpora["folder"]), {}, val_fraction=0.25, **CLIP)
    audioset = AudioSetPretrainDataModule(str(corpora["audioset"]), {}, **CLIP)
    mixed = MixedDataModule([folder, audioset], [0.5, 0.5], transforms=transforms, batch_size=16, num_workers=0, samples_per_epoch=32)
    mixed.prepare_data()
    mixed.setup("fit")
    batches = list(mixed.train_dataloader())
    corpus = torch.cat([b["corpus"] for b in batches])
    has_text = torch.cat([b["mask"]["text"].any(dim=1) for b in batches])
    assert len(corpus) == 32 and 8 <= int((corpus == 1).sum()) <= 24
    assert torch.equal(has_text, corpus == 0)  # AudioSet samples carry a False text mask, captioned ones a True one
    assert batches[0]["video"].shape == (16, 3, 4, 16, 16) and "label" not in batches[0]
    # without `transforms`, the first corpus's are shared; `modalities` keeps some of them (a model without text)
    first = VideoFolderDataModule(str(corpora["folder"]), {"video": video_tf(), "text": text}, **CLIP)
    va = MixedDataModule([first, AudioSetPretrainDataModule(str(corpora["audioset"]), {}, **CLIP)], [1, 1], modalities=["video"], batch_size=4, num_workers=0)
    assert all(dm.transforms == {"video": first_video} for dm in va.datamodules for first_video in [va.transforms["video"]])
    va.setup("fit")
    assert set(next(iter(va.train_dataloader()))) >= {"video", "mask", "corpus"} and "text" not in next(iter(va.train_dataloader()))
    with pytest.raises(ValueError, match=r"modalities \['depth'\] have no transform"):
        MixedDataModule([VideoFolderDataModule(str(corpora["folder"]), {"video": video_tf()}, **CLIP)], [1], modalities=["depth"])


def test_missing_audio_silence_or_skip(corpora: dict[str, Path]) -> None:
    ucf = corpora["ucf"]  # UCF101 miniature videos have no audio stream
    dm = UCF101DataModule(str(ucf), {"video": video_tf(), "audio": LogMelTransform()}, val_fraction=0.0, **CLIP)
    dm.setup("test")
    s = dm.test_set[0]
    assert s["mask"]["audio"].tolist() == [False] and (s["audio"] == 0).all() and s["mask"]["video"].all()
    skip = UCF101DataModule(str(ucf), {"video": video_tf(), "audio": LogMelTransform()}, val_fraction=0.0, missing_audio="skip", max_bad_fraction=1.0, **CLIP)
    skip.setup("test")
    from versanet.data.failures import TooManyBadSamples

    with pytest.raises(TooManyBadSamples, match="samples in a row"):
        skip.test_set[0]
    assert "no audio stream (missing_audio: skip)" in next(iter(skip.test_set.bad.values()))


def test_raw_clip_crops_feed_the_eval_transform() -> None:
    from versanet.data.sampling import ClipSampler

    frames = np.zeros((2, 24, 36, 3), np.uint8)
    frames[:, :, :12] = 255  # left third white
    raw = RawClip("v", 0.0, 0.4, False, frames)
    crops = ClipSampler(eval_crops=3)._crops(raw, train=False)
    assert [c.frames.shape for c in crops] == [(2, 24, 24, 3)] * 3
    assert crops[0].frames.mean() > crops[1].frames.mean() > crops[2].frames.mean()


def test_captions_past_the_end_of_the_video_are_never_chosen(corpora: dict[str, Path]) -> None:
    from versanet.data.captions import Caption
    from versanet.data.sampling import ClipSampler

    path = next((corpora["folder"] / "videos").glob("*.mp4"))  # 3 s
    caps = [Caption(0.0, 1.5, "early"), Caption(1.5, 3.0, "middle"), Caption(10.0, 12.0, "said after the end")]
    sampler = ClipSampler(num_frames=4, fps=5.0, num_candidates=1)
    texts = set()
    for seed in range(12):
        raw = sampler.decode(path, "x", frozenset({"frames", "captions"}), True, np.random.default_rng(seed), captions=caps)[0]
        texts.add(raw.captions[0])
        assert raw.start + 0.8 <= 3.0 + 1e-6
    assert texts <= {"early", "middle"} and texts  # the late caption was drawn for some seeds, and replaced by an in-range one
