"""``versanet features extract``: per-video features in the layout of MCN's released HowTo100M features, from any versanet video encoder.

    versanet features extract CONFIG DIR [--ckpt CKPT] [--split all]

(positional, as every tool command's required arguments: jsonargparse reserves ``--config``.)

CONFIG is a pretraining config (its ``model`` and ``data`` sections): the data module lists the
videos and says how to decode them (``num_frames``, ``fps``, ``short_side``), its transforms turn
decoded clips into model input. With ``--ckpt`` the network and transforms are the checkpoint's (a
``versanet fit`` checkpoint or one converted from published weights); without it the config's
network is built with fixed random weights (``--seed``), a baseline that needs no training.

For each video ``<id>`` it writes, under DIR (flat):

- ``<id>_<stream>.npz`` (key ``features``, float32 ``[T, d]``) for each video stream, by default
  ``2d`` at 1 row per second and ``3d`` at 1.5 rows per second as in the release: row ``i`` is the
  video encoder's feature of the clip (``num_frames`` frames at ``fps``) starting at ``i / rate``
  seconds (moved back to fit at the end), ``T = max(1, floor(duration * rate))``;
- ``<id>_spec.npz`` (key ``arr_0``, float32 ``[40, F]``): MCN's log-mel spectrogram of the audio
  track at 16 kHz (:func:`versanet.data.features.mcn_log_mel`; silence when there is no audio);
- with ``--audio_rate_hz R``, ``<id>_audio.npz`` (key ``features``): the audio encoder's feature of
  the clip starting at every ``1/R`` seconds.

Each file is written to a temporary name and renamed, so an interrupted run leaves no partial file;
a second run skips every video whose files all exist (resumable). Videos that cannot be decoded are
skipped, counted, named on screen and listed in ``DIR/failures.csv`` (``video_id,path,reason``).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from versanet.data.features import SAMPLE_RATE, mcn_log_mel
from versanet.data.transforms import RawClip
from versanet.data.video_io import MediaDecodeError, probe, read_clip


def build_from_config(config: str | Path) -> tuple[Any, Any]:
    """(model, data module) of a config's ``model`` and ``data`` sections, instantiated as LightningCLI would."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule, LightningModule

    from versanet import registry

    registry.load_builtin()
    registry.load_plugins(strict=False)
    raw = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    if "data" not in raw:
        raise ValueError(f"{config}: needs a data section (the videos to read and their transforms)")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningModule, "model", required=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    cfg = parser.parse_object({k: raw[k] for k in ("model", "data") if k in raw})
    objects = parser.instantiate_classes(cfg)
    return objects.get("model"), objects["data"]


