"""The pretraining objective: terms that read embeddings, backbone features and the batch, and may hold state.

A graph's ``terms`` are :class:`ObjectiveTerm` modules. Each term

- names the nodes it reads (:meth:`ObjectiveTerm.reads`): joint-space embeddings ``"video@va"``
  (``[B, D]``, or ``[B*K, D]`` clip-major for K candidates per clip) or backbone features
  ``"video"`` (``[B, d_v]``), checked against the graph before training;
- may build parameters once the widths are known (:meth:`ObjectiveTerm.build`, e.g. MCN's
  reconstruction decoders);
- computes a scalar loss from :class:`TermInputs` (:meth:`ObjectiveTerm.forward`);
- may keep state across steps (:meth:`ObjectiveTerm.update`, called once per optimizer step after
  the loss, without gradient: a queue of past embeddings, k-means centroids). State lives in
  buffers, so it is saved in checkpoints and restored on resume; under DDP a stateful term must
  keep its state identical on every rank (gather what it stores from all ranks, compute
  deterministically).

Terms are combined with their ``weight`` as ``sum_w w*L / sum_w w`` (``reduction: mean``, MMV and
VATT) or ``sum_w w*L`` (``reduction: sum``, MCN's ``MMS + 1*L_clu + 50*recon``); see
:class:`~versanet.graph.ModalityGraph`.

:class:`LossTerm` is the pairwise kind MMV and VATT use: a contrastive loss between modality
``a`` (one embedding per clip) and modality ``b`` (K per clip) in one joint space. In YAML it needs
no ``class_path``: ``{space: va, a: video, b: audio, loss: {class_path: NCELoss}}``. Other terms
name their class: ``{class_path: ClusteringTerm, init_args: {...}}``.

Retrieval evaluated during validation is declared separately (:class:`Retrieval`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from versanet.losses import ContrastiveLoss, NCELoss
from versanet.registry import register

if TYPE_CHECKING:
    from versanet.graph import ModalityGraph


@dataclass
class TermInputs:
    """What a term may read in one step.

    ``emb``: backbone features by modality (``"video": [B, d_v]``; ``[B*K, d]`` for a modality with
    K candidates per clip) and joint-space embeddings by node (``"video@va": [B, D]``,
    ``"text@vat": [B*K, D]``); ``batch``: the collated batch (``batch["mask"][m]``: bool ``[B, K]``);
    ``batch_size``: B, clips on this rank; ``step``: the trainer's global step; ``training``: False
    in validation and test.
    """

    emb: dict[str, Tensor]
    batch: dict[str, Any]
    batch_size: int
    step: int = 0
    training: bool = True

    def mask(self, modality: str) -> Tensor | None:
        """Presence of ``modality``'s candidates, bool ``[B, K]`` (None: all present)."""
        mask = self.batch.get("mask", {}).get(modality)
        if mask is None:
            return None
        device = next(iter(self.emb.values())).device
        return mask.to(device).bool().reshape(self.batch_size, -1)


class ObjectiveTerm(nn.Module):
    """Base of every term of the pretraining objective (see the module docstring).

    Args:
        weight: the term's weight in the total.
        name: how logs and checkpoints name it (default: :meth:`default_name`); unique per graph.
    """

    def __init__(self, weight: float = 1.0, name: str | None = None) -> None:
        super().__init__()
        self.weight = float(weight)
        self._name = name

    @property
    def name(self) -> str:
        return self._name or self.default_name()

    def default_name(self) -> str:
        return type(self).__name__

    def reads(self) -> list[str]:
        """The nodes this term reads: ``"modality@space"`` embeddings or ``"modality"`` backbone features."""
        return []

    def build(self, graph: ModalityGraph, modality_dims: dict[str, int]) -> None:
        """Create width-dependent parameters (called once by the pretraining module, after validation)."""

    def forward(self, inputs: TermInputs) -> Tensor:  # pragma: no cover - every subclass overrides
        raise NotImplementedError(f"objective term {type(self).__name__} must implement forward(inputs) -> scalar")

    @torch.no_grad()
    def update(self, inputs: TermInputs) -> None:
        """Update state after the step's loss (default: stateless)."""

    def metrics(self) -> dict[str, Tensor]:
        """Scalars worth a training curve (logged as ``train/<term name>/<key>``), e.g. a learned temperature."""
        return {}

    def describe(self) -> str:
        """One line for the graph summary."""
        return f"{type(self).__name__}({', '.join(self.reads())})"


