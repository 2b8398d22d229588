"""What every benchmark module shares: loading the pretrained network, multi-view inputs, joint-space embeddings.

Shape legend: B samples, V views per sample (clips x crops, clip-major), N = B*V, d feature width.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from versanet.checkpoint import Init, load_pretrained, reinitialise
from versanet.graph import Edge, GraphError, ModalityGraph

__all__ = [
    "Init", "load_pretrained", "reinitialise",  # re-exported: the one checkpoint loader lives in versanet.checkpoint
    "checkpoint_fingerprint", "flatten_views", "encode_views", "pick_label", "data_classes", "edge_path", "embed", "shared_space",
    "FrozenBackboneMixin",
]

_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 (first 16 hex digits) of a checkpoint file's bytes; memoised per (path, size, mtime)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
        _FINGERPRINTS[key] = digest.hexdigest()[:16]
    return _FINGERPRINTS[key]


def flatten_views(x: Tensor, input_ndim: int) -> tuple[Tensor, int]:
    """``[B, *input]`` -> (itself, 1); ``[B, V, *input]`` -> (``[B*V, *input]`` clip-major, V)."""
    if x.dim() == input_ndim + 1:
        return x, 1
    if x.dim() == input_ndim + 2:
        return x.flatten(0, 1), x.shape[1]
    raise ValueError(f"expected [B, *input] or [B, V, *input] with {input_ndim} input dims, got shape {tuple(x.shape)}")


def encode_views(encoder: nn.Module, x: Tensor, chunk: int | None = None) -> Tensor:
    """Backbone features of a (multi-view) batch: ``[B, *input]`` or ``[B, V, *input]`` -> ``[B, V, d]``."""
    flat, views = flatten_views(x, encoder.input_ndim)
    if chunk and flat.shape[0] > chunk:
        feats = torch.cat([encoder(part) for part in flat.split(chunk)])
    else:
        feats = encoder(flat)
    return feats.reshape(x.shape[0], views, -1)


def pick_label(label: Any, label_key: str | None) -> Tensor:
    """The class label tensor of a batch: ``label`` itself, or ``label[label_key]`` when labels are a dict of columns."""
    if isinstance(label, dict):
        if label_key is None:
            raise ValueError(f"the data gives several label columns ({', '.join(label)}); set the module's label_key")
        if label_key not in label:
            raise KeyError(f"label_key {label_key!r} is not a label column; columns: {', '.join(label)}")
        return label[label_key]
    return label


def data_classes(datamodule: Any, label_key: str | None = None) -> tuple[int, list[str], bool]:
    """(num_classes, class names, multilabel) of a set-up data module (the benchmark data contract)."""
    multilabel = bool(getattr(datamodule, "multilabel", False))
    names = getattr(datamodule, "class_names", None) or getattr(datamodule, "classes", None)
    label_classes = getattr(datamodule, "label_classes", None)
    if label_key is not None and isinstance(label_classes, dict) and label_key in label_classes:
        names = label_classes[label_key]
    num = getattr(datamodule, "num_classes", None)
    if num is None and names:
        num = len(names)
    if not num:
        raise ValueError(f"{type(datamodule).__name__} does not say how many classes there are (num_classes / class_names after setup)")
    return int(num), list(names or [str(i) for i in range(num)]), multilabel


# ---------------------------------------------------------------------------- joint spaces
def edge_path(graph: ModalityGraph, modality: str, space: str, borrow: bool = True) -> list[Edge]:
    """The edges that take ``modality``'s backbone feature to ``modality@space``, in order.

    ``borrow``: when no edge takes the modality into ``space`` itself, use another modality's edge
    out of a space the modality does reach (FAC at evaluation: audio ``S_va -> S_vat`` through the
    video's fine-to-coarse head, MMV's audio-text retrieval).
    """
    by_target = {e.target: e for e in graph.edges}

    def chain(node: str) -> list[Edge] | None:
        edges: list[Edge] = []
        while node in by_target:
            edge = by_target[node]
            edges.append(edge)
            if "@" not in edge.source:
                return edges[::-1]
            node = edge.source
        return None

    path = chain(f"{modality}@{space}")
    if path:
        return path
    if borrow:
        for edge in graph.ordered_edges():
            if edge.space == space and "@" in edge.source:
                head = chain(f"{modality}@{edge.source.split('@', 1)[1]}")
                if head:
                    return head + [edge]
    reach = sorted({e.space for e in graph.edges if e.modality == modality})
    raise GraphError(f"{modality} does not reach space {space!r} in graph {graph.name!r} (it reaches: {', '.join(reach) or 'nothing'})")


def embed(model: nn.Module, modality: str, features: Tensor, space: str, borrow: bool = True) -> Tensor:
    """Backbone features ``[N, d_m]`` of ``modality`` -> its embedding in ``space`` ``[N, d_space]`` (unnormalised)."""
    out = features
    for edge in edge_path(model.graph, modality, space, borrow):
        out = model.heads[edge.key](out)
    return out


def shared_space(graph: ModalityGraph, a: str, b: str, borrow: bool = True) -> str:
    """The joint space in which ``a`` and ``b`` are compared: the space of a retrieval (or loss term) pairing them,
    else the only space both reach (with ``borrow``, see :func:`edge_path`)."""
    for r in graph.retrieval:
        if {r.query, *r.gallery} == {a, b}:
            return r.space
    candidates = []
    for space in graph.spaces:
        try:
            edge_path(graph, a, space, borrow)
            edge_path(graph, b, space, borrow)
        except GraphError:
            continue
        candidates.append(space)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise GraphError(f"{a} and {b} share no joint space in graph {graph.name!r}")
    raise GraphError(f"{a} and {b} meet in several spaces ({', '.join(candidates)}) of graph {graph.name!r}; name one with `space`")


class FrozenBackboneMixin:
    """Keep ``self.backbone`` frozen and in eval mode (BatchNorm statistics included) whatever ``train()`` is
    called with, while ``self.backbone_frozen`` is True (the default)."""

    backbone_frozen: bool = True

    def freeze_backbone(self) -> None:
        self.backbone_frozen = True
        for p in self.backbone.parameters():  # type: ignore[attr-defined]
            p.requires_grad_(False)
        self.backbone.eval()  # type: ignore[attr-defined]

    def train(self, mode: bool = True):  # noqa: ANN201 - nn.Module.train signature
        super().train(mode)  # type: ignore[misc]
        if self.backbone_frozen:
            self.backbone.eval()  # type: ignore[attr-defined]
        return self
