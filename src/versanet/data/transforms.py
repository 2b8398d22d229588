"""Per-modality transforms: a decoded clip -> one modality's model input (and its presence mask).

Every transform implements :class:`ModalityTransform`. The data module holds one per modality
(``transforms: {video: ..., audio: ..., text: ...}``, keys = batch keys = encoder keys), decodes
only what its transforms ``need`` and calls each on a :class:`RawClip`. A plugin modality is a new
transform (plus an encoder) registered under the ``transform`` kind.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torchaudio
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from versanet.registry import register


@dataclass
class RawClip:
    """What the reader decoded for one sample.

    ``frames``: uint8 ``[T, H, W, 3]``; ``audio``: float32 ``[S]`` mono at ``audio_rate`` (None when the
    file has no audio stream); ``captions``: up to K candidate texts, nearest first; ``padded``: the file
    is shorter than the clip, so its last frame repeats (see ``short_clips``).
    """

    video_id: str
    start: float
    duration: float
    train: bool
    frames: np.ndarray | None = None
    audio: np.ndarray | None = None
    audio_rate: int | None = None
    captions: list[str] = field(default_factory=list)
    padded: bool = False


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

    Checkpoints carry the transforms a model was trained with, so a checkpoint alone can turn a
    text query or a new video into model input (``versanet.checkpoint.load_pretrained``):
    ``config()`` is the ``class_path`` + ``init_args`` the transform was built with (recorded by the
    base class; constructor arguments must be plain data), ``state()`` what ``prepare``/``setup``
    learned (a vocabulary), as tensors and plain data, and ``load_state(state)`` restores it without
    a corpus. A transform that learns nothing needs neither.
    """

    needs: ClassVar[frozenset[str]] = frozenset()

    def __new__(cls, *args: Any, **kwargs: Any) -> ModalityTransform:
        self = super().__new__(cls)
        # record the constructor call (a plain-data config), so checkpoints can rebuild the transform
        bound = inspect.signature(cls.__init__).bind(self, *args, **kwargs)
        bound.apply_defaults()
        self._init_args = {k: v for k, v in list(bound.arguments.items())[1:] if k not in ("args", "kwargs")}
        return self

    def config(self) -> dict[str, Any]:
        """``{"class_path": "package.module.Class", "init_args": {...}}`` of this transform."""
        cls = type(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(getattr(self, "_init_args", {}))}

    def state(self) -> dict[str, Any]:
        """What ``prepare``/``setup`` learned, as tensors and plain data (default: nothing)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` without a corpus (default: nothing to restore)."""

    def prepare(self, corpus: Corpus) -> None:
        """One-time work before training (default: nothing)."""

    def setup(self, corpus: Corpus) -> None:
        """Per-process setup after ``prepare`` (default: nothing)."""

    def spec(self) -> dict[str, Any]:
        return {}

    def __call__(self, clip: RawClip) -> tuple[Tensor, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")


# Frames per chunk of VideoClipTransform's passes: this many output pixels (x 3 channels x 4 bytes ~ 4 MB; 8 frames
# of 200 x 200: measured fastest, between cache-sized chunks and fewer calls, each of which costs a resize plan).
_CHUNK_PIXELS = 320_000
# torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma): the grey level of contrast and saturation.
_GREY = (0.2989, 0.587, 0.114)
_GREY_T = torch.tensor(_GREY, dtype=torch.float64)
_GREY_SUM = float(sum(_GREY))


def _resized_size(height: int, width: int, short: int) -> tuple[int, int]:
    """Frame size after resizing its short side to ``short`` (torchvision's ``Resize([short])`` rule)."""
    if width <= height:
        return int(short * height / width), short
    return short, int(short * width / height)


def _axis_window(size_in: int, size_out: int, start: int, length: int, exact: bool) -> tuple[int, int, int, int]:
    """Plan the output rows ``[start, start + length)`` of an antialiased bilinear resize ``size_in -> size_out``
    along one axis, computed from a source window only.

    Returns ``(w0, w1, m, k)``: resizing source rows ``[w0, w1)`` to ``m`` rows and keeping rows ``[k, k + length)``.
    The window has a margin of the filter's half-width (plus slack) around the rows' footprint, so no kept row
    sees the window's edge unless the full frame's edge is there too. ``exact``: the window's edges lie where
    the source and output pixel grids coincide (every ``size_in / gcd`` source rows), so the resize has the
    full frame's scale and phase and the rows equal the full resize's up to uint8 rounding; otherwise the
    window is the footprint plus margin and the kept rows are the full resize's shifted by < 1 output pixel,
    with a scale off by < 0.5 / m (what a random crop does not care about, and it resizes fewer rows).
    """
    s = size_out / size_in
    margin = max(1.0, 1.0 / s) + 2.0  # bilinear (antialiased) half-width in source pixels, plus slack
    lo = (start + 0.5) / s - 0.5 - margin
    hi = (start + length - 0.5) / s + 0.5 + margin
    if exact:
        period = size_in // math.gcd(size_in, size_out)
        w0 = max(0, math.floor(lo / period) * period)
        w1 = min(size_in, math.ceil(hi / period) * period)
        return w0, w1, (w1 - w0) * size_out // size_in, start - w0 * size_out // size_in
    w0, w1 = max(0, math.floor(lo)), min(size_in, math.ceil(hi))
    if (w0, w1) == (0, size_in):
        return 0, size_in, size_out, start
    m = max(length, round((w1 - w0) * s))
    k = round(((start + length / 2) / s - w0) * m / (w1 - w0) - length / 2)  # centre of the crop kept in place
    return w0, w1, m, min(max(k, 0), m - length)


def _uniform(bounds: list[float] | None, u: float, default: float) -> float:
    """``U(bounds)`` from a uniform draw ``u`` in [0, 1); ``default`` when the step is off (``bounds`` None)."""
    return default if bounds is None else bounds[0] + u * (bounds[1] - bounds[0])


def _colour_matrix(saturation: float, hue: float) -> Tensor:
    """3x3 RGB map: saturation blend with the grey image, then a hue rotation by ``hue`` turns (float64).

    Hue: rotation of the RGB cube about its grey axis (1, 1, 1) by ``2 pi hue``, the linear stand-in for
    the HSV hue shift of torchvision/TF (``adjust_hue``). Both keep grey pixels, and they agree exactly at
    hue 0 and +-1/3 (a channel permutation); in between, the HSV shift keeps each pixel's max and min while
    the rotation keeps its mean and chroma radius. By symmetry the least-squares best linear approximation
    of the HSV shift on the RGB cube is a grey-axis map of this form, and a fit gives rotation angle
    ``2 pi hue`` with radius 1 +- 0.4 %. Mean absolute difference against ``torchvision adjust_hue`` on
    uniform random RGB pixels: 0.041 at |hue| = 0.05, 0.065 at 0.1, 0.077 at 1/6 (the worst), 0.074 at 0.2
    (tests/test_video_transform.py asserts < 0.08); natural images, less saturated, differ less. A YIQ
    chroma rotation, the usual other choice, differs by 0.12 at 0.2. The exact HSV shift costs about
    60 ms per 32x200x200 clip in torch ops, this is free (folded into the one colour matrix).
    """
    grey = torch.tensor(_GREY, dtype=torch.float64)
    blend = saturation * torch.eye(3, dtype=torch.float64) + (1 - saturation) * grey.expand(3, 3)
    cos, sin = math.cos(2 * math.pi * hue), math.sin(2 * math.pi * hue)
    cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], dtype=torch.float64)  # [(1,1,1)/sqrt3]_x * sqrt3
    rotation = cos * torch.eye(3, dtype=torch.float64) + (1 - cos) / 3 * torch.ones(3, 3, dtype=torch.float64) + sin / math.sqrt(3) * cross
    return rotation @ blend


