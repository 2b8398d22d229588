"""VATT's modality towers: convolution-free Transformers on raw video, raw audio and word vectors.

Every tower turns its input into tokens, adds positional embeddings, prepends a learned aggregation
token and runs a Transformer; the aggregation token's output is the clip feature (``pooled``), the
other outputs are the tokens (:class:`~versanet.encoders.Tokens`).

- :class:`VATTVideo`: ``[N, 3, T, H, W]`` in [-1, 1] -> tubelets by ``Conv3d(kernel = stride = (4, 16, 16))``
  -> factorised positional embedding (8/14/14 buckets) -> DropToken -> [AGG] -> Transformer.
  32x224x224 gives 8x14x14 = 1568 tokens (784 kept at DropToken 50%); 32x320x320 gives 3200.
- :class:`VATTAudio`: raw waveform ``[N, 1, S]`` (48 kHz) -> ``Conv1d(kernel = stride = 128)`` -> 1-D
  positional embedding (1200 buckets) -> DropToken -> [AGG] -> Transformer. 153,600 samples (3.2 s)
  give 1200 tokens (600 kept at 50%).
- :class:`VATTText`: word ids ``[N, L]`` (0 = padding) -> frozen 300-d word vectors -> [AGG] (a learned
  300-d vector) -> ``Linear(300, d, bias=False)`` + GELU -> T5 encoder with relative position bias;
  16 words give 17 tokens.

DropToken (video and audio): in training only, keep a random ``1 - droptoken_rate`` of the tokens
after the positional embedding, before [AGG]. ``droptoken_per: batch`` draws one random subset for
the whole batch (VATT's code), ``sample`` one per sample (the paper's wording). Tokens are then
returned in the kept order with ``grid = None``. Never in eval mode, and off after
:meth:`~versanet.encoders.Encoder.prepare_downstream` (benchmarks and fine-tuning).

VATT-MA (the modality-agnostic model): the towers take ``trunk: NAME`` and run the shared
:class:`~versanet.encoders.vatt.trunk.VATTTrunk` instead of their own; they keep their tokeniser,
positional embedding, aggregation token, and usually ``pre_projection`` (Linear(d, d) + GELU after
the tokeniser) and ``post_projection`` (Linear(d, 1024) + GELU after the Transformer), as VATT's
``UniversalVATT``. :class:`VATTText` then follows VATT-MA's text path instead of T5's: word vectors
-> ``Linear(300, d)`` + GELU -> 1-D positional embedding (``max_tokens`` buckets) -> [AGG] (d-wide)
-> shared trunk with the padding mask.

Module and parameter names follow VATT's TF variables (``docs/vatt.md`` lists the mapping).
Shape legend: N samples, L tokens, D = ``d_model``.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from typing import Any, Literal, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from versanet.encoders.base import Encoder, Tokens
from versanet.encoders.text import FrozenWordTable
from versanet.encoders.vatt.positional import SpatioTemporalEmbeddings, TemporalEmbeddings
from versanet.encoders.vatt.transformer import T5Encoder, TransformerEncoder, VATTSize, glorot_, resolve_size
from versanet.encoders.vatt.trunk import VATTTrunk
from versanet.registry import register
from versanet.text.word2vec import PAD_ID

log = logging.getLogger(__name__)

DropTokenPer = Literal["batch", "sample"]


def drop_tokens(x: Tensor, rate: float, per: DropTokenPer = "batch") -> Tensor:
    """DropToken: ``[N, L, D]`` -> ``[N, int(L * (1 - rate)), D]``, a random subset of the tokens (in random order).

    ``per="batch"``: the same subset for every sample (one random permutation, VATT's code);
    ``per="sample"``: an independent subset per sample.
    """
    n, length, dim = x.shape
    keep = max(1, int(length * (1.0 - rate)))
    if per == "batch":
        return x[:, torch.randperm(length, device=x.device)[:keep]]
    if per == "sample":
        index = torch.rand(n, length, device=x.device).argsort(dim=1)[:, :keep]
        return x.gather(1, index[..., None].expand(n, keep, dim))
    raise ValueError(f"droptoken_per must be 'batch' or 'sample', not {per!r}")


class _Tower(Encoder):
    """What every tower shares: its size, an own or a shared trunk, the post-projection, the aggregation token."""

    shares_trunk = True

    def __init__(self, modality: str, size: VATTSize, post_projection: int | None, trunk: str | None, post_bias: bool = True) -> None:
        super().__init__(modality, post_projection or size.d_model)
        self.size, self.d_model = size, size.d_model
        self.shared_trunk = trunk
        self.post_proj = nn.Linear(size.d_model, post_projection, bias=post_bias) if post_projection else None
        if self.post_proj is not None:
            glorot_(self.post_proj)

    def _agg_embedding(self, dim: int) -> nn.Parameter:
        """The learned aggregation token (Keras' Glorot-normal init of a vector: truncated normal, std ``dim ** -0.5``)."""
        token = nn.Parameter(torch.empty(dim))
        std = dim**-0.5 / 0.87962566103423978  # Keras truncated normal: stddev corrected for the truncation at 2 std
        nn.init.trunc_normal_(token, std=std, a=-2 * std, b=2 * std)
        return token

    def attach_trunk(self, trunk: nn.Module) -> None:
        inner = trunk
        while not isinstance(inner, TransformerEncoder) and isinstance(getattr(inner, "module", None), nn.Module):
            inner = inner.module  # a strategy's wrapper around the shared trunk (an FSDP unit): check what it wraps
        if not isinstance(inner, TransformerEncoder):
            raise TypeError(f"{type(self).__name__} runs a VATTTrunk, but trunk {self.shared_trunk!r} is a {type(inner).__name__}")
        if inner.d_model != self.d_model:
            raise ValueError(
                f"{type(self).__name__} ({self.modality}) is {self.d_model} wide but trunk {self.shared_trunk!r} is {inner.d_model} wide; "
                "give the encoder the trunk's size"
            )
        super().attach_trunk(trunk)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.trunk.set_grad_checkpointing(enable)

    def _project_out(self, x: Tensor) -> Tensor:
        return F.gelu(self.post_proj(x)) if self.post_proj is not None else x


class _MediaTower(_Tower):
    """Video and audio: tokenise -> (pre-projection) -> positional embedding -> DropToken -> [AGG] -> trunk -> (post-projection).

    Subclasses build the tokeniser and ``pos_embedding_lookup`` and implement :meth:`tokenise`.
    """

    pos_embedding_lookup: SpatioTemporalEmbeddings | TemporalEmbeddings

    def __init__(
        self, modality: str, size: str, overrides: tuple[int | None, ...], dropout: float, droptoken_rate: float, droptoken_per: DropTokenPer,
        pre_projection: bool, post_projection: int | None, trunk: str | None, grad_checkpointing: bool, compile: bool,
    ) -> None:
        if not 0.0 <= droptoken_rate < 1.0:
            raise ValueError(f"droptoken_rate is the fraction of tokens dropped, in [0, 1); got {droptoken_rate}")
        if droptoken_per not in ("batch", "sample"):
            raise ValueError(f"droptoken_per must be 'batch' or 'sample', not {droptoken_per!r}")
        spec = resolve_size(size, *overrides)
        super().__init__(modality, spec, post_projection, trunk)
        self.droptoken_rate, self.droptoken_per = droptoken_rate, droptoken_per
        self.pre_proj = nn.Linear(spec.d_model, spec.d_model) if pre_projection else None
        if self.pre_proj is not None:
            glorot_(self.pre_proj)
        self.agg_embedding = self._agg_embedding(spec.d_model)
        self.trunk = None if trunk else VATTTrunk(size, *overrides, dropout=dropout, grad_checkpointing=grad_checkpointing, compile=compile)

    def prepare_downstream(self) -> None:
        """No DropToken from now on (fine-tuning and evaluation see every token)."""
        self.droptoken_rate = 0.0

    def _project_in(self, x: Tensor) -> Tensor:
        return F.gelu(self.pre_proj(x)) if self.pre_proj is not None else x

    @abstractmethod
    def tokenise(self, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """Raw input -> tokens ``[N, L, D]`` and their grid."""

    def forward_tokens(self, x: Tensor) -> Tokens:
        """Raw input -> output tokens ``[N, L', out_dim]`` (L' = L, or the kept tokens under DropToken) and the [AGG] output."""
        tokens, grid = self.tokenise(x)
        tokens = self.pos_embedding_lookup(self._project_in(tokens), grid)
        out_grid: tuple[int, ...] | None = grid
        if self.training and self.droptoken_rate > 0:
            tokens, out_grid = drop_tokens(tokens, self.droptoken_rate, self.droptoken_per), None
        agg = self.agg_embedding.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        hidden = self._project_out(self.trunk(torch.cat([agg, tokens], dim=1)))
        mask = torch.ones(hidden.shape[0], hidden.shape[1] - 1, dtype=torch.bool, device=hidden.device)
        return Tokens(hidden[:, 1:], mask, hidden[:, 0], out_grid)


@register("encoder")
class VATTVideo(_MediaTower):
    """VATT's video Transformer: ``[N, 3, T, H, W]`` in [-1, 1] -> tubelet tokens -> Transformer -> ``[N, out_dim]``.

    Video ViT-Base at 32x224x224 has 87,446,016 parameters (Transformer 85,056,000).

    Args:
        patch_size: tubelet ``(t, h, w)``, kernel = stride of the tokeniser's Conv3d.
        max_buckets: positional buckets per axis ``(t, h, w)``: the pretraining grid (32x224x224 / patch).
        droptoken_rate: fraction of tokens dropped in training (VATT: 0.5 at pretraining).
        droptoken_per: ``batch`` (one draw per batch, VATT's code) or ``sample``.
        size: ``small`` | ``base`` | ``medium`` | ``large`` (VATT's presets; ``tiny`` for tests and the toy world).
        num_layers, d_model, d_ff, num_heads, d_kv: override fields of the preset.
        dropout: Transformer and positional-embedding dropout (0.1).
        pre_projection: Linear(d, d) + GELU after the tokeniser (VATT-MA).
        post_projection: width of a Linear + GELU after the Transformer (VATT-MA: 1024); None: none.
        trunk: name of a shared trunk under ``model.init_args.trunks`` to run instead of an own Transformer.
        grad_checkpointing: recompute each Transformer layer in backward. compile: ``torch.compile`` each layer.
    """

    input_ndim = 4
    contract_kwargs = {"size": "tiny", "max_buckets": (2, 2, 2), "droptoken_rate": 0.5}

    def __init__(
        self, size: str = "base", num_layers: int | None = None, d_model: int | None = None, d_ff: int | None = None,
        num_heads: int | None = None, d_kv: int | None = None, patch_size: tuple[int, int, int] = (4, 16, 16),
        max_buckets: tuple[int, int, int] = (8, 14, 14), dropout: float = 0.1, droptoken_rate: float = 0.0,
        droptoken_per: DropTokenPer = "batch", pre_projection: bool = False, post_projection: int | None = None,
        trunk: str | None = None, grad_checkpointing: bool = False, compile: bool = False, modality: str = "video",
    ) -> None:
        super().__init__(
            modality, size, (num_layers, d_model, d_ff, num_heads, d_kv), dropout, droptoken_rate, droptoken_per, pre_projection,
            post_projection, trunk, grad_checkpointing, compile,
        )
        self.patch_size, self.max_buckets = tuple(patch_size), tuple(max_buckets)
        self.voxel_to_patch = nn.Conv3d(3, self.d_model, self.patch_size, stride=self.patch_size)
        glorot_(self.voxel_to_patch)
        self.pos_embedding_lookup = SpatioTemporalEmbeddings(self.d_model, self.max_buckets, dropout)  # type: ignore[arg-type]

    def tokenise(self, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """``[N, 3, T, H, W]`` -> tubelet tokens ``[N, T'*H'*W', D]`` in (t, h, w) order, grid ``(T', H', W')``."""
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"VATTVideo expects RGB clips [N, 3, T, H, W], got shape {tuple(x.shape)}")
        if any(s < p for s, p in zip(x.shape[2:], self.patch_size)):
            raise ValueError(f"VATTVideo: a clip of {tuple(x.shape[2:])} (T, H, W) is smaller than one tubelet {self.patch_size}")
        h = self.voxel_to_patch(x)  # [N, D, T', H', W']; a remainder that fills no whole tubelet is dropped (TF "valid")
        return h.flatten(2).transpose(1, 2), tuple(h.shape[2:])

    def example_input(self, batch_size: int) -> Tensor:
        t, h, w = (b * p for b, p in zip(self.max_buckets, self.patch_size))
        return torch.rand(batch_size, 3, t, h, w) * 2 - 1

    def check_input_spec(self, spec: Mapping[str, Any]) -> None:
        value_range = spec.get("value_range")
        if value_range is not None and tuple(value_range) != (-1.0, 1.0):
            log.warning("VATTVideo expects video in [-1, 1] (VATT's input); the data gives %s (set value_range: [-1, 1])", tuple(value_range))


@register("encoder")
class VATTAudio(_MediaTower):
    """VATT's raw-waveform Transformer: ``[N, 1, S]`` (48 kHz) -> ``Conv1d(k = s = 128)`` tokens -> Transformer -> ``[N, out_dim]``.

    Args:
        patch_size: samples per token (kernel = stride of the tokeniser's Conv1d).
        max_buckets: positional buckets: the pretraining token count (3.2 s at 48 kHz / 128 = 1200).
        size, num_layers, d_model, d_ff, num_heads, d_kv, dropout, droptoken_rate, droptoken_per, pre_projection,
        post_projection, trunk, grad_checkpointing, compile: as :class:`VATTVideo`.
    """

    input_ndim = 2
    contract_kwargs = {"size": "tiny", "patch_size": 16, "max_buckets": 8, "droptoken_rate": 0.5, "droptoken_per": "sample"}

    def __init__(
        self, size: str = "base", num_layers: int | None = None, d_model: int | None = None, d_ff: int | None = None,
        num_heads: int | None = None, d_kv: int | None = None, patch_size: int = 128, max_buckets: int = 1200,
        dropout: float = 0.1, droptoken_rate: float = 0.0, droptoken_per: DropTokenPer = "batch", pre_projection: bool = False,
        post_projection: int | None = None, trunk: str | None = None, grad_checkpointing: bool = False, compile: bool = False,
        modality: str = "audio",
    ) -> None:
        super().__init__(
            modality, size, (num_layers, d_model, d_ff, num_heads, d_kv), dropout, droptoken_rate, droptoken_per, pre_projection,
            post_projection, trunk, grad_checkpointing, compile,
        )
        self.patch_size, self.max_buckets = patch_size, max_buckets
        self.wave_to_patch = nn.Conv1d(1, self.d_model, patch_size, stride=patch_size)
        glorot_(self.wave_to_patch)
        self.pos_embedding_lookup = TemporalEmbeddings(self.d_model, max_buckets, dropout)

    def tokenise(self, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """``[N, 1, S]`` -> ``[N, S // patch_size, D]``, grid ``(S // patch_size,)``."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"VATTAudio expects mono waveforms [N, 1, S], got shape {tuple(x.shape)}")
        if x.shape[2] < self.patch_size:
            raise ValueError(f"VATTAudio: {x.shape[2]} samples are fewer than one token ({self.patch_size})")
        h = self.wave_to_patch(x)  # [N, D, S']
        return h.transpose(1, 2), (h.shape[2],)

    def example_input(self, batch_size: int) -> Tensor:
        return torch.randn(batch_size, 1, self.max_buckets * self.patch_size) * 0.1

    def check_input_spec(self, spec: Mapping[str, Any]) -> None:
        samples = spec.get("num_samples")
        if samples is not None and samples < self.patch_size:
            raise ValueError(f"the waveform transform gives {samples} samples, fewer than one VATTAudio token ({self.patch_size})")
        if spec.get("representation", "waveform") != "waveform":
            raise ValueError(f"VATTAudio reads raw waveforms [1, S] (WaveformTransform); the audio transform gives {spec['representation']}")


@register("encoder")
class VATTText(FrozenWordTable, _Tower):
    """VATT's text Transformer: word ids ``[N, L]`` -> frozen word vectors -> T5 encoder -> ``[N, out_dim]``.

    T5-Small (the paper's text tower) has 19,038,252 trainable parameters: the 300-d [AGG] vector,
    ``Linear(300, 512, bias=False)`` (153,600) and the encoder (18,884,352); the frozen word table is a
    buffer (``2**16 x 300`` in VATT). With ``trunk`` set it follows VATT-MA's text path (see the module docstring).

    Args:
        embeddings_path, vocab_path, vocab_size, embed_dim, pad_id, seed: the frozen word table
            (:class:`~versanet.encoders.text.FrozenWordTable`: a word2vec subset, or the data's, or random).
        num_relative_buckets, max_relative_distance: T5's relative position buckets (32, up to 64).
        max_tokens: positional buckets of VATT-MA's text path (16 words).
        size: ``small`` | ``base`` | ``medium`` | ``large`` (VATT's presets; ``tiny`` for tests and the toy world).
        num_layers, d_model, d_ff, num_heads, d_kv: override fields of the preset.
        dropout: Transformer and positional-embedding dropout (0.1).
        post_projection: width of a Linear + GELU after the Transformer (VATT-MA: 1024; without bias in the T5 tower, as VATT's); None: none.
        trunk: name of a shared trunk under ``model.init_args.trunks`` to run instead of an own Transformer.
        grad_checkpointing: recompute each Transformer layer in backward. compile: ``torch.compile`` each layer.
    """

    input_ndim = 1
    contract_kwargs = {"size": "tiny", "vocab_size": 50, "embed_dim": 12}

    def __init__(
        self, size: str = "small", num_layers: int | None = None, d_model: int | None = None, d_ff: int | None = None,
        num_heads: int | None = None, d_kv: int | None = None, embeddings_path: str | None = None, vocab_path: str | None = None,
        vocab_size: int = 1000, embed_dim: int = 300, pad_id: int = PAD_ID, seed: int = 0, dropout: float = 0.1,
        num_relative_buckets: int = 32, max_relative_distance: int = 64, max_tokens: int = 16, post_projection: int | None = None, trunk: str | None = None, grad_checkpointing: bool = False, compile: bool = False,
        modality: str = "text",
    ) -> None:
        spec = resolve_size(size, num_layers, d_model, d_ff, num_heads, d_kv)
        # VATT's T5 tower has a post-projection without bias; VATT-MA's has one
        super().__init__(modality, spec, post_projection, trunk, post_bias=trunk is not None)
        self.embed_dim, self.pad_id = embed_dim, pad_id
        self.init_table(embeddings_path, vocab_path, vocab_size, seed)
        if trunk is None:  # T5 tower: [AGG] in word-vector space, Linear without bias, relative position bias
            self.agg_embedding = self._agg_embedding(embed_dim)
            self.pre_proj = nn.Linear(embed_dim, spec.d_model, bias=False)
            self.pos_embedding_lookup = None
            self.trunk = T5Encoder(spec, dropout, num_relative_buckets, max_relative_distance, grad_checkpointing, compile)
        else:  # VATT-MA: Linear with bias, absolute positions, [AGG] in model space, the shared trunk
            self.pre_proj = nn.Linear(embed_dim, spec.d_model)
            self.pos_embedding_lookup = TemporalEmbeddings(spec.d_model, max_tokens, dropout)
            self.agg_embedding = self._agg_embedding(spec.d_model)
            self.trunk = None
        glorot_(self.pre_proj)

    def forward_tokens(self, x: Tensor) -> Tokens:
        """``[N, L]`` ids -> word tokens ``[N, L, out_dim]`` (mask: not padding) and the [AGG] output ``[N, out_dim]``."""
        if x.dim() != 2:
            raise ValueError(f"VATTText expects word ids [N, L], got shape {tuple(x.shape)}")
        valid = x != self.pad_id
        words = self.word_vectors(x)
        if self.shared_trunk is None:
            agg = self.agg_embedding.to(words.dtype).expand(words.shape[0], 1, -1)
            hidden = F.gelu(self.pre_proj(torch.cat([agg, words], dim=1)))
        else:
            hidden = self.pos_embedding_lookup(F.gelu(self.pre_proj(words)))
            agg = self.agg_embedding.to(hidden.dtype).expand(hidden.shape[0], 1, -1)
            hidden = torch.cat([agg, hidden], dim=1)
        mask = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)
        hidden = self._project_out(self.trunk(hidden, mask))
        return Tokens(hidden[:, 1:], valid, hidden[:, 0])

    def example_input(self, batch_size: int) -> Tensor:
        x = torch.randint(1, max(2, self.vocab_size), (batch_size, 6))
        x[:, 4:] = self.pad_id  # some padding
        return x

    def check_input_spec(self, spec: Mapping[str, Any]) -> None:
        self.check_table_spec(spec)