@register("term")
class LossTerm(ObjectiveTerm):
    """Contrast modality ``a`` (one embedding per clip) with ``b`` (K candidates per clip) in joint space ``space``.

    Args:
        space: the joint space.
        a: the anchor modality (its embedding ``[B, D]``).
        b: the candidate modality (``[B*K, D]``, clip-major).
        loss: a :class:`~versanet.losses.ContrastiveLoss` (default ``NCELoss()``, tau 0.07).
        weight: the term's weight.
    """

    def __init__(self, space: str, a: str, b: str, loss: ContrastiveLoss | None = None, weight: float = 1.0, name: str | None = None) -> None:
        super().__init__(weight, name)
        self.space, self.a, self.b = space, a, b
        self.loss = NCELoss() if loss is None else loss

    def default_name(self) -> str:
        return f"{self.a}_{self.b}@{self.space}"

    def reads(self) -> list[str]:
        return [f"{self.a}@{self.space}", f"{self.b}@{self.space}"]

    def forward(self, inputs: TermInputs) -> Tensor:
        a, b = inputs.emb[f"{self.a}@{self.space}"], inputs.emb[f"{self.b}@{self.space}"]
        if a.shape[0] != inputs.batch_size:
            raise ValueError(f"loss term {self.name}: the anchor {self.a} must have one embedding per clip ({a.shape[0]} for {inputs.batch_size} clips)")
        a_mask = inputs.mask(self.a)
        return self.loss(a, b, a_mask.any(dim=1) if a_mask is not None else None, inputs.mask(self.b))

    def describe(self) -> str:
        return f"{type(self.loss).__name__}({self.a}, {self.b}) in {self.space}"

    def metrics(self) -> dict[str, Tensor]:
        if isinstance(getattr(self.loss, "log_inv_tau", None), nn.Parameter):
            return {"temperature": self.loss.temperature.detach()}
        return {}


@dataclass
class Retrieval:
    """A retrieval evaluated on held-out clips during validation and test, in both directions.

    ``query`` against ``gallery`` in joint space ``space``; a gallery of several modalities
    (``[video, audio]``) is scored by ``fusion`` (see :func:`versanet.eval.retrieval.fused_similarity`):
    ``mean_cosine``, the mean over the gallery modalities of the cosine similarity, or ``sum_dot``,
    MCN's sum of raw dot products (``text @ (video + audio)^T``). For a modality with K candidates
    per clip (captions) the first candidate, the one nearest the clip, is used.
    """

    space: str
    query: str
    gallery: list[str] | str
    fusion: Literal["mean_cosine", "sum_dot"] = "mean_cosine"

    def __post_init__(self) -> None:
        if isinstance(self.gallery, str):
            self.gallery = [self.gallery]

    @property
    def gallery_name(self) -> str:
        return "+".join(self.gallery)

    def nodes(self) -> list[str]:
        return [f"{m}@{self.space}" for m in [self.query, *self.gallery]]


def combine(losses: dict[str, Tensor], weights: dict[str, float], reduction: str) -> Tensor:
    """``sum_w w*L / sum_w w`` (``mean``) or ``sum_w w*L`` (``sum``) over the named terms."""
    total = sum(weights[name] * value for name, value in losses.items())
    if reduction == "mean":
        return total / sum(weights[name] for name in losses)
    if reduction == "sum":
        return total
    raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
