"""Pre-extracted features as a corpus (MCN): the HowTo100M feature release's layout and ``versanet features extract``'s output.

Layout (MCN's released HowTo100M features; what ``versanet features extract`` writes), under ``root``::

    <features_dir>/<path>/<video_id>_2d.npz    key "features": [T_2d, d_2d] float, one row per second (2D CNN, 1 fps)
    <features_dir>/<path>/<video_id>_3d.npz    key "features": [T_3d, d_3d], one row per 16 frames at 24 fps (3D CNN, 1.5 fps)
    <audio_dir>/<path>/<video_id>_spec.npz     key "arr_0":    [40, F] log-mel, 16 kHz, 25 ms window, 10 ms hop
    captions (caption.json {video_id: {start, end, text}} or captions.csv video_id,start,end,text)
    videos list (optional): a CSV with a ``path`` column (MCN's ``HowTo100M_*_videopaths.txt``) or one path per line

``<path>`` is the video's folder inside the release (empty for a flat folder); the video id is its
last component. Without a video list, every ``*_2d.npz`` under ``<features_dir>`` is a video.
Splits: ``val_split`` (and optionally ``train_split``), files of video ids, one per line.

A training sample is one video with ``clips_per_video`` clips (MCN: 32), each built as MCN's loader
builds it: a caption drawn at random (with replacement), widened with its nearest neighbouring
captions until it spans ``min_time`` seconds (10), its words (the captions' texts in the order they
were joined), its video feature (per stream, the rows ``int(start * fps) .. int(end * fps)``
max-pooled over time and L2-normalised, zeros when the window holds no row; the streams
concatenated: 2 x 2048 = 4096) and its audio (the spectrogram frames ``floor((t * 16000 - 200) / 160)``
from start to end, zero-padded or cut to ``audio_frames``, 1000). Evaluation samples are, with
``eval_samples: middle``, one clip per video (the middle caption, widened the same way), or, with
``eval_samples: captions``, every caption as it is (a benchmark's segments, e.g. YouCook2's
annotated steps or an MSR-VTT video with its test sentence, written as a caption file), its audio
cut to ``eval_audio_frames`` (MCN: 5 x 1024 for YouCook2, 3 x 1024 for MSR-VTT).

Tensors (N clips): ``video [N, D]``, ``audio [N, 41, audio_frames]`` (40 mel rows, then a 0/1 row
marking the real frames, which :class:`~versanet.encoders.mcn.resdavenet.ResDAVEnet` pools over in
evaluation), ``text [N, L]`` word ids from the text transform, ``mask`` (every modality present),
``index [N]``, ``label`` (``labels.csv`` columns, when given) and ``bad_count`` per video. Batches
concatenate the videos' clips: a batch of B videos holds ``B * clips_per_video`` rows, video-major.

A missing or unreadable feature file makes the video unreadable: it is logged, counted and replaced
by another (:mod:`versanet.data.failures`), like an undecodable video.

Where versanet differs from MCN's loader on purpose: a caption starting within the first 12.5 ms
gives the reference a negative first frame (``-2``), which Python slicing turns into an empty or
wrong window; versanet clamps it to 0. Audio is kept as float32 (the reference stores float16).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from versanet.data.captions import Caption, read_captions
from versanet.data.failures import SkipBadSamples
from versanet.data.loaders import make_loader
from versanet.data.transforms import Corpus, ModalityTransform
from versanet.data.video_io import MediaDecodeError
from versanet.registry import register

log = logging.getLogger("versanet.data")

SAMPLE_RATE = 16000
HOP = 160  # 10 ms
N_FFT = 400  # 25 ms
N_MELS = 40
#: per stream of video features, its rows per second (MCN: 2D ResNet-152 at 1 fps, 3D ResNeXt-101 at 24/16 fps)
DEFAULT_STREAMS = {"2d": 1.0, "3d": 1.5}


# ---------------------------------------------------------------------------- the audio front end
def mcn_log_mel(wave: np.ndarray | Tensor, sample_rate: int = SAMPLE_RATE, n_mels: int = N_MELS, f_min: float = 20.0) -> Tensor:
    """MCN's (DAVEnet's ``LoadAudio``) log-mel spectrogram ``[n_mels, F]`` of a mono waveform at ``sample_rate``.

    DC removed, pre-emphasis 0.97, STFT with a 400-sample (25 ms) symmetric Hamming window, hop 160
    (10 ms), centred frames with reflect padding (librosa's ``stft``), power, a Slaney-normalised
    mel filter bank (librosa's ``filters.mel``: ``n_mels`` bands from ``f_min`` to Nyquist), then
    ``power_to_db(ref=max)``: ``10 log10(max(S, 1e-10)) - 10 log10(max(S))``, floored 80 dB below the peak.
    """
    import torchaudio

    y = torch.as_tensor(np.asarray(wave), dtype=torch.float64).flatten()
    if y.numel() == 0:
        y = torch.zeros(200, dtype=torch.float64)
    y = y - y.mean()
    y = torch.cat([y[:1], y[1:] - 0.97 * y[:-1]])
    window = torch.hamming_window(N_FFT, periodic=False, dtype=torch.float64)
    stft = torch.stft(y, N_FFT, HOP, N_FFT, window, center=True, pad_mode="reflect" if y.numel() > N_FFT // 2 else "constant",
                      return_complex=True)
    power = stft.abs().pow(2)  # [N_FFT // 2 + 1, F]
    fbank = torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, f_min, sample_rate / 2, n_mels, sample_rate, norm="slaney", mel_scale="slaney")
    mel = fbank.T.to(power.dtype) @ power  # [n_mels, F]
    db = 10.0 * torch.log10(mel.clamp(min=1e-10))
    db = db - 10.0 * math.log10(max(float(mel.max()), 1e-10))
    return db.clamp(min=float(db.max()) - 80.0).float()


def seconds_to_frames(t: float) -> int:
    """librosa's ``time_to_frames(t, sr=16000, hop_length=160, n_fft=400)``: ``floor((t * 16000 - 200) / 160)``."""
    return int(math.floor((t * SAMPLE_RATE - N_FFT // 2) / HOP))


# ---------------------------------------------------------------------------- reading one video's files
def read_npz(path: Path, key: str, what: str) -> np.ndarray:
    """Array ``key`` of ``path``, 2-D and non-empty; :class:`MediaDecodeError` naming the file otherwise."""
    if not path.is_file():
        raise MediaDecodeError(path, f"{what} file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            if key not in data:
                raise MediaDecodeError(path, f"{what} file has no array {key!r} (it has: {', '.join(data.files) or 'nothing'})")
            array = np.asarray(data[key], dtype=np.float32)
    except MediaDecodeError:
        raise
    except (OSError, ValueError, EOFError) as err:
        raise MediaDecodeError(path, f"unreadable {what} file: {type(err).__name__}: {err}") from None
    if array.ndim != 2 or 0 in array.shape or not np.isfinite(array).all():
        raise MediaDecodeError(path, f"{what} must be a finite 2-D array with rows, got shape {array.shape}")
    return array


def pool_window(features: Tensor, start: float, end: float, fps: float) -> Tensor:
    """Rows ``int(start * fps) .. int(end * fps)`` (inclusive) of ``[T, d]`` max-pooled and L2-normalised; zeros when empty."""
    window = features[int(start * fps) : int(end * fps) + 1]
    if window.shape[0] == 0:
        return features.new_zeros(features.shape[1])
    return F.normalize(window.max(dim=0).values, dim=0)


def audio_window(spec: Tensor, start: float, end: float, frames: int) -> Tensor:
    """Spectrogram ``[40, F]`` -> the clip's frames zero-padded or cut to ``frames``, plus a 0/1 row of real frames: ``[41, frames]``."""
    first, last = max(0, seconds_to_frames(start)), max(0, seconds_to_frames(end))
    clip = spec[:, first:last][:, :frames]
    out = spec.new_zeros(spec.shape[0] + 1, frames)
    out[:-1, : clip.shape[1]] = clip
    out[-1, : clip.shape[1]] = 1.0
    return out


def widen(captions: list[Caption], index: int, min_time: float) -> tuple[float, float, list[str]]:
    """MCN's clip: caption ``index`` joined with its nearest neighbours until it spans ``min_time`` -> (start, end, texts in joining order)."""
    start = end = index
    texts = [captions[index].text]
    while captions[end].end - captions[start].start < min_time:
        if start > 0 and end < len(captions) - 1:
            if captions[end].end - captions[start - 1].start <= captions[end + 1].end - captions[start].start:
                start -= 1
                texts.append(captions[start].text)
            else:
                end += 1
                texts.append(captions[end].text)
        elif start > 0:
            start -= 1
            texts.append(captions[start].text)
        elif end < len(captions) - 1:
            end += 1
            texts.append(captions[end].text)
        else:
            break
    return captions[start].start, captions[end].end, texts


@dataclass
class FeatureVideo:
    """One video of the feature corpus: its id, its folder inside the release, its captions and labels."""

    video_id: str
    path: str
    captions: list[Caption]
    label: dict[str, int] | None = None


# ---------------------------------------------------------------------------- dataset
class FeatureClipDataset(SkipBadSamples, Dataset):
    """Videos -> MCN clip samples (see the module docstring); unreadable feature files are skipped and counted."""

    def __init__(
        self, videos: list[FeatureVideo], features_root: Path, audio_root: Path, text: ModalityTransform, streams: Mapping[str, float],
        train: bool, clips_per_video: int, min_time: float, audio_frames: int, name: str, root: Path,
        max_bad_fraction: float = 0.05, seed: int = 0, eval_samples: str = "middle",
    ) -> None:
        self.eval_samples = eval_samples
        # evaluation on every caption: one sample per (video, caption), else one per video
        self.entries = [(v, i) for v, video in enumerate(videos) for i in range(len(video.captions))] if not train and eval_samples == "captions" \
            else [(v, None) for v in range(len(videos))]
        self.videos, self.features_root, self.audio_root, self.text = videos, features_root, audio_root, text
        self.streams, self.train = dict(streams), train
        self.clips_per_video = clips_per_video if train else 1
        self.min_time, self.audio_frames = min_time, audio_frames
        self.name, self.root, self.max_bad_fraction, self.seed = name, root, max_bad_fraction, seed
        self.stop_on_bad_fraction = train  # evaluation sets report their bad files, never stop a run on them
        self.init_failures()

    def __len__(self) -> int:
        return len(self.entries)

    def _rng(self, index: int) -> np.random.Generator:
        """Evaluation: a function of the index; training: drawn from torch's RNG, which the training loader seeds per
        sample from ``(seed, epoch, index)`` (so the clips picked survive a resume, whatever worker reads them)."""
        if not self.train:
            return np.random.default_rng([self.seed, index])
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))

    def files(self, video: FeatureVideo) -> dict[str, Path]:
        """The video's feature files: one per stream and the spectrogram (``"spec"``)."""
        folder = Path(video.path).parent if video.path else Path()
        out = {s: self.features_root / folder / f"{video.video_id}_{s}.npz" for s in self.streams}
        out["spec"] = self.audio_root / folder / f"{video.video_id}_spec.npz"
        return out

    def load(self, index: int) -> dict[str, Any]:
        video_index, caption = self.entries[index]
        video = self.videos[video_index]
        files = self.files(video)
        feats = {s: torch.from_numpy(read_npz(files[s], "features", f"{s} video features")) for s in self.streams}
        spec = torch.from_numpy(read_npz(files["spec"], "arr_0", "audio spectrogram"))
        if spec.shape[0] != N_MELS:
            raise MediaDecodeError(files["spec"], f"spectrogram has {spec.shape[0]} mel rows, expected {N_MELS} ([40, frames])")
        caps = video.captions
        if self.train:
            picks = self._rng(index).choice(len(caps), self.clips_per_video, replace=True)
            clips = [widen(caps, int(i), self.min_time) for i in picks]
        elif caption is not None:
            clips = [(caps[caption].start, caps[caption].end, [caps[caption].text])]
        else:
            clips = [widen(caps, len(caps) // 2, self.min_time)]
        n = len(clips)
        sample: dict[str, Any] = {
            "video": torch.stack([torch.cat([pool_window(feats[s], a, b, fps) for s, fps in self.streams.items()]) for a, b, _ in clips]),
            "audio": torch.stack([audio_window(spec, a, b, self.audio_frames) for a, b, _ in clips]),
            "text": self.text.encode([" ".join(texts) for _, _, texts in clips]),
            "index": torch.arange(n) + index * self.clips_per_video,
        }
        sample["mask"] = {m: torch.ones(n, dtype=torch.bool) for m in ("video", "audio", "text")}
        if video.label is not None:
            sample["label"] = {k: torch.full((n,), v, dtype=torch.long) for k, v in video.label.items()}
        return sample


def collate_clips(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate the videos' clips (video-major); ``bad_count`` stays one entry per video, file names (str) a list."""
    out: dict[str, Any] = {}
    for key, value in samples[0].items():
        if key == "bad_count":
            out[key] = torch.tensor([s[key] for s in samples])
        elif isinstance(value, str):  # bad_files: newline-joined paths, read by DataHealth
            out[key] = [s[key] for s in samples]
        elif isinstance(value, dict):
            out[key] = {k: torch.cat([s[key][k] for s in samples]) for k in value}
        else:
            out[key] = torch.cat([s[key] for s in samples])
    return out


# ---------------------------------------------------------------------------- data module
def read_video_list(path: Path) -> list[str]:
    """Release paths from a CSV with a ``path`` column (MCN's lists; ``None/`` prefixes dropped) or one per line."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if lines and lines[0].split(",")[0].strip() == "path":
        with path.open(newline="", encoding="utf-8") as f:
            return [row["path"].replace("None/", "") for row in csv.DictReader(f) if row.get("path")]
    return lines


@register("dataset")
class FeatureClipDataModule(LightningDataModule):
    """MCN's pretraining data: pre-extracted video features, audio spectrograms and captions (layout in the module docstring).

    Args:
        root: corpus folder; the other paths are relative to it (or absolute).
        transforms: ``{"text": ...}``: the caption tokenizer (a word2vec or sentencepiece transform);
            video and audio need none (features are read as they are).
        features_dir, audio_dir: where the ``_2d``/``_3d`` and ``_spec`` files are (``audio_dir``
            defaults to ``features_dir``, as in a ``versanet features extract`` output).
        captions: caption file (HowTo100M ``caption.json`` or ``video_id,start,end,text`` CSV).
        videos: video list (see :func:`read_video_list`); None: every ``*_2d.npz`` found.
        train_split, val_split: files of video ids; without ``val_split`` there is no validation.
        labels: optional ``labels.csv`` (``video_id,<columns>``) whose classes travel with each clip.
        streams: video feature streams and their rows per second, concatenated in this order.
        clips_per_video: clips drawn per training video (MCN's ``n_pair``, 32).
        eval_samples: ``middle`` (one widened clip per validation video) or ``captions`` (every caption
            of the validation videos as it is: benchmark segments).
        eval_audio_frames: spectrogram frames of an evaluation clip (default ``audio_frames``).
        min_time: clips are widened to at least this many seconds (10).
        audio_frames: spectrogram frames per clip (1000 = 10 s).
        batch_size: videos per training batch (MCN: 128 x 32 clips = 4096 rows); val_batch_size in videos too.
    """

    def __init__(
        self,
        root: str,
        transforms: dict[str, ModalityTransform],
        features_dir: str = "features",
        audio_dir: str | None = None,
        captions: str = "caption.json",
        videos: str | None = None,
        train_split: str | None = None,
        val_split: str | None = None,
        labels: str | None = None,
        streams: dict[str, float] | None = None,
        clips_per_video: int = 32,
        min_time: float = 10.0,
        audio_frames: int = 1000,
        eval_samples: str = "middle",
        eval_audio_frames: int | None = None,
        batch_size: int = 128,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        max_bad_fraction: float = 0.05,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if "text" not in transforms:
            raise ValueError("FeatureClipDataModule needs transforms: {text: ...} (the caption tokenizer)")
        self.root = Path(root)
        self.transforms = transforms
        self.features_dir, self.audio_dir, self.captions_file = features_dir, audio_dir or features_dir, captions
        self.videos_file, self.train_split, self.val_split, self.labels_file = videos, train_split, val_split, labels
        self.streams = dict(streams or DEFAULT_STREAMS)
        self.clips_per_video, self.min_time, self.audio_frames = clips_per_video, min_time, audio_frames
        if eval_samples not in ("middle", "captions"):
            raise ValueError(f"FeatureClipDataModule.eval_samples must be 'middle' or 'captions', not {eval_samples!r}")
        self.eval_samples, self.eval_audio_frames = eval_samples, eval_audio_frames or audio_frames
        self.batch_size, self.val_batch_size, self.num_workers = batch_size, val_batch_size or batch_size, num_workers
        self.max_bad_fraction, self.seed = max_bad_fraction, seed
        self.label_classes: dict[str, list[str]] = {}
        self.skipped: dict[str, list[str]] = {}
        self._sets: dict[str, FeatureClipDataset] = {}
        self._captions: dict[str, list[Caption]] | None = None

    def _path(self, name: str) -> Path:
        return Path(name) if Path(name).is_absolute() else self.root / name

    def read_captions(self) -> dict[str, list[Caption]]:
        if self._captions is None:
            self._captions = read_captions(self._path(self.captions_file), errors="replace")
        return self._captions

    def all_paths(self) -> list[str]:
        """Every video's release path (``folder/video_id``, or ``video_id`` in a flat folder)."""
        if self.videos_file:
            return read_video_list(self._path(self.videos_file))
        base = self._path(self.features_dir)
        first = next(iter(self.streams))
        if not base.is_dir():
            raise FileNotFoundError(f"FeatureClipDataModule: features folder not found: {base}")
        return sorted(str(p.relative_to(base)).removesuffix(f"_{first}.npz") for p in base.rglob(f"*_{first}.npz"))

    def split_paths(self, split: str) -> list[str]:
        paths = self.all_paths()
        if self.val_split is None:
            if split != "train":
                raise ValueError(f"FeatureClipDataModule has no {split} split: give val_split (a file of video ids)")
            return paths
        val = set(_read_ids(self._path(self.val_split)))
        if split != "train":
            return [p for p in paths if Path(p).name in val]
        train = set(_read_ids(self._path(self.train_split))) if self.train_split else None
        return [p for p in paths if Path(p).name not in val and (train is None or Path(p).name in train)]

    def corpus(self) -> Corpus:
        train = {Path(p).name for p in self.split_paths("train")}
        return Corpus(self.root, [c.text for vid, caps in self.read_captions().items() if vid in train for c in caps])

    def prepare_data(self) -> None:
        corpus = self.corpus()
        for transform in self.transforms.values():
            transform.prepare(corpus)

    def setup(self, stage: str | None = None) -> None:
        corpus = self.corpus()
        for transform in self.transforms.values():
            transform.setup(corpus)
        for split in {"fit": ("train", "val"), "validate": ("val",), "test": ("val",)}.get(stage or "", ("train",)):
            if split == "train" or self.val_split is not None:
                self.dataset(split)

    def _labels(self) -> dict[str, dict[str, int]] | None:
        if not self.labels_file:
            return None
        from versanet.data.captioned_video import read_labels

        labels, self.label_classes = read_labels(self._path(self.labels_file))
        return labels

    def dataset(self, split: str) -> FeatureClipDataset:
        if split not in self._sets:
            captions, labels = self.read_captions(), self._labels()
            videos, skipped = [], []
            for path in self.split_paths(split):
                vid = Path(path).name
                if not captions.get(vid):
                    skipped.append(vid)
                    continue
                videos.append(FeatureVideo(vid, path, captions[vid], None if labels is None else labels.get(vid)))
            if skipped:
                self.skipped[split] = skipped
                log.warning("%s %s: %d of %d videos have no captions and are left out (first: %s)",
                            type(self).__name__, split, len(skipped), len(skipped) + len(videos), skipped[0])
            if not videos:
                raise ValueError(f"FeatureClipDataModule {split}: no video with captions under {self._path(self.features_dir)}")
            self._sets[split] = FeatureClipDataset(
                videos, self._path(self.features_dir), self._path(self.audio_dir), self.transforms["text"], self.streams,
                train=split == "train", clips_per_video=self.clips_per_video, min_time=self.min_time,
                audio_frames=self.audio_frames if split == "train" else self.eval_audio_frames,
                name=f"{type(self).__name__} {split}", root=self.root, max_bad_fraction=self.max_bad_fraction, seed=self.seed,
                eval_samples=self.eval_samples,
            )
        return self._sets[split]

    def modality_specs(self) -> dict[str, dict[str, Any]]:
        dims = {}
        try:
            first = self.dataset("train")[0]
            dims = {"video": {"dim": int(first["video"].shape[1])}}
        except (ValueError, FileNotFoundError):
            pass
        return {**dims, "audio": {"n_mels": N_MELS}, **{m: t.spec() for m, t in self.transforms.items()}}

    def _loader(self, dataset: Dataset, batch_size: int, train: bool) -> DataLoader:
        return make_loader(dataset, batch_size, train, self.num_workers, collate_clips)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("train"), self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_split is None:
            return []  # no validation split: Lightning skips validation
        return self._loader(self.dataset("val"), self.val_batch_size, train=False)

    def test_dataloader(self) -> DataLoader | list:
        return self.val_dataloader()


def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
