"""Per-modality transforms: a decoded clip -> one modality's model input (and its presence mask).

Every transform implements :class:`ModalityTransform`. The data module holds one per modality
(``transforms: {video: ..., audio: ..., text: ...}``, keys = batch keys = encoder keys), decodes
only what its transforms ``need`` and calls each on a :class:`RawClip`. A plugin modality is a new
transform (plus an encoder) registered under the ``transform`` kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torchaudio
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

from versanet.registry import register


@dataclass
class RawClip:
    """What the reader decoded for one sample.

    ``frames``: uint8 ``[T, H, W, 3]``; ``audio``: float32 ``[S]`` mono at ``audio_rate`` (None when the
    file has no audio stream); ``captions``: up to K candidate texts, nearest first.
    """

    video_id: str
    start: float
    duration: float
    train: bool
    frames: np.ndarray | None = None
    audio: np.ndarray | None = None
    audio_rate: int | None = None
    captions: list[str] = field(default_factory=list)


@dataclass
class Corpus:
    """What a transform may learn from before training (e.g. a tokenizer from the training captions)."""

    root: Path
    captions: list[str]


class ModalityTransform:
    """Base class: ``RawClip -> (input tensor, presence mask [K] bool)``.

    ``needs``: which parts of the clip to decode (``"frames"``, ``"audio"``, ``"captions"``).
    ``prepare(corpus)``: runs once before training on one process (train a vocabulary, ...), must be
    idempotent; ``setup(corpus)`` runs on every process afterwards (load what ``prepare`` wrote).
    ``spec()``: facts the encoder may check (``Encoder.check_input_spec``).
    """

    needs: ClassVar[frozenset[str]] = frozenset()

    def prepare(self, corpus: Corpus) -> None:
        """One-time work before training (default: nothing)."""

    def setup(self, corpus: Corpus) -> None:
        """Per-process setup after ``prepare`` (default: nothing)."""

    def spec(self) -> dict[str, Any]:
        return {}

    def __call__(self, clip: RawClip) -> tuple[Tensor, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")


class _AdditiveBrightness(torch.nn.Module):
    """x + U(-delta, delta), clipped to [0, 1]: MMV's (TF) brightness; torchvision's brightness is multiplicative."""

    def __init__(self, delta: float) -> None:
        super().__init__()
        self.delta = delta

    def forward(self, x: Tensor) -> Tensor:
        shift = (torch.rand(()) * 2 - 1) * self.delta
        return (x + shift).clamp_(0.0, 1.0)


@register("transform")
class VideoClipTransform(ModalityTransform):
    """RGB frames -> ``[3, T, crop, crop]`` float in [0, 1] with MMV's augmentations (torchvision v2).

    Train: short side resized to ``resize * U(scale)``, random ``crop``, horizontal flip with
    ``flip_prob``, colour jitter (additive brightness +-32/255, contrast and saturation 0.6-1.4,
    hue +-0.2) with ``color_jitter_prob``. Eval: short side ``resize``, centre ``crop``.
    Set ``flip_prob: 0`` when left/right carries meaning (the toy world's captions say "moves left").
    """

    needs = frozenset({"frames"})

    def __init__(
        self,
        crop: int = 200,
        resize: int = 224,
        scale: tuple[float, float] = (0.8, 1.2),
        flip_prob: float = 0.5,
        color_jitter_prob: float = 0.8,
        brightness: float = 32 / 255,
        contrast: tuple[float, float] = (0.6, 1.4),
        saturation: tuple[float, float] = (0.6, 1.4),
        hue: float = 0.2,
    ) -> None:
        self.crop, self.resize = crop, resize
        jitter = v2.Compose([_AdditiveBrightness(brightness), v2.ColorJitter(contrast=contrast, saturation=saturation, hue=hue)])
        self.train_ops = v2.Compose([
            v2.ToDtype(torch.float32, scale=True),
            v2.RandomResize(max(crop, int(resize * scale[0])), max(crop, int(resize * scale[1])) + 1, antialias=True),
            v2.RandomCrop(crop, pad_if_needed=True),
            v2.RandomHorizontalFlip(flip_prob),
            v2.RandomApply([jitter], p=color_jitter_prob),
        ])
        self.eval_ops = v2.Compose([
            v2.ToDtype(torch.float32, scale=True),
            v2.Resize(resize, antialias=True),
            v2.CenterCrop(crop),
        ])

    def spec(self) -> dict[str, Any]:
        return {"crop": self.crop}

    def __call__(self, clip: RawClip) -> tuple[Tensor, Tensor]:
        """-> ``[3, T, crop, crop]``, mask ``[1]``."""
        video = tv_tensors.Video(torch.from_numpy(clip.frames).permute(0, 3, 1, 2))  # [T, 3, H, W]
        video = (self.train_ops if clip.train else self.eval_ops)(video)
        return video.as_subclass(Tensor).permute(1, 0, 2, 3).contiguous(), torch.ones(1, dtype=torch.bool)


@register("transform")
class LogMelTransform(ModalityTransform):
    """Mono waveform -> log-mel ``[1, frames, n_mels]`` (torchaudio), ``log(mel + log_offset)``.

    Defaults are small for 16 kHz toy audio; MMV's dmvr preset is sample_rate 48000, n_fft 2048,
    hop 1024, 80 bins, 80-7600 Hz, offset 1e-6 (SPEC section 3). A clip without audio gives zeros
    and a False mask.
    """

    needs = frozenset({"audio"})

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 160,
        n_mels: int = 40,
        f_min: float = 80.0,
        f_max: float | None = 7600.0,
        log_offset: float = 1e-6,
    ) -> None:
        self.sample_rate, self.n_mels, self.log_offset = sample_rate, n_mels, log_offset
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, f_min=f_min, f_max=f_max, n_mels=n_mels, power=1.0
        )

    def spec(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "n_mels": self.n_mels}

    def __call__(self, clip: RawClip) -> tuple[Tensor, Tensor]:
        """-> ``[1, frames, n_mels]``, mask ``[1]``."""
        if clip.audio_rate is not None and clip.audio_rate != self.sample_rate:
            raise ValueError(f"audio decoded at {clip.audio_rate} Hz but LogMelTransform.sample_rate is {self.sample_rate}; set data.init_args.audio_rate")
        present = clip.audio is not None
        wave = torch.from_numpy(clip.audio) if present else torch.zeros(round(clip.duration * self.sample_rate))
        logmel = torch.log(self.mel(wave) + self.log_offset).T.unsqueeze(0)  # [1, frames, n_mels]
        if not present:
            logmel = torch.zeros_like(logmel)
        return logmel, torch.tensor([present])


_PUNCTUATION = re.compile(r"[^\w\s']+")


def normalise_text(text: str) -> str:
    """Lowercase, strip punctuation, collapse whitespace."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


class CaptionTokens(ModalityTransform):
    """Base of the text transforms: the clip's K caption candidates -> ids ``[K, max_tokens]`` and mask ``[K]``.

    Subclasses set ``num_candidates`` and ``max_tokens`` and implement ``encode(texts) -> [len, max_tokens]``.
    Missing candidates (a clip with fewer than K captions, or none) are all-padding rows with a False mask.
    """

    needs = frozenset({"captions"})
    num_candidates: int
    max_tokens: int

    def encode(self, texts: list[str]) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement encode")

    def __call__(self, clip: RawClip) -> tuple[Tensor, Tensor]:
        """-> ``[K, max_tokens]``, mask ``[K]``."""
        texts = clip.captions[: self.num_candidates]
        tokens = torch.zeros(self.num_candidates, self.max_tokens, dtype=torch.long)
        if texts:
            tokens[: len(texts)] = self.encode(texts)
        mask = torch.zeros(self.num_candidates, dtype=torch.bool)
        mask[: len(texts)] = True
        return tokens, mask


@register("transform")
class TokenizeText(CaptionTokens):
    """K caption candidates -> token ids ``[K, max_tokens]`` with a learned sentencepiece vocabulary.

    ``prepare`` trains a sentencepiece model on the training captions (once, written to
    ``model_path`` or ``<data root>/tokenizer/spm_<model_type>_<vocab_size>.model``; delete it to
    retrain); id 0 pads, 1 is unknown. ``model_type: word`` keeps whole words as tokens (small,
    closed vocabularies like the toy world's); ``unigram`` (default) suits open-vocabulary speech.
    Captions longer than ``max_tokens`` tokens are truncated: check the length of yours.
    """

    def __init__(self, num_candidates: int = 4, max_tokens: int = 16, vocab_size: int = 1000, model_path: str | None = None, model_type: str = "unigram") -> None:
        self.num_candidates, self.max_tokens, self.vocab_size = num_candidates, max_tokens, vocab_size
        self.model_path, self.model_type = model_path, model_type
        self._sp = None

    def _path(self, corpus: Corpus) -> Path:
        return Path(self.model_path) if self.model_path else corpus.root / "tokenizer" / f"spm_{self.model_type}_{self.vocab_size}.model"

    def prepare(self, corpus: Corpus) -> None:
        from versanet.data.tokenizer import train_sentencepiece

        path = self._path(corpus)
        if not path.exists():
            train_sentencepiece([normalise_text(c) for c in corpus.captions], path, self.vocab_size, self.model_type)

    def setup(self, corpus: Corpus) -> None:
        from versanet.data.tokenizer import load_sentencepiece

        self._sp = load_sentencepiece(self._path(corpus))

    def spec(self) -> dict[str, Any]:
        return {"vocab_size": self._sp.get_piece_size() if self._sp is not None else None, "pad_id": 0, "max_tokens": self.max_tokens}

    def encode(self, texts: list[str]) -> Tensor:
        """Texts -> ``[len(texts), max_tokens]`` int64, 0-padded."""
        if self._sp is None:
            raise RuntimeError("TokenizeText used before setup(): the data module calls prepare() and setup() first")
        out = torch.zeros(len(texts), self.max_tokens, dtype=torch.long)
        for i, ids in enumerate(self._sp.encode([normalise_text(t) for t in texts])):
            ids = ids[: self.max_tokens]
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out