def video_list(datamodule: Any, split: str) -> list[tuple[str, str]]:
    """``(video_id, path)`` of every video of ``split`` (``all``: train, val and test, each once)."""
    datamodule.prepare_data()
    datamodule.setup("fit" if split in ("train", "all") else "test")
    splits = ["train", "val", "test"] if split == "all" else [split]
    seen: dict[str, str] = {}
    for name in splits:
        try:
            dataset = datamodule.dataset(name)
        except (FileNotFoundError, ValueError, KeyError):
            continue
        for item in getattr(dataset, "items", []):
            if item.path:
                seen.setdefault(item.key, str(item.path))
    if not seen:
        raise ValueError(f"{type(datamodule).__name__}: no videos listed for split {split!r}")
    return sorted(seen.items())


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` atomically (a temporary file, then a rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        np.savez(f, **arrays)
    tmp.replace(path)


@dataclass
class DecodedVideo:
    """One video decoded for extraction: its frames at ``fps``, its audio at 16 kHz (and at the audio encoder's rate), its spectrogram."""

    video_id: str
    path: str
    duration: float
    frames: np.ndarray | None = None
    spec: Tensor | None = None
    audio: np.ndarray | None = None
    audio_rate: int = SAMPLE_RATE
    error: str | None = None  # the reason it could not be decoded


class VideoDecoder(Dataset):
    """``(video_id, path)`` list -> :class:`DecodedVideo` (decoding runs in DataLoader workers); an unreadable video comes back with ``error``."""

    def __init__(self, videos: list[tuple[str, str]], num_frames: int, fps: float, short_side: int | None, encoder_audio_rate: int | None) -> None:
        self.videos, self.num_frames, self.fps, self.short_side = videos, num_frames, fps, short_side
        self.encoder_audio_rate = encoder_audio_rate

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> DecodedVideo:
        video_id, path = self.videos[index]
        try:
            info = probe(path)
            duration = max(info.duration, 1e-3)
            # one decode of the whole video: every clip is cut from it
            total = max(self.num_frames, int(np.floor(duration * self.fps)))
            whole = read_clip(path, 0.0, total, self.fps, SAMPLE_RATE if info.has_audio else None, short_side=self.short_side)
            wave = whole.audio if whole.audio is not None else np.zeros(int(duration * SAMPLE_RATE), np.float32)
            decoded = DecodedVideo(video_id, path, duration, whole.frames, mcn_log_mel(wave))
            if self.encoder_audio_rate:
                audio, sr = wave, SAMPLE_RATE
                if self.encoder_audio_rate != SAMPLE_RATE:
                    sr = self.encoder_audio_rate
                    audio = read_clip(path, 0.0, total, self.fps, sr, with_video=False).audio if info.has_audio else None
                decoded.audio = audio if audio is not None else np.zeros(int(duration * sr), np.float32)
                decoded.audio_rate = sr
            return decoded
        except MediaDecodeError as err:
            return DecodedVideo(video_id, path, 0.0, error=err.reason)


class Extractor:
    """Turns one decoded video into its feature files (see the module docstring)."""

    def __init__(self, model: Any, transforms: dict[str, Any], datamodule: Any, streams: dict[str, float],
                 audio_rate_hz: float | None, batch_size: int) -> None:
        self.model, self.transforms, self.streams = model.eval(), transforms, streams
        self.audio_rate_hz, self.batch_size = audio_rate_hz, batch_size
        self.num_frames = int(getattr(datamodule, "clip_kw", {}).get("num_frames", getattr(datamodule, "num_frames", 8)))
        self.fps = float(getattr(datamodule, "clip_kw", {}).get("fps", getattr(datamodule, "fps", 10.0)))
        self.short_side = getattr(datamodule, "clip_kw", {}).get("short_side", getattr(datamodule, "short_side", None))
        self.audio_sr = int(getattr(datamodule, "clip_kw", {}).get("audio_rate", getattr(datamodule, "audio_rate", 16000)))
        for m in ["video"] + (["audio"] if audio_rate_hz else []):
            if m not in transforms or m not in model.encoders:
                raise ValueError(f"features extract: the model and its data need a {m} encoder and a {m} transform")

    def decoder(self, videos: list[tuple[str, str]]) -> VideoDecoder:
        return VideoDecoder(videos, self.num_frames, self.fps, self.short_side, self.audio_sr if self.audio_rate_hz else None)

    def outputs(self, out: Path, video_id: str) -> list[Path]:
        names = [f"{video_id}_{s}.npz" for s in self.streams] + [f"{video_id}_spec.npz"]
        if self.audio_rate_hz:
            names.append(f"{video_id}_audio.npz")
        return [out / n for n in names]

    @torch.no_grad()
    def encode(self, modality: str, video_id: str, clips: list[RawClip]) -> Tensor:
        """Encoder features ``[len(clips), d]``."""
        x = torch.stack([self.transforms[modality](raw)[0] for raw in clips])
        return torch.cat([self.model.encode(modality, part) for part in x.split(self.batch_size)]).float()

    def clips(self, video_id: str, frames: np.ndarray | None, audio: np.ndarray | None, audio_sr: int, rate: float, duration: float) -> list[RawClip]:
        """The clips starting every ``1 / rate`` s (``num_frames`` frames at ``fps``, the window moved back to fit), cut from the decoded video."""
        n = max(1, int(np.floor(duration * rate + 1e-6)))
        clip_seconds = self.num_frames / self.fps
        out = []
        for i in range(n):
            start = max(0.0, min(i / rate, duration - clip_seconds))
            clip_frames = None
            if frames is not None:
                first = min(int(round(start * self.fps)), max(0, len(frames) - self.num_frames))
                clip_frames = frames[first : first + self.num_frames]
                if len(clip_frames) < self.num_frames:  # a video shorter than one clip: repeat its last frame
                    clip_frames = np.concatenate([clip_frames, np.repeat(clip_frames[-1:], self.num_frames - len(clip_frames), 0)])
            clip_audio = None
            if audio is not None:
                a0, length = int(round(start * audio_sr)), int(round(clip_seconds * audio_sr))
                clip_audio = np.pad(audio[a0 : a0 + length], (0, max(0, length - len(audio[a0 : a0 + length]))))
            out.append(RawClip(video_id, start, clip_seconds, False, frames=clip_frames, audio=clip_audio, audio_rate=audio_sr))
        return out

    def write(self, video: DecodedVideo, out: Path) -> None:
        """Encode a decoded video's clips and write its files."""
        for stream, rate in self.streams.items():
            feats = self.encode("video", video.video_id, self.clips(video.video_id, video.frames, None, SAMPLE_RATE, rate, video.duration))
            save_npz(out / f"{video.video_id}_{stream}.npz", features=feats.numpy())
        save_npz(out / f"{video.video_id}_spec.npz", arr_0=video.spec.numpy())  # type: ignore[union-attr]
        if self.audio_rate_hz:
            clips = self.clips(video.video_id, None, video.audio, video.audio_rate, self.audio_rate_hz, video.duration)
            save_npz(out / f"{video.video_id}_audio.npz", features=self.encode("audio", video.video_id, clips).numpy())


def features_extract(
    pretrain_config: str,
    out: str,
    ckpt: str | None = None,
    split: str = "all",
    streams: dict[str, float] | None = None,
    audio_rate_hz: float | None = None,
    batch_size: int = 64,
    workers: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Write per-video features (MCN's HowTo100M release layout) for every video of a config's data.

    Args:
        pretrain_config: a pretraining config (its model and data sections).
        out: output folder.
        ckpt: a versanet checkpoint whose network and transforms to use; None: the config's network
            with fixed random weights (seeded by ``seed``).
        split: ``train``, ``val``, ``test`` or ``all``.
        streams: video streams and their rows per second (default ``{2d: 1.0, 3d: 1.5}``).
        audio_rate_hz: also write the audio encoder's features at this rate (``_audio.npz``).
        batch_size: clips per encoder call.
        workers: processes that decode videos (0: decode in this process); the encoder then runs on one thread.
        seed: the random weights' seed when there is no ``ckpt``.
        progress: show a progress bar.
    """
    from tqdm import tqdm

    from versanet.checkpoint import load_pretrained

    streams = dict(streams or {"2d": 1.0, "3d": 1.5})
    config = pretrain_config
    model, datamodule = build_from_config(config)
    if ckpt is not None:
        model = load_pretrained(ckpt)
        transforms = {**datamodule.transforms, **model.transforms}
        datamodule.transforms = transforms
    else:
        if model is None:
            raise ValueError(f"{config}: without --ckpt the config needs a model section (its network, with random weights)")
        from versanet.checkpoint import reinitialise

        reinitialise(model, seed)
        transforms = datamodule.transforms
    videos = video_list(datamodule, split)
    extractor = Extractor(model, transforms, datamodule, streams, audio_rate_hz, batch_size)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    todo = [(v, p) for v, p in videos if not all(f.is_file() for f in extractor.outputs(target, v))]
    skipped, done = len(videos) - len(todo), 0
    failures: list[tuple[str, str, str]] = []
    bar = tqdm(total=len(videos), initial=skipped, desc="features", unit="video", disable=not progress, mininterval=2.0)
    # decoding runs in `workers` processes; the encoder in this one, on one thread: a few small clips per call gain
    # nothing from intra-op threads, whose spinning costs several times the work on a busy machine
    loader = DataLoader(extractor.decoder(todo), batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if workers else threads)
    try:
        for video in loader:
            if video.error is not None:
                failures.append((video.video_id, video.path, video.error))
                bar.write(f"skipping unreadable video {video.path}: {video.error}")
            else:
                extractor.write(video, target)
                done += 1
            bar.update(1)
            bar.set_postfix(written=done, resumed=skipped, failed=len(failures))
    finally:
        torch.set_num_threads(threads)
        bar.close()
    if failures:
        with (target / "failures.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["video_id", "path", "reason"])
            writer.writerows(failures)
    summary = {"videos": len(videos), "written": done, "already_there": skipped, "failed": len(failures), "out": str(target)}
    print(f"features: {done} videos written, {skipped} already there, {len(failures)} unreadable"
          + (f" (listed in {target / 'failures.csv'}: {', '.join(v for v, _, _ in failures[:5])}{' ...' if len(failures) > 5 else ''})" if failures else "")
          + f" -> {target}")
    return summary
