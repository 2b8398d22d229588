"""VATT's Transformer stacks: the pre-LN encoder of the video/audio towers and VATT-MA, and the T5 text encoder.

Both follow VATT's TF code layer for layer, with the attribute names of its TF objects (what its
checkpoints are keyed by), so that a checkpoint maps onto ours one variable at a time (``docs/vatt.md``):

- :class:`TransformerEncoder` (video, audio, VATT-MA's shared trunk): ``layers.{i}`` =
  ``x + drop(MHA(LN(x)))`` then ``x + drop(wo(drop(GELU(wi(LN(x))))))``; ``final_layer_norm`` then
  dropout after the last layer. Every Linear has a bias; LayerNorm eps 1e-6; GELU exact (erf);
  attention scaled by ``1/sqrt(d_kv)``, its weights dropped out at the same rate.
- :class:`T5Encoder` (text): T5's pre-norm layers with VATT's quirks: the attention pre-norm is T5's
  RMS norm (scale only), the feed-forward pre-norm a full LayerNorm (scale and shift, as in VATT's
  code), no bias anywhere, NO ``1/sqrt(d_kv)`` scaling (T5 folds it into the initialisation), a
  bucketed relative position bias computed by layer 0 and reused by every layer, dropout on the
  input embeddings, final RMS norm then dropout.

Attention is ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient kernels
on GPU; the padding mask and T5's bias go in as an additive ``attn_mask``, -1e9 at padded keys as in
VATT's code).

Why not timm's ``Block``/``Attention``: timm fuses q, k, v into one Linear and always scales by
``1/sqrt(d)``; VATT keeps ``q``, ``k``, ``v``, ``o`` apart (one converted tensor per TF variable) and
its T5 text encoder needs no scaling, RMS norm before attention, LayerNorm before the MLP and an
additive relative bias. One small implementation covers both stacks; the dropout placement is the
same as timm's (``attn_drop``, ``proj_drop``, MLP ``drop1``/``drop2``).

Shape legend: N sequences, L tokens, D = ``d_model``, H heads, d_kv per-head width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from versanet.encoders.base import run_blocks

LAYER_NORM_EPS = 1e-6
_MASKED = -1e9  # VATT's additive attention mask at padded keys


@dataclass(frozen=True)
class VATTSize:
    """One Transformer size: layers, width, MLP width, heads and per-head width (``d_kv``)."""

    num_layers: int
    d_model: int
    d_ff: int
    num_heads: int
    d_kv: int = 64


SIZES: dict[str, VATTSize] = {
    "tiny": VATTSize(2, 64, 128, 2, 32),  # not in the paper: tests and the toy world
    "small": VATTSize(6, 512, 2048, 8),
    "base": VATTSize(12, 768, 3072, 12),
    "medium": VATTSize(12, 1024, 4096, 16),
    "large": VATTSize(24, 1024, 4096, 16),
}


def resolve_size(
    size: str, num_layers: int | None = None, d_model: int | None = None, d_ff: int | None = None,
    num_heads: int | None = None, d_kv: int | None = None,
) -> VATTSize:
    """The preset ``size`` with any of its fields overridden (``None`` keeps the preset's)."""
    if size not in SIZES:
        raise ValueError(f"unknown VATT size {size!r}; sizes are {', '.join(SIZES)}")
    base = SIZES[size]
    out = VATTSize(
        num_layers if num_layers is not None else base.num_layers, d_model if d_model is not None else base.d_model,
        d_ff if d_ff is not None else base.d_ff, num_heads if num_heads is not None else base.num_heads,
        d_kv if d_kv is not None else base.d_kv,
    )
    if min(out.num_layers, out.d_model, out.d_ff, out.num_heads, out.d_kv) < 1:
        raise ValueError(f"VATT size fields must be positive, got {out}")
    return out


def padding_bias(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Bool ``[N, L]`` (True = real token) -> additive attention mask ``[N, 1, 1, L]`` (0 or -1e9), or None."""
    if mask is None:
        return None
    return (~mask).to(dtype)[:, None, None, :] * _MASKED


def glorot_(linear: nn.Linear | nn.Conv1d | nn.Conv3d) -> None:
    """Keras' default initialisation: Glorot-uniform weights (fans over the receptive field), zero bias."""
    nn.init.xavier_uniform_(linear.weight)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


class MultiHeadAttention(nn.Module):
    """``x [N, L, D]`` -> ``o(SDPA(q(x), k(x), v(x)))`` ``[N, L, D]``; ``q``/``k``/``v``: D -> H*d_kv, ``o``: H*d_kv -> D.

    ``scaled``: divide the scores by ``sqrt(d_kv)`` (VATT's video/audio Transformer) or not (T5).
    ``attn_bias``: additive ``[N or 1, H or 1, L, L]`` (padding, T5's relative bias), or None.
    """

    def __init__(self, d_model: int, d_kv: int, num_heads: int, bias: bool = True, dropout: float = 0.1, scaled: bool = True) -> None:
        super().__init__()
        self.num_heads, self.d_kv, self.dropout, self.scaled = num_heads, d_kv, dropout, scaled
        inner = num_heads * d_kv
        self.q = nn.Linear(d_model, inner, bias=bias)
        self.k = nn.Linear(d_model, inner, bias=bias)
        self.v = nn.Linear(d_model, inner, bias=bias)
        self.o = nn.Linear(inner, d_model, bias=bias)
        for linear in (self.q, self.k, self.v, self.o):
            glorot_(linear)

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.num_heads, self.d_kv)).transpose(1, 2)  # [N, H, L, d_kv]

    def forward(self, x: Tensor, attn_bias: Tensor | None = None) -> Tensor:
        """``[N, L, D]`` -> ``[N, L, D]``."""
        q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
        if attn_bias is not None:
            attn_bias = attn_bias.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_bias, dropout_p=self.dropout if self.training else 0.0, scale=None if self.scaled else 1.0
        )
        return self.o(out.transpose(1, 2).flatten(2))


