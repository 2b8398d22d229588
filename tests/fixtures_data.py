"""Miniature copies of the released dataset layouts, with real media files made by PyAV / wave / torchvision.

Media content is coded so tests can read timing back:
- video frame ``i`` (at ``i / fps`` s) is a uniform grey of level ``16 + 8 * i`` (mod 240, distinct for 30 frames), so a decoded
  frame's mean gives its source time;
- audio is silent, with a 1 kHz tone from ``tone_at`` seconds on (when given).
"""

from __future__ import annotations

import csv
import io
import json
import wave
from pathlib import Path

import av
import numpy as np
import torch
from torchvision.io import encode_jpeg

from versanet.data.toy import write_toy_mp4

FPS = 10
RATE = 16000


def grey_level(i: int) -> int:
    return 16 + (8 * i) % 240


def coded_frames(seconds: float, width: int = 32, height: int = 24, fps: int = FPS) -> np.ndarray:
    """``[T, H, W, 3]`` uint8, frame i a uniform grey of :func:`grey_level` (i)."""
    n = int(round(seconds * fps))
    levels = np.array([grey_level(i) for i in range(n)], dtype=np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (n, height, width, 3)).copy()


def tone(seconds: float, tone_at: float | None, rate: int = RATE, freq: float = 1000.0) -> np.ndarray:
    """Silence, then a 1 kHz tone (amplitude 0.5) from ``tone_at`` on; ``[N]`` float32."""
    t = np.arange(int(round(seconds * rate))) / rate
    out = np.zeros_like(t, dtype=np.float32)
    if tone_at is not None:
        on = t >= tone_at
        out[on] = 0.5 * np.sin(2 * np.pi * freq * t[on])
    return out


def write_video(path: Path, seconds: float = 3.0, audio: bool = True, tone_at: float | None = 1.0, width: int = 32, height: int = 24,
                faststart: bool = False) -> Path:
    """A coded video: ``.mp4`` (H.264 + AAC, or H.264 only) or ``.avi`` (MPEG-4 part 2 + PCM).

    ``faststart``: the mp4 index goes first (so a truncated copy still opens); audio is then PCM-free AAC too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = coded_frames(seconds, width, height)
    sound = tone(seconds, tone_at)
    if path.suffix == ".mp4" and audio and not faststart:
        write_toy_mp4(path, frames, sound, FPS, RATE)
        return path
    codec = {".mp4": "libx264", ".webm": "libvpx"}.get(path.suffix, "mpeg4")
    acodec = "aac" if path.suffix == ".mp4" else "pcm_s16le"
    if path.suffix == ".webm" and audio:
        raise ValueError("write_video: .webm fixtures are video-only (VP8)")
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        vs = container.add_stream(codec, rate=FPS)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            vs.options = {"bf": "0", "g": str(FPS)}
        elif codec == "libvpx":
            vs.options = {"g": str(FPS), "deadline": "realtime"}
        else:
            vs.options = {"qscale": "2"}
            vs.codec_context.gop_size = FPS
        streams = [vs]
        if audio:
            aus = container.add_stream(acodec, rate=RATE)
            aus.layout = "mono"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in vs.encode(frame):
                container.mux(packet)
        for packet in vs.encode(None):
            container.mux(packet)
        if audio:
            pcm = (sound * 32767).astype(np.int16)
            step = 1024 if acodec == "aac" else 1600
            for start in range(0, len(pcm), step):
                if acodec == "aac":
                    chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[None, start : start + step]), format="fltp", layout="mono")
                else:
                    chunk = av.AudioFrame.from_ndarray(pcm[None, start : start + step], format="s16", layout="mono")
                chunk.sample_rate, chunk.pts = RATE, start
                for packet in aus.encode(chunk):
                    container.mux(packet)
            for packet in aus.encode(None):
                container.mux(packet)
    return path


def write_wav(path: Path, seconds: float = 5.0, rate: int = 44100, tone_at: float | None = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (tone(seconds, tone_at, rate) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def write_jpg(path: Path, value: int = 128, size: tuple[int, int] = (40, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = torch.full((3, *size), value, dtype=torch.uint8)
    path.write_bytes(encode_jpeg(image, quality=95).numpy().tobytes())
    return path


class MediaCache:
    """Encodes each distinct media file once and copies its bytes (encoding is the slow part)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made: dict[tuple, Path] = {}

    def video(self, dest: Path, **kw) -> Path:
        key = (dest.suffix, tuple(sorted(kw.items())))
        if key not in self.made:
            self.made[key] = write_video(self.folder / f"v{len(self.made)}{dest.suffix}", **kw)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.made[key].read_bytes())
        return dest


