"""VATT's Transformer as a registered trunk: one set of weights that several modality encoders may share (VATT-MA).

``VATTTrunk`` is the pre-LN :class:`~versanet.encoders.vatt.transformer.TransformerEncoder` with a size
preset. Each VATT tower builds one for itself; VATT-MA builds one under ``model.init_args.trunks`` and
every tower names it (``trunk: shared``), so it is counted, optimised and saved once::

    trunks:
      shared: {class_path: VATTTrunk, init_args: {size: medium}}
    encoders:
      video: {class_path: VATTVideo, init_args: {size: medium, trunk: shared, pre_projection: true, post_projection: 1024}}
"""

from __future__ import annotations

from versanet.encoders.vatt.transformer import TransformerEncoder, resolve_size
from versanet.registry import register


@register("trunk")
class VATTTrunk(TransformerEncoder):
    """VATT's pre-LN Transformer ``[N, L, D]`` (+ padding mask ``[N, L]``) -> ``[N, L, D]``, by size preset.

    Args:
        size: ``small`` (6/512/2048/8), ``base`` (12/768/3072/12), ``medium`` (12/1024/4096/16),
            ``large`` (24/1024/4096/16) as layers/width/MLP width/heads, 64-d heads; ``tiny`` for tests.
        num_layers, d_model, d_ff, num_heads, d_kv: override the preset's fields.
        dropout: residual, MLP and attention dropout (0.1).
        grad_checkpointing: recompute each layer in backward. compile: ``torch.compile`` each layer.
    """

    def __init__(
        self, size: str = "medium", num_layers: int | None = None, d_model: int | None = None, d_ff: int | None = None,
        num_heads: int | None = None, d_kv: int | None = None, dropout: float = 0.1, grad_checkpointing: bool = False, compile: bool = False,
    ) -> None:
        super().__init__(resolve_size(size, num_layers, d_model, d_ff, num_heads, d_kv), dropout, grad_checkpointing, compile)