class DenseGeluDense(nn.Module):
    """``wo(drop(GELU(wi(x))))``: the Transformer MLP (VATT's ``DenseGeLUDense``)."""

    def __init__(self, d_model: int, d_ff: int, bias: bool = True, dropout: float = 0.1) -> None:
        super().__init__()
        self.wi = nn.Linear(d_model, d_ff, bias=bias)
        self.wo = nn.Linear(d_ff, d_model, bias=bias)
        self.act = nn.GELU()  # exact (erf), as Keras' gelu
        self.dropout = nn.Dropout(dropout)
        glorot_(self.wi)
        glorot_(self.wo)

    def forward(self, x: Tensor) -> Tensor:
        return self.wo(self.dropout(self.act(self.wi(x))))


class FeedForward(nn.Module):
    """Pre-LN residual MLP: ``x + drop(mlp(LN(x)))``; ``layer_norm`` is a full LayerNorm in both stacks."""

    def __init__(self, d_model: int, d_ff: int, bias: bool = True, dropout: float = 0.1) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.mlp = DenseGeluDense(d_model, d_ff, bias, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, L, D]`` -> ``[N, L, D]``."""
        return x + self.dropout(self.mlp(self.layer_norm(x)))


class TransformerEncoderLayer(nn.Module):
    """``x + drop(MHA(LN(x)))``, then :class:`FeedForward` (VATT's ``TransformerEncoderLayer`` with ``pre_norm``)."""

    def __init__(self, size: VATTSize, dropout: float = 0.1) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(size.d_model, eps=LAYER_NORM_EPS)
        self.mha = MultiHeadAttention(size.d_model, size.d_kv, size.num_heads, True, dropout)
        self.dropout = nn.Dropout(dropout)
        self.feed_forward = FeedForward(size.d_model, size.d_ff, True, dropout)

    def forward(self, x: Tensor, attn_bias: Tensor | None = None) -> Tensor:
        """``[N, L, D]`` -> ``[N, L, D]``."""
        x = x + self.dropout(self.mha(self.layer_norm(x), attn_bias))
        return self.feed_forward(x)


class LayerStack(nn.Module):
    """Layers ``[N, L, D] -> [N, L, D]`` that share an attention bias, a final norm and dropout; speed switches.

    ``grad_checkpointing``: recompute each layer in backward (memory for compute); ``compile``:
    ``torch.compile`` each layer in place (the first steps pay the compilation).
    """

    def __init__(self, size: VATTSize, layers: list[nn.Module], final_layer_norm: nn.Module, dropout: float, grad_checkpointing: bool, compile: bool) -> None:
        super().__init__()
        self.size, self.d_model = size, size.d_model
        self.layers = nn.ModuleList(layers)
        self.final_layer_norm = final_layer_norm
        self.dropout = nn.Dropout(dropout)
        self.grad_checkpointing = grad_checkpointing
        if compile:
            for layer in self.layers:
                layer.compile()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def run_layers(self, x: Tensor, bias: Tensor | None) -> Tensor:
        """Every layer (with ``bias`` added to its attention scores), then the final norm and dropout."""
        layers = self.layers if bias is None else [partial(layer, attn_bias=bias) for layer in self.layers]
        return self.dropout(self.final_layer_norm(run_blocks(layers, x, self.grad_checkpointing)))


class TransformerEncoder(LayerStack):
    """VATT's pre-LN Transformer: ``layers`` then ``final_layer_norm`` and dropout; ``[N, L, D]`` -> ``[N, L, D]``.

    Args:
        size: the layer count and widths (:data:`SIZES`).
        dropout: residual, MLP and attention-weight dropout (0.1 in VATT).
        grad_checkpointing, compile: see :class:`LayerStack`.
    """

    def __init__(self, size: VATTSize, dropout: float = 0.1, grad_checkpointing: bool = False, compile: bool = False) -> None:
        layers = [TransformerEncoderLayer(size, dropout) for _ in range(size.num_layers)]
        super().__init__(size, layers, nn.LayerNorm(size.d_model, eps=LAYER_NORM_EPS), dropout, grad_checkpointing, compile)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x [N, L, D]``, ``mask`` bool ``[N, L]`` (True = real token; None: all) -> ``[N, L, D]``."""
        return self.run_layers(x, padding_bias(mask, x.dtype))


# ---------------------------------------------------------------------------- T5 (the text tower)
def relative_position_bucket(relative_position: Tensor, num_buckets: int = 32, max_distance: int = 64) -> Tensor:
    """T5's bidirectional bucketing of ``key - query`` offsets: half the buckets per sign, exact up to
    ``num_buckets // 4``, then logarithmic up to ``max_distance`` (the last bucket beyond)."""
    half = num_buckets // 2
    bucket = (relative_position > 0).long() * half
    n = relative_position.abs()
    max_exact = half // 2
    large = max_exact + (torch.log(n.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)).long()
    large = large.clamp(max=half - 1)
    return bucket + torch.where(n < max_exact, n, large)


class T5MultiHeadAttention(MultiHeadAttention):
    """T5 attention (no bias, no score scaling); layer 0's also owns ``relative_attention_bias`` ``[buckets, H]``."""

    def __init__(self, size: VATTSize, dropout: float, num_buckets: int | None, max_distance: int) -> None:
        super().__init__(size.d_model, size.d_kv, size.num_heads, bias=False, dropout=dropout, scaled=False)
        self.num_buckets, self.max_distance = num_buckets, max_distance
        if num_buckets is not None:
            self.relative_attention_bias = nn.Embedding(num_buckets, size.num_heads)
            nn.init.uniform_(self.relative_attention_bias.weight, -0.05, 0.05)  # Keras Embedding's default

    def compute_bias(self, length: int) -> Tensor:
        """The relative position bias ``[1, H, L, L]`` of a length-``L`` sequence."""
        position = torch.arange(length, device=self.relative_attention_bias.weight.device)
        buckets = relative_position_bucket(position[None, :] - position[:, None], self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)


class T5SelfAttention(nn.Module):
    """``x + drop(attention(RMSNorm(x), bias))`` (VATT's T5 ``AttentionLayer``)."""

    def __init__(self, size: VATTSize, dropout: float, num_buckets: int | None, max_distance: int) -> None:
        super().__init__()
        self.attention = T5MultiHeadAttention(size, dropout, num_buckets, max_distance)
        self.layer_norm = nn.RMSNorm(size.d_model, eps=LAYER_NORM_EPS)  # T5LayerNorm: scale only, no mean
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        return x + self.dropout(self.attention(self.layer_norm(x), bias))


class T5EncoderLayer(nn.Module):
    """:class:`T5SelfAttention` then :class:`FeedForward` (no biases)."""

    def __init__(self, size: VATTSize, dropout: float, num_buckets: int | None, max_distance: int) -> None:
        super().__init__()
        self.self_attention = T5SelfAttention(size, dropout, num_buckets, max_distance)
        self.feed_forward = FeedForward(size.d_model, size.d_ff, bias=False, dropout=dropout)

    def forward(self, x: Tensor, attn_bias: Tensor) -> Tensor:
        return self.feed_forward(self.self_attention(x, attn_bias))


class T5Encoder(LayerStack):
    """VATT's T5 text encoder on embedded tokens: ``[N, L, D]`` (+ mask) -> ``[N, L, D]``.

    Dropout on the input, ``layers`` (layer 0 computes the relative position bias, 32 buckets up to
    distance 64, and every layer adds it, plus -1e9 at padded keys), ``final_layer_norm`` (RMS), dropout.
    """

    def __init__(
        self, size: VATTSize, dropout: float = 0.1, num_buckets: int = 32, max_distance: int = 64,
        grad_checkpointing: bool = False, compile: bool = False,
    ) -> None:
        layers = [T5EncoderLayer(size, dropout, num_buckets if i == 0 else None, max_distance) for i in range(size.num_layers)]
        super().__init__(size, layers, nn.RMSNorm(size.d_model, eps=LAYER_NORM_EPS), dropout, grad_checkpointing, compile)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x [N, L, D]``, ``mask`` bool ``[N, L]`` (True = real token) -> ``[N, L, D]``."""
        bias = self.layers[0].self_attention.attention.compute_bias(x.shape[1]).to(x.dtype)
        padding = padding_bias(mask, x.dtype)
        if padding is not None:
            bias = bias + padding  # [N, H, L, L]
        return self.run_layers(self.dropout(x), bias)
