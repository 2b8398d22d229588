"""Deflation (MMV; docs/method.md, "Deflation"): turn a video backbone into an image backbone.

A video network keeps its own modules and ``forward``; every temporal dimension is made trivial and
the image is fed as a one-frame video ``[B, 3, 1, H, W]``:

- ``nn.Conv3d`` (and subclasses) with kernel ``(kt, kh, kw)`` -> kernel ``(1, kh, kw)``, the weights
  summed over the temporal axis, temporal padding 0, stride 1 and dilation 1 (spatial stride,
  padding, dilation, groups, bias and padding mode kept). The module is modified, not rebuilt, so
  a subclass keeps its own ``forward`` (S3D-G's TF "SAME" padding reads ``self.kernel_size``). On a
  static clip the summed filter gives exactly the original conv's interior temporal outputs (those
  whose window does not touch the zero padding).
- ``nn.MaxPool3d`` / ``nn.AvgPool3d`` (and subclasses): temporal kernel 1, stride 1, padding 0.
- a module whose class defines ``deflate(self) -> nn.Module`` is replaced by what that returns
  (the hook for custom modules; the result must accept the same one-frame video input);
- a module whose class name contains ``TemporalShift`` and that has a boolean ``enabled``
  attribute is switched off (TSM nets are otherwise 2D convs and need nothing else).

Everything else (BatchNorm3d, 2D convs, means over T/H/W) works on ``T = 1`` as it is. Temporal
operations written as functional calls in a ``forward`` are out of reach: give such a module a
``deflate`` method. The time axis is dim 2 (``[B, C, T, H, W]``), versanet's video layout.

Three ways to get an image network (MMV's names):
- naive deflation: :func:`deflate` -> :class:`DeflatedImageEncoder`;
- deflation proper: naive deflation, then BatchNorm gamma/beta retrained to match the video net on
  static videos (:class:`versanet.models.recalibrate.DeflationRecalibration`);
- input inflation: :class:`InputInflation`, the image repeated ``T`` times into the video net.

Image-encoder files (:func:`save_image_encoder`, :func:`load_image_encoder`) hold tensors and
plain data only, read weights-only: ``{"format": "versanet.image_encoder", "version": 2,
"structure": "deflate" | "inflate", "num_frames", "modality", "encoder": {"class_path",
"init_args"} (the video encoder's config), "state_dict", "meta": {...}}``. A deflated network has no
constructor of its own, but deflation is a deterministic rewrite: the loader builds the video
encoder from its config, deflates (or wraps) it again and loads the weights, so nothing is unpickled.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, Mapping

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _reverse_repeat_tuple, _triple

from versanet.encoders.base import Encoder

TIME_DIM = 2
IMAGE_ENCODER_FORMAT = "versanet.image_encoder"
IMAGE_ENCODER_VERSION = 2


# ----------------------------------------------------------------------------- module rewrites
def _same_padding_twice(kernel: tuple[int, ...], dilation: tuple[int, ...]) -> list[int]:
    """``nn.Conv``'s ``_reversed_padding_repeated_twice`` for ``padding="same"``."""
    pads = [0, 0] * len(kernel)
    for d, k, i in zip(dilation, kernel, range(len(kernel) - 1, -1, -1)):
        total = d * (k - 1)
        pads[2 * i], pads[2 * i + 1] = total // 2, total - total // 2
    return pads