def _csv(path: Path, header: list[str] | None, rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


# ---------------------------------------------------------------------------------------- layouts
UCF_CLASSES = ["ApplyEyeMakeup", "Archery", "HandstandPushups"]


def make_ucf101(root: Path, media: MediaCache) -> None:
    """3 classes x groups 1-4 (2 clips each); split 1: groups 1-2 test, 3-4 train (like the release: g01-07 test)."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(UCF_CLASSES)))
    train, test = [], []
    for ci, cls in enumerate(UCF_CLASSES):
        fname_cls = "HandStandPushups" if cls == "HandstandPushups" else cls  # the release's own spelling
        for g in range(1, 5):
            for c in range(1, 3):
                rel = f"{cls}/v_{fname_cls}_g{g:02d}_c{c:02d}.avi"
                media.video(root / "UCF-101" / rel, audio=False, seconds=2.0)
                (test if g <= 2 else train).append(rel)
    (lists / "trainlist01.txt").write_text("".join(f"{r} {UCF_CLASSES.index(r.split('/')[0]) + 1}\n" for r in train))
    (lists / "testlist01.txt").write_text("".join(f"{r}\n" for r in test))


HMDB_CLASSES = ["brush_hair", "cartwheel"]


def make_hmdb51(root: Path, media: MediaCache) -> None:
    """2 classes x 5 clips; split 1: ids 1 (train) x3, 2 (test) x1, 0 (unused) x1."""
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for cls in HMDB_CLASSES:
        lines = []
        for k, sid in enumerate([1, 1, 1, 2, 0]):
            name = f"src{k // 2}_{cls}_f_cm_np1_ri_med_{k % 2}.avi"
            media.video(root / "hmdb51_org" / cls / name, seconds=2.0)
            lines.append(f"{name} {sid} ")
        (splits / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")


def make_kinetics(root: Path, media: MediaCache) -> None:
    """annotations/{train,validate}.csv; clips in the downloader layout; one validate clip missing on disk."""
    rows = {"train": [("abseiling", "aaaaaaaaaaa", 10, 20), ("zumba", "bbbbbbbbbbb", 0, 10), ("abseiling", "ccccccccccc", 5, 15)],
            "validate": [("zumba", "ddddddddddd", 30, 40), ("abseiling", "eeeeeeeeeee", 0, 10)]}
    for split, rs in rows.items():
        _csv(root / "annotations" / f"{split}.csv", ["label", "youtube_id", "time_start", "time_end", "split"], [[*r, split] for r in rs])
        for label, ytid, t0, t1 in rs:
            if ytid != "eeeeeeeeeee":
                media.video(root / "videos" / split / label / f"{ytid}_{t0:06d}_{t1:06d}.mp4", seconds=2.0)


def make_esc50(root: Path) -> None:
    """5 folds x 2 classes, 5 s 44.1 kHz wav; tone from 1.0 s."""
    rows = []
    for fold in range(1, 6):
        for target, cat in [(0, "dog"), (1, "rooster")]:
            name = f"{fold}-{100 + target}-A-{target}.wav"
            if not (root / "audio" / name).exists():
                write_wav(root / "audio" / name)
            rows.append([name, fold, target, cat, "True", 100 + target + 10 * fold, "A"])
    _csv(root / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"], rows)


AUDIOSET_CLASSES = [("/m/09x0r", "Speech"), ("/m/04rlf", "Music"), ("/m/0jbk", "Animal")]


def _segments(path: Path, rows: list[tuple[str, float, float, list[str]]]) -> None:
    lines = ["# Segments csv created Sun Mar  5 10:54:25 2017", f"# num_ytids={len(rows)}, num_segs={len(rows)}, num_unique_labels=3, num_positive_labels=4",
             "# YTID, start_seconds, end_seconds, positive_labels"]
    lines += [f'{y}, {s:.3f}, {e:.3f}, "{",".join(m)}"' for y, s, e, m in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def make_audioset(root: Path, media: MediaCache) -> None:
    _csv(root / "class_labels_indices.csv", ["index", "mid", "display_name"], [[i, m, n] for i, (m, n) in enumerate(AUDIOSET_CLASSES)])
    train = [("--aaaaaaaaa", 30.0, 40.0, ["/m/09x0r", "/m/04rlf"]), ("-bbbbbbbbbb", 0.0, 10.0, ["/m/0jbk"]), ("ccccccccccc", 10.0, 20.0, ["/m/04rlf"])]
    evals = [("ddddddddddd", 0.0, 10.0, ["/m/09x0r", "/m/0jbk"])]
    _segments(root / "balanced_train_segments.csv", train)
    _segments(root / "unbalanced_train_segments.csv", train)
    _segments(root / "eval_segments.csv", evals)
    for y, s, e, _ in train + evals:
        media.video(root / "videos" / f"{y}_{int(s)}_{int(e)}.mp4", seconds=3.0)


def make_msrvtt(root: Path, media: MediaCache) -> None:
    rows = [[f"ret{i}", f"msr{7000 + i}", f"video{7000 + i}", f"a caption about video {i}"] for i in range(3)]
    _csv(root / "MSRVTT_JSFUSION_test.csv", ["key", "vid_key", "video_id", "sentence"], rows)
    for r in rows:
        media.video(root / "videos" / "all" / f"{r[2]}.mp4", seconds=3.0)


def make_youcook2(root: Path, media: MediaCache) -> None:
    db = {
        "yc_video_01": {"subset": "validation", "recipe_type": "113", "duration": 3.0,
                        "annotations": [{"segment": [0, 1], "id": 0, "sentence": "crack the eggs"}, {"segment": [1.5, 3], "id": 1, "sentence": "whisk them"}]},
        "yc_video_02": {"subset": "training", "recipe_type": "113", "duration": 3.0,
                        "annotations": [{"segment": [0.5, 2.5], "id": 0, "sentence": "fry the bacon"}]},
    }
    (root).mkdir(parents=True, exist_ok=True)
    (root / "youcookii_annotations_trainval.json").write_text(json.dumps({"database": db}))
    media.video(root / "raw_videos" / "validation" / "113" / "yc_video_01.mp4", seconds=3.0)
    media.video(root / "raw_videos" / "training" / "113" / "yc_video_02.mp4", seconds=3.0)


def make_voc2007(root: Path) -> None:
    objects = {"000001": [("dog", 0), ("person", 0)], "000002": [("car", 1)], "000003": [("car", 0), ("car", 1), ("cat", 1)], "000004": [("bird", 0)]}
    for i, (image_id, objs) in enumerate(objects.items()):
        write_jpg(root / "JPEGImages" / f"{image_id}.jpg", 60 + 40 * i)
        xml = "<annotation><filename>{}.jpg</filename>{}</annotation>".format(
            image_id, "".join(f"<object><name>{n}</name><difficult>{d}</difficult></object>" for n, d in objs))
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{image_id}.xml").write_text(xml)
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    (main / "train.txt").write_text("000001\n000002\n")
    (main / "val.txt").write_text("000003\n")
    (main / "test.txt").write_text("000004\n")


def make_imagenet(root: Path) -> None:
    for split, n in (("train", 2), ("val", 1)):
        for ci, wnid in enumerate(["n01440764", "n01443537"]):
            for k in range(n):
                write_jpg(root / split / wnid / f"{wnid}_{k}.JPEG", 50 + 100 * ci)


def make_crosstask(root: Path, media: MediaCache) -> None:
    rel = root / "crosstask_release"
    (rel / "annotations").mkdir(parents=True)
    (rel / "tasks_primary.txt").write_text(
        "23521\nMake Jello Shots\nhttp://www.wikihow.com/Make-Jello-Shots\n3\npour water,pour jello powder,stir mixture\n\n"
        "59684\nBuild Simple Floating Shelves\nhttp://www.wikihow.com/x\n2\ncut shelf,drill holes\n\n"
    )
    (rel / "videos.csv").write_text("23521,jjjjjjjjjj1,https://www.youtube.com/watch?v=jjjjjjjjjj1\n59684,sssssssssss,https://www.youtube.com/watch?v=sssssssssss\n")
    (rel / "videos_val.csv").write_text("23521,jjjjjjjjjj1,https://www.youtube.com/watch?v=jjjjjjjjjj1\n")
    (rel / "annotations" / "23521_jjjjjjjjjj1.csv").write_text("1,0.2,1.1\n3,2.0,2.9\n")
    media.video(root / "videos" / "23521" / "jjjjjjjjjj1.mp4", seconds=3.0)
    media.video(root / "videos" / "59684" / "sssssssssss.mp4", seconds=3.0)


def make_video_folder(root: Path, media: MediaCache, n: int = 4, captions: list[list] | None = None) -> list[str]:
    """``videos/*.mp4`` (3 s, tone at 1 s) + ``captions.csv``; returns the video ids."""
    ids = [f"clip{i:02d}" for i in range(n)]
    for vid in ids:
        media.video(root / "videos" / f"{vid}.mp4", seconds=3.0)
    rows = captions if captions is not None else [[v, 0.0, 1.5, f"first part of {v}"] for v in ids] + [[v, 1.5, 3.0, f"second part of {v}"] for v in ids]
    _csv(root / "captions.csv", ["video_id", "start", "end", "text"], rows)
    return ids


def make_howto100m(root: Path, media: MediaCache) -> list[str]:
    """HowTo100M as released: ``videos/<id>.<container>`` (4 s; one .mkv) and ``caption.json`` (no split files); returns the ids."""
    ids = ["htm_aaaaaaaa", "htm_bbbbbbbb", "htm_cccccccc", "htm_dddddddd"]
    for i, vid in enumerate(ids):
        media.video(root / "videos" / f"{vid}{'.mkv' if i == 3 else '.mp4'}", seconds=4.0)
    captions = {vid: {"start": [0.0, 1.5, 3.0], "end": [1.5, 3.0, 4.0],
                      "text": [f"first we chop the onion {i}", "then fry it in the pan", "serve it hot"]} for i, vid in enumerate(ids)}
    root.mkdir(parents=True, exist_ok=True)
    (root / "caption.json").write_text(json.dumps(captions))
    return ids


def write_word2vec_bin(path: Path, words: list[str], dim: int = 300, seed: int = 0) -> np.ndarray:
    """A GoogleNews-style binary word2vec file: ``"N D\\n"`` then ``word + b" " + float32[D]`` per entry."""
    vectors = np.random.default_rng(seed).standard_normal((len(words), dim)).astype("<f4")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(f"{len(words)} {dim}\n".encode())
        for word, vec in zip(words, vectors):
            f.write(word.encode() + b" " + vec.tobytes() + b"\n")
    return vectors
