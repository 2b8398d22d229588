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
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

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


class Extractor:
    """Turns one video into its feature files (see the module docstring)."""

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

    def __call__(self, video_id: str, path: str, out: Path) -> None:
        info = probe(path)
        duration = max(info.duration, 1e-3)
        # one decode of the whole video: every clip is cut from it
        total = max(self.num_frames, int(np.floor(duration * self.fps)))
        whole = read_clip(path, 0.0, total, self.fps, SAMPLE_RATE if info.has_audio else None, short_side=self.short_side)
        frames, wave = whole.frames, whole.audio
        for stream, rate in self.streams.items():
            feats = self.encode("video", video_id, self.clips(video_id, frames, None, SAMPLE_RATE, rate, duration))
            save_npz(out / f"{video_id}_{stream}.npz", features=feats.numpy())
        spec = mcn_log_mel(wave if wave is not None else np.zeros(int(duration * SAMPLE_RATE), np.float32))
        save_npz(out / f"{video_id}_spec.npz", arr_0=spec.numpy())
        if self.audio_rate_hz:
            audio, sr = wave, SAMPLE_RATE
            if self.audio_sr != SAMPLE_RATE and info.has_audio:
                audio, sr = read_clip(path, 0.0, total, self.fps, self.audio_sr, with_video=False).audio, self.audio_sr
            silence = np.zeros(int(duration * sr), np.float32)
            feats = self.encode("audio", video_id, self.clips(video_id, None, audio if audio is not None else silence, sr, self.audio_rate_hz, duration))
            save_npz(out / f"{video_id}_audio.npz", features=feats.numpy())


def features_extract(
    pretrain_config: str,
    out: str,
    ckpt: str | None = None,
    split: str = "all",
    streams: dict[str, float] | None = None,
    audio_rate_hz: float | None = None,
    batch_size: int = 64,
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
    done = skipped = 0
    failures: list[tuple[str, str, str]] = []
    bar = tqdm(videos, desc="features", unit="video", disable=not progress, mininterval=2.0)
    for video_id, path in bar:
        if all(p.is_file() for p in extractor.outputs(target, video_id)):
            skipped += 1
            continue
        try:
            extractor(video_id, path, target)
            done += 1
        except MediaDecodeError as err:
            failures.append((video_id, path, err.reason))
            bar.write(f"skipping unreadable video {path}: {err.reason}")
        bar.set_postfix(written=done, resumed=skipped, failed=len(failures))
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