@torch.no_grad()
def deflate_conv3d(conv: nn.Conv3d, inplace: bool = False) -> nn.Conv3d:
    """``(kt, kh, kw)`` conv -> ``(1, kh, kw)`` conv with the filters summed over time (temporal padding 0, stride 1).

    The module itself is changed (a deep copy unless ``inplace``), not rebuilt, so a ``Conv3d``
    subclass keeps its class, attributes and ``forward`` (e.g. padding computed from
    ``self.kernel_size`` and ``self.stride`` in the forward, as TF "SAME" padding does).
    """
    if not inplace:
        conv = copy.deepcopy(conv)
    # weight [out, in / groups, kt, kh, kw]: sum over kt
    conv.weight = nn.Parameter(conv.weight.sum(dim=2, keepdim=True), requires_grad=conv.weight.requires_grad)
    conv.kernel_size = (1, *conv.kernel_size[1:])
    conv.stride = (1, *conv.stride[1:])
    conv.dilation = (1, *conv.dilation[1:])
    if isinstance(conv.padding, str):
        conv._reversed_padding_repeated_twice = _same_padding_twice(conv.kernel_size, conv.dilation) if conv.padding == "same" else [0] * 6
    else:
        conv.padding = (0, *conv.padding[1:])
        conv._reversed_padding_repeated_twice = _reverse_repeat_tuple(conv.padding, 2)
    return conv


def deflate_pool3d(pool: nn.MaxPool3d | nn.AvgPool3d, inplace: bool = False) -> nn.MaxPool3d | nn.AvgPool3d:
    """A 3D pooling layer with temporal kernel 1, stride 1 and padding 0 (spatial settings kept; changed like :func:`deflate_conv3d`)."""
    if not inplace:
        pool = copy.deepcopy(pool)
    kernel = _triple(pool.kernel_size)
    stride = _triple(pool.stride if pool.stride is not None else pool.kernel_size)
    pool.kernel_size = (1, *kernel[1:])
    pool.stride = (1, *stride[1:])
    pool.padding = (0, *_triple(pool.padding)[1:])
    if isinstance(pool, nn.MaxPool3d):
        pool.dilation = (1, *_triple(pool.dilation)[1:])
    return pool


def _is_temporal_shift(module: nn.Module) -> bool:
    return "TemporalShift" in type(module).__name__ and isinstance(getattr(module, "enabled", None), bool)


def deflate_modules(module: nn.Module, _memo: dict[int, nn.Module] | None = None) -> nn.Module:
    """Rewrite ``module`` IN PLACE for one-frame input (see the module docstring); return the (possibly new) root.

    Use :func:`deflate` to keep the original network untouched. A module shared by several parents
    is rewritten once and stays shared.
    """
    memo = {} if _memo is None else _memo
    if id(module) in memo:
        return memo[id(module)]
    hook = getattr(type(module), "deflate", None)
    if callable(hook):
        new = module.deflate()  # type: ignore[operator]
    elif isinstance(module, nn.Conv3d):
        new = deflate_conv3d(module, inplace=True)
    elif isinstance(module, (nn.MaxPool3d, nn.AvgPool3d)):
        new = deflate_pool3d(module, inplace=True)
    else:
        if _is_temporal_shift(module):
            module.enabled = False  # type: ignore[assignment]
        for name, child in list(module.named_children()):
            replaced = deflate_modules(child, memo)
            if replaced is not child:
                setattr(module, name, replaced)
        new = module
    memo[id(module)] = new
    return new


def static_clip(images: Tensor, num_frames: int) -> Tensor:
    """Images ``[B, C, H, W]`` -> the static video ``[B, C, T, H, W]`` (each image repeated ``num_frames`` times)."""
    if images.dim() != 4:
        raise ValueError(f"expected images [B, C, H, W], got shape {tuple(images.shape)}")
    return images.unsqueeze(TIME_DIM).expand(-1, -1, num_frames, -1, -1).contiguous()