@register("transform")
class VideoClipTransform(ModalityTransform):
    """RGB frames -> ``[3, T, crop, crop]`` float in [0, 1] with MMV's augmentations, the same draws for every frame.

    Train: short side resized to ``S = randint(max(crop, int(resize * scale[0])), max(crop, int(resize * scale[1])))``
    (torchvision's ``RandomResize``: short side ``resize * U(scale)``, never below ``crop``), a random
    ``crop x crop`` window (``RandomCrop``), horizontal flip with ``flip_prob``, and with ``color_jitter_prob``
    colour jitter in the fixed order brightness, contrast, saturation, hue:

    - brightness: ADDITIVE, ``x + U(-brightness, brightness)`` (MMV's/TF's; torchvision's is multiplicative);
    - contrast: ``c x + (1 - c) mean`` with ``c ~ U(contrast)`` and ``mean`` the mean of each frame's grey image
      (torchvision's choice; TF uses each channel's own mean);
    - saturation: blend with the grey image, ``s x + (1 - s) grey`` with ``s ~ U(saturation)`` (torchvision);
    - hue: ``U(-hue, hue)`` turns as a rotation about the RGB grey axis, a linear approximation of the HSV
      hue shift (see :func:`_colour_matrix` for how close it is and why);
    - one clip to [0, 1] at the end (as dmvr does; torchvision clips after every step).

    ``contrast``/``saturation``/``hue`` take what ``v2.ColorJitter`` takes (a range, or a float meaning
    ``1 +- v`` / ``+-v``; a zero-width range at the identity turns that step off). Eval: short side ``resize``,
    centre ``crop`` (``Resize`` + ``CenterCrop``), deterministic.
    ``value_range``: the output's range, ``(0, 1)`` by default; ``(-1, 1)`` is VATT's input (``2 x - 1``).
    ``max_frames``: keep only the first ``max_frames`` decoded frames (None: all). A corpus may then decode a
    longer window for its audio than for its video (VATT's AudioSet clips: 40 frames at 12.5 fps give 3.2 s of
    audio, the first 32 frames 2.56 s of video).
    Set ``flip_prob: 0`` when left/right carries meaning (the toy world's captions say "moves left").

    How it is fast (a 32-frame 224p clip takes ~9 ms in training, ~3 ms in eval, one thread; the torchvision
    ``Compose`` it replaces took ~135 ms and ~6 ms, most of the training time in ``ColorJitter``'s
    RGB->HSV->RGB hue round trip and the float resize of whole frames):

    - geometry on uint8: the crop is planned in source coordinates and only the source window it needs (plus
      the filter margin) is resized, with ``v2.functional.resize`` (antialiased bilinear, torch's native uint8
      kernel), straight from the decoder's channels-last frames; the output equals resizing the whole frame
      then cropping it, exactly in eval, up to a sub-pixel shift of the random crop in training
      (:func:`_axis_window`); then flip on uint8;
    - colour after the crop, as ONE per-clip 3x3 matrix (contrast, saturation, hue) and a per-frame offset
      (brightness, contrast's mean): a uint8->float copy, one matmul, an add, a clamp. This replaces
      ``v2.ColorJitter`` because its hue is an HSV round trip per pixel (and its brightness multiplicative),
      and because its steps are separate passes over the clip, each clipping;
    - all of it a few frames at a time, so that the float passes stay in cache and no clip-sized temporary
      is allocated (fresh pages cost more than the arithmetic).
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
        value_range: tuple[float, float] = (0.0, 1.0),
        max_frames: int | None = None,
    ) -> None:
        if brightness < 0:
            raise ValueError(f"brightness is a non-negative additive delta, got {brightness}")
        self.crop, self.resize = crop, resize
        self.short_range = (max(crop, int(resize * scale[0])), max(crop, int(resize * scale[1])))
        self.flip_prob, self.color_jitter_prob, self.brightness = flip_prob, color_jitter_prob, brightness
        parsed = v2.ColorJitter(contrast=contrast, saturation=saturation, hue=hue)  # torchvision's argument checks
        self.contrast, self.saturation, self.hue = parsed.contrast, parsed.saturation, parsed.hue  # (lo, hi) or None
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.max_frames = max_frames

    def spec(self) -> dict[str, Any]:
        return {"crop": self.crop, "value_range": self.value_range}

    def __call__(self, clip: RawClip) -> tuple[Tensor, Tensor]:
        """-> ``[3, T, crop, crop]``, mask ``[1]``."""
        frames = torch.from_numpy(clip.frames[: self.max_frames])  # [T, H, W, 3] uint8
        num_frames, height, width, _ = frames.shape
        crop = self.crop
        flip, jitter = False, None
        if clip.train:
            # one draw per clip, every number whether used or not: short side, top, left, flip, jitter or not, then
            # brightness, contrast, saturation, hue (so e.g. flip_prob 0 and 1 give the same crop under one seed)
            draw = torch.rand(9, dtype=torch.float64).tolist()
            lo, hi = self.short_range
            new_h, new_w = _resized_size(height, width, lo + min(int(draw[0] * (hi - lo + 1)), hi - lo))
            top = min(int(draw[1] * (new_h - crop + 1)), new_h - crop)
            left = min(int(draw[2] * (new_w - crop + 1)), new_w - crop)
            flip = draw[3] < self.flip_prob
            jitter = self._jitter(draw[5:]) if draw[4] < self.color_jitter_prob else None
        else:
            new_h, new_w = _resized_size(height, width, self.resize)
            top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))  # v2.CenterCrop's
        if min(new_h, new_w) < crop:  # eval with resize < crop: CenterCrop pads the resized frame with zeros
            padded = F.center_crop(F.resize(frames.permute(0, 3, 1, 2), [new_h, new_w], antialias=True), [crop, crop])
            geometry = lambda t0, t1: padded[t0:t1]  # noqa: E731
        else:
            y0, y1, rows, ky = _axis_window(height, new_h, top, crop, exact=not clip.train)
            x0, x1, cols, kx = _axis_window(width, new_w, left, crop, exact=not clip.train)
            window = frames[:, y0:y1, x0:x1].permute(0, 3, 1, 2)  # [T, 3, h, w] view, channels-last memory
            geometry = lambda t0, t1: F.resize(window[t0:t1], [rows, cols], antialias=True)[..., ky : ky + crop, kx : kx + crop]  # noqa: E731
        out = torch.empty(3, num_frames, crop, crop)
        # a few frames at a time (a few MB of float): every pass after the resize then runs in cache, and no
        # clip-sized temporary is allocated (each would cost page faults on every call)
        step = max(1, _CHUNK_PIXELS // (crop * crop))
        scratch = torch.empty(3, min(step, num_frames), crop, crop) if jitter is not None else None
        for t0 in range(0, num_frames, step):
            video = geometry(t0, t0 + step)  # uint8 [n, 3, crop, crop]
            if flip:
                video = video.flip(-1)
            target = out[:, t0 : t0 + step]
            if scratch is None:
                torch.mul(video.permute(1, 0, 2, 3), 1.0 / 255.0, out=target)
            else:
                self._colour(video, target, scratch[:, : video.shape[0]], *jitter)
        lo, hi = self.value_range
        if (lo, hi) != (0.0, 1.0):
            out.mul_(hi - lo).add_(lo)
        return out, torch.ones(1, dtype=torch.bool)

    def _jitter(self, draw: list[float]) -> tuple[Tensor | None, Tensor | None, float, float]:
        """This clip's colour jitter from four uniform draws: ``(c A / 255, A's row sums, c, shift)``.

        ``A`` is the saturation-and-hue matrix and ``c`` the contrast factor; the first two are None when ``A``
        is the identity.
        """
        shift = (2 * draw[0] - 1) * self.brightness
        factor, saturation, hue = _uniform(self.contrast, draw[1], 1.0), _uniform(self.saturation, draw[2], 1.0), _uniform(self.hue, draw[3], 0.0)
        if saturation == 1.0 and hue == 0.0:
            return None, None, factor, shift
        matrix = _colour_matrix(saturation, hue)
        return (matrix * (factor / 255.0)).float(), matrix.sum(1, keepdim=True), factor, shift

    @staticmethod
    def _colour(video: Tensor, target: Tensor, x: Tensor, matrix: Tensor | None, rowsum: Tensor | None, factor: float, shift: float) -> Tensor:
        """uint8 ``[n, 3, c, c]`` -> colour-jittered float in [0, 1] written to ``target`` ``[3, n, c, c]`` (``x``: scratch, same shape).

        ``y = A (c x + b_t)`` with ``A`` the saturation-and-hue matrix, ``c`` the contrast factor and
        ``b_t = c shift + (1 - c) mean_t`` (brightness, then contrast about frame t's grey mean after the
        shift): a uint8 -> float copy, one 3x3 matmul (a scaling when ``A`` is the identity), an offset, a clamp.
        """
        x.copy_(video.permute(1, 0, 2, 3))  # 0-255
        frames = x.shape[1]
        offset = torch.full((frames,), factor * shift, dtype=torch.float64)
        if factor != 1.0:
            means = x.view(3, frames, -1).mean(-1).double().T / 255.0  # [n, 3]
            offset += (1 - factor) * (means @ _GREY_T + shift * _GREY_SUM)
        if matrix is None:
            torch.mul(x, factor / 255.0, out=target)
            offset = offset.expand(3, frames)
        else:
            torch.mm(matrix, x.view(3, -1), out=target.view(3, -1))
            offset = rowsum * offset  # A (b_t 1), [3, n]
        return target.add_(offset.float()[:, :, None, None]).clamp_(0.0, 1.0)


@register("transform")
class LogMelTransform(ModalityTransform):
    """Mono waveform -> log-mel ``[1, frames, n_mels]`` (torchaudio), ``log(mel + log_offset)``.

    Defaults are small for 16 kHz toy audio; MMV's dmvr preset is sample_rate 48000, n_fft 2048,
    hop 1024, 80 bins, 80-7600 Hz, offset 1e-6 (docs/method.md, "Backbones"). A clip without audio gives zeros
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

    def state(self) -> dict[str, Any]:
        """The trained sentencepiece model's bytes (uint8 tensor), so a checkpoint tokenizes queries alone."""
        if self._sp is None:
            return {}
        return {"sentencepiece_model": torch.frombuffer(bytearray(self._sp.serialized_model_proto()), dtype=torch.uint8)}

    def load_state(self, state: dict[str, Any]) -> None:
        import sentencepiece as spm

        if "sentencepiece_model" in state:
            self._sp = spm.SentencePieceProcessor(model_proto=bytes(state["sentencepiece_model"].numpy().tobytes()))

    def encode(self, texts: list[str]) -> Tensor:
        """Texts -> ``[len(texts), max_tokens]`` int64, 0-padded."""
        if self._sp is None:
            raise RuntimeError("TokenizeText used before setup(): the data module calls prepare() and setup() first")
        out = torch.zeros(len(texts), self.max_tokens, dtype=torch.long)
        for i, ids in enumerate(self._sp.encode([normalise_text(t) for t in texts])):
            ids = ids[: self.max_tokens]
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out