def _check_images(x: Tensor, who: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{who} takes images [B, 3, H, W]; got shape {tuple(x.shape)}")


# ----------------------------------------------------------------------------- image encoders
class DeflatedImageEncoder(Encoder):
    """A deflated video network run on images: ``[B, 3, H, W]`` -> one-frame video -> ``[B, out_dim]``.

    ``encoder`` must already be deflated (:func:`deflate` builds one from a video encoder).
    """

    input_ndim = 3

    def __init__(self, encoder: nn.Module, modality: str = "image", out_dim: int | None = None) -> None:
        out_dim = out_dim if out_dim is not None else getattr(encoder, "out_dim", None)
        if out_dim is None:
            raise ValueError(f"DeflatedImageEncoder: {type(encoder).__name__} has no out_dim; pass out_dim")
        super().__init__(modality, out_dim)
        self.encoder = encoder

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 3, H, W]`` -> ``[B, out_dim]``."""
        _check_images(x, type(self).__name__)
        return self.encoder(x.unsqueeze(TIME_DIM))

    def example_input(self, batch_size: int) -> Tensor:
        make = getattr(self.encoder, "example_input", None)
        return make(batch_size).select(TIME_DIM, 0) if callable(make) else torch.rand(batch_size, 3, 32, 32)


class InputInflation(Encoder):
    """Input inflation: the image repeated ``num_frames`` times as a static video into the original video net."""

    input_ndim = 3

    def __init__(self, encoder: Encoder, num_frames: int = 8, modality: str = "image") -> None:
        super().__init__(modality, encoder.out_dim)
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.encoder = encoder
        self.num_frames = num_frames

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 3, H, W]`` -> ``[B, out_dim]``."""
        _check_images(x, type(self).__name__)
        return self.encoder(static_clip(x, self.num_frames))

    def example_input(self, batch_size: int) -> Tensor:
        return self.encoder.example_input(batch_size).select(TIME_DIM, 0)


def deflate(encoder: nn.Module) -> DeflatedImageEncoder:
    """Naive deflation: a deflated deep copy of ``encoder`` wrapped to take images (``encoder`` is not touched)."""
    out_dim = getattr(encoder, "out_dim", None)
    return DeflatedImageEncoder(deflate_modules(copy.deepcopy(encoder)), out_dim=out_dim)


# ----------------------------------------------------------------------------- files
def encoder_config(model: nn.Module, modality: str, source: str | Path = "the model") -> dict[str, Any]:
    """The ``{"class_path", "init_args"}`` config of ``model.encoders[modality]``, from a model :func:`versanet.checkpoint.load_pretrained` read."""
    config = (getattr(model, "checkpoint_config", None) or getattr(model, "hparams", None) or {}).get("encoders", {})
    entry = config.get(modality) if isinstance(config, Mapping) else None
    if not isinstance(entry, Mapping) or "class_path" not in entry:
        raise ValueError(f"{source} does not record the config of its {modality!r} encoder; write checkpoints with `versanet fit` "
                         "or versanet.checkpoint.save_pretrained")
    return {"class_path": entry["class_path"], "init_args": dict(entry.get("init_args") or {})}


def save_image_encoder(module: nn.Module, path: str | Path, encoder_config: Mapping[str, Any], **meta: Any) -> Path:
    """Write an image encoder file: weights and plain data only (format in the module docstring).

    ``module``: a :class:`DeflatedImageEncoder` or :class:`InputInflation`; ``encoder_config``: the
    ``{"class_path", "init_args"}`` config of the video encoder it was made from (how the loader
    rebuilds the network). ``meta`` (plain data) is stored alongside. ``module`` is not changed.
    """
    if isinstance(module, InputInflation):
        structure, num_frames = "inflate", module.num_frames
    elif isinstance(module, DeflatedImageEncoder):
        structure, num_frames = "deflate", None
    else:
        raise TypeError(f"save_image_encoder takes a DeflatedImageEncoder or an InputInflation, not {type(module).__name__}")
    if "class_path" not in encoder_config:
        raise ValueError("encoder_config must be the video encoder's {'class_path': ..., 'init_args': {...}}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    meta = {"out_dim": module.out_dim, **meta}
    data = {
        "format": IMAGE_ENCODER_FORMAT, "version": IMAGE_ENCODER_VERSION, "structure": structure, "num_frames": num_frames,
        "modality": module.modality, "encoder": {"class_path": encoder_config["class_path"], "init_args": dict(encoder_config.get("init_args") or {})},
        "state_dict": state, "meta": meta,
    }
    tmp = path.with_name(f"{path.name}.tmp")
    torch.save(data, tmp)
    tmp.replace(path)
    load_image_encoder(path)  # fails here, naming the problem, rather than when the file is used
    return path


def load_image_encoder(path: str | Path, with_meta: bool = False) -> Any:
    """The image network written by :func:`save_image_encoder`, on CPU in eval mode; ``with_meta=True`` returns ``(module, meta)``.

    The file is read weights-only (:func:`versanet.checkpoint.safe_load`); the video encoder is
    rebuilt from its recorded config (registered or already-imported classes only), deflated or
    wrapped as recorded, and the weights loaded strictly. A file holding pickled Python objects (as
    versanet wrote before version 2) is refused: write it again with ``versanet deflate``.
    """
    from versanet import registry
    from versanet.checkpoint import CheckpointError, instantiate_config, safe_load

    path = Path(path)
    data = safe_load(path, "image encoder file")
    if not isinstance(data, dict) or data.get("format") != IMAGE_ENCODER_FORMAT:
        raise CheckpointError(f"{path}: not an image encoder file (write one with `versanet deflate` or DeflationRecalibration)")
    if data.get("version") != IMAGE_ENCODER_VERSION:
        raise CheckpointError(f"{path}: image encoder file version {data.get('version')!r}; this versanet reads version "
                              f"{IMAGE_ENCODER_VERSION}: write it again with `versanet deflate`")
    registry.load_builtin()
    registry.load_plugins(strict=False)
    video = instantiate_config(Encoder, data["encoder"], path, "video encoder")
    if data["structure"] == "inflate":
        module: Encoder = InputInflation(video, int(data["num_frames"]), modality=data.get("modality", "image"))
    elif data["structure"] == "deflate":
        module = DeflatedImageEncoder(deflate_modules(video), modality=data.get("modality", "image"), out_dim=data["meta"].get("out_dim"))
    else:
        raise CheckpointError(f"{path}: unknown image encoder structure {data['structure']!r} (deflate or inflate)")
    try:
        module.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the weights do not fit the network its config builds: {err}") from None
    module.eval()
    return (module, data.get("meta", {})) if with_meta else module


def load_pretrained_encoder(checkpoint: str | Path, modality: str = "video") -> tuple[Encoder, dict[str, Any]]:
    """The ``modality`` backbone of a versanet pretraining checkpoint (CPU, eval mode) and its config.

    Reads the checkpoint with :func:`versanet.checkpoint.load_pretrained`, the one loader.
    """
    from versanet.checkpoint import load_pretrained

    model = load_pretrained(checkpoint)
    if modality not in model.encoders:
        raise KeyError(f"{checkpoint}: no {modality!r} encoder; the checkpoint has {', '.join(model.encoders)}")
    return model.encoders[modality], encoder_config(model, modality, checkpoint)


def deflate_command(
    checkpoint: str,
    output: str,
    method: Literal["naive", "inflate"] = "naive",
    modality: str = "video",
    num_frames: int = 8,
) -> None:
    """Turn the video network of a pretraining checkpoint into an image network and save it.

    For deflation with BatchNorm recalibration, train ``DeflationRecalibration``
    (configs/deflation/recalibrate_toy.yaml) instead.

    Args:
        checkpoint: versanet pretraining checkpoint (.ckpt written by `versanet fit`).
        output: image encoder file to write (read it with versanet.deflation.load_image_encoder).
        method: naive (temporally summed filters on a one-frame video) or inflate (the image repeated
            num_frames times into the video network).
        modality: which encoder of the checkpoint to convert.
        num_frames: frames of the static video (inflate only).
    """
    encoder, config = load_pretrained_encoder(checkpoint, modality)
    if method == "naive":
        image: Encoder = deflate(encoder)
    elif method == "inflate":
        image = InputInflation(encoder, num_frames)
    else:
        raise ValueError(f"method must be 'naive' or 'inflate', not {method!r}")
    meta = {"method": method, "source": str(checkpoint), "modality": modality, "encoder": type(encoder).__name__}
    if method == "inflate":
        meta["num_frames"] = num_frames
    path = save_image_encoder(image, output, config, **meta)
    print(f"wrote {path}: {type(encoder).__name__} ({modality}) -> {method} image encoder, {image.out_dim}-d output")
