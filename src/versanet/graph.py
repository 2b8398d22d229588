"""The modality embedding graph (MMV): which heads take which features into which joint spaces, and the objective.

A graph is data:
- ``spaces``: joint space name -> width, e.g. ``{"va": 512, "vat": 256}``;
- ``edges``: ``Edge(source, space, head)`` where ``source`` is a modality (``"video"``: its backbone
  feature) or a modality's embedding in another space (``"video@va"``), and ``head`` is a head
  factory called with ``(in_dim, out_dim)``;
- ``terms``: the objective, a list of :class:`~versanet.objective.ObjectiveTerm` s. The pairwise
  kind, ``LossTerm(space, a, b, loss, weight)``, contrasts modalities ``a`` and ``b`` in ``space``
  (``b`` may carry K candidates per clip, e.g. captions); other terms read any embeddings,
  backbone features and the batch, and may keep state (MCN's clustering);
- ``reduction``: how weighted terms combine: ``mean`` (``sum w*L / sum w``) or ``sum``;
- ``retrieval``: the retrievals validation reports (default: both directions of every pairwise term).

A modality's embedding in a space is a *node* ``"modality@space"``. Every node is reached by
exactly one edge. Presets :class:`FAC`, :class:`Shared` and :class:`Disjoint` are named graphs
over ``video``, ``audio`` and ``text``; :class:`ModalityGraph` takes any modalities and spaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

from torch import nn

from versanet.heads import HeadFactory, LinearHead, MLPBNHead, ReLULinearBNHead
from versanet.losses import MILNCELoss, NCELoss
from versanet.objective import LossTerm, ObjectiveTerm, Retrieval
from versanet.registry import register

__all__ = ["Edge", "LossTerm", "ObjectiveTerm", "Retrieval", "ModalityGraph", "FAC", "Shared", "Disjoint", "GraphError"]


class GraphError(ValueError):
    """An invalid modality embedding graph; the message says what to fix."""


@dataclass
class Edge:
    """A head from ``source`` (``"video"`` or ``"video@va"``) into joint space ``space``."""

    source: str
    space: str
    head: HeadFactory = LinearHead

    @property
    def modality(self) -> str:
        return self.source.split("@", 1)[0]

    @property
    def target(self) -> str:
        """The node this edge produces, ``"modality@space"``."""
        return f"{self.modality}@{self.space}"

    @property
    def key(self) -> str:
        """Name of the head's module, e.g. ``"video@va->vat"``."""
        return f"{self.source}->{self.space}"


@register("graph")
class ModalityGraph:
    """Any modality embedding graph: joint spaces, head edges, objective terms and validation retrievals.

    Args:
        spaces: joint space name -> width.
        edges: heads from a modality (or its embedding in another space) into a space.
        terms: the objective's terms (:class:`LossTerm` needs no ``class_path`` in YAML).
        name: shown in summaries and errors.
        reduction: ``mean``: ``sum w*L / sum w`` (MMV, VATT); ``sum``: ``sum w*L`` (MCN).
        retrieval: retrievals reported at validation/test; None: both directions of every pairwise term.
    """

    def __init__(
        self,
        spaces: dict[str, int],
        edges: list[Edge],
        terms: list[LossTerm | ObjectiveTerm],
        name: str = "custom",
        reduction: Literal["mean", "sum"] = "mean",
        retrieval: list[Retrieval] | None = None,
    ) -> None:
        self.spaces = dict(spaces)
        self.edges = list(edges)
        self.terms = list(terms)
        self.name = name
        self.reduction = reduction
        self._retrieval = None if retrieval is None else list(retrieval)

    @property
    def retrieval(self) -> list[Retrieval]:
        """The declared retrievals, else one per pairwise term (``a`` queries ``b``; both directions are reported)."""
        if self._retrieval is not None:
            return self._retrieval
        return [Retrieval(t.space, t.a, [t.b]) for t in self.terms if isinstance(t, LossTerm)]

    # ------------------------------------------------------------------ structure
    @property
    def modalities(self) -> list[str]:
        """Modalities with at least one edge, in first-seen order."""
        return list(dict.fromkeys(e.modality for e in self.edges))

    def nodes(self) -> list[str]:
        """Every ``modality@space`` node the edges produce."""
        return [e.target for e in self.edges]

    def ordered_edges(self) -> list[Edge]:
        """Edges in an order where each source is computed before it is used (raises on a cycle)."""
        produced: set[str] = set()
        pending = list(self.edges)
        ordered: list[Edge] = []
        while pending:
            ready = [e for e in pending if "@" not in e.source or e.source in produced]
            if not ready:
                cycle = ", ".join(f"{e.source} -> {e.space}" for e in pending)
                raise GraphError(
                    f"graph {self.name!r}: these edges form a cycle or read a node no edge produces: {cycle}. "
                    "An edge may read 'modality@space' only if another edge puts the modality into that space first."
                )
            for e in ready:
                ordered.append(e)
                produced.add(e.target)
                pending.remove(e)
        return ordered

    def validate(self, modality_dims: dict[str, int]) -> None:
        """Check the graph against the encoders' output widths; raise :class:`GraphError` saying what to fix."""
        if not self.spaces:
            raise GraphError(f"graph {self.name!r} has no joint spaces; give `spaces: {{name: dim}}`")
        if not self.terms:
            raise GraphError(f"graph {self.name!r} has no loss terms; give `terms:` naming a space and two modalities")
        if self.reduction not in ("mean", "sum"):
            raise GraphError(f"graph {self.name!r}: reduction must be 'mean' or 'sum', not {self.reduction!r}")
        for space, dim in self.spaces.items():
            if "@" in space or "->" in space or "." in space or not space:
                raise GraphError(f"space name {space!r} may not be empty or contain '@', '->' or '.'")
            if dim <= 0:
                raise GraphError(f"space {space!r} has width {dim}; widths must be positive")
        seen: dict[str, Edge] = {}
        for e in self.edges:
            if e.modality not in modality_dims:
                raise GraphError(
                    f"edge {e.source} -> {e.space} reads modality {e.modality!r}, which has no encoder; "
                    f"encoders are: {', '.join(sorted(modality_dims)) or 'none'}. Add `encoders: {{{e.modality}: ...}}` or fix the edge."
                )
            if e.space not in self.spaces:
                raise GraphError(
                    f"edge {e.source} -> {e.space} targets unknown space {e.space!r}; spaces are: {', '.join(self.spaces)}"
                )
            if e.target in seen:
                raise GraphError(
                    f"{e.target} is reached by two edges ({seen[e.target].source} -> {e.space} and "
                    f"{e.source} -> {e.space}); keep one"
                )
            seen[e.target] = e
        self.ordered_edges()  # cycles
        names: set[str] = set()
        for t in self.terms:
            if not isinstance(t, ObjectiveTerm):
                raise GraphError(f"graph {self.name!r}: term {t!r} is not an ObjectiveTerm")
            if t.name in names:
                raise GraphError(f"two objective terms are named {t.name!r}; give one a `name:`")
            if "." in t.name or not t.name:
                raise GraphError(f"objective term name {t.name!r} may not be empty or contain '.'")
            names.add(t.name)
            if isinstance(t, LossTerm):
                if t.space not in self.spaces:
                    raise GraphError(f"loss term {t.name} names unknown space {t.space!r}; spaces are: {', '.join(self.spaces)}")
                if t.a == t.b:
                    raise GraphError(f"loss term {t.name} contrasts {t.a} with itself; name two modalities")
            for node in t.reads():
                self._check_node(node, f"objective term {t.name}", seen, modality_dims)
            if t.weight < 0:
                raise GraphError(f"loss term {t.name} has negative weight {t.weight}")
        for r in self.retrieval:
            if r.space not in self.spaces:
                raise GraphError(f"retrieval {r.query} -> {r.gallery_name} names unknown space {r.space!r}; spaces are: {', '.join(self.spaces)}")
            for node in r.nodes():
                self._check_node(node, f"retrieval {r.query} -> {r.gallery_name}", seen, modality_dims)

    def _check_node(self, node: str, who: str, produced: Mapping[str, Edge], modality_dims: Mapping[str, int]) -> None:
        """``node`` (``modality@space`` or a modality's backbone feature) exists; else a GraphError saying what to add."""
        if "@" not in node:
            if node not in modality_dims:
                raise GraphError(f"{who} reads the backbone features of {node!r}, which has no encoder; encoders are: {', '.join(sorted(modality_dims))}")
            return
        if node not in produced:
            m, space = node.split("@", 1)
            reach = sorted(n.split("@")[1] for n in produced if n.startswith(f"{m}@"))
            raise GraphError(
                f"{who} needs {m} in space {space!r}, but no edge takes {m} there "
                f"({m} reaches: {', '.join(reach) or 'no space'}). Add an edge `{{source: {m}, space: {space}}}`."
            )

    def input_dim(self, edge: Edge, modality_dims: dict[str, int]) -> int:
        """Width of an edge's input: the backbone's ``out_dim`` or the source space's width."""
        if "@" in edge.source:
            return self.spaces[edge.source.split("@", 1)[1]]
        return modality_dims[edge.modality]

    def summary(self, modality_dims: dict[str, int], heads: Mapping[str, nn.Module] | None = None) -> str:
        """Readable multi-line description: spaces, edges with head types and widths, loss terms."""
        lines = [f"modality embedding graph {self.name!r}"]
        lines.append("  spaces: " + ", ".join(f"{s} ({d}-d)" for s, d in self.spaces.items()))
        for e in self.ordered_edges():
            head = type(heads[e.key]).__name__ if heads is not None else "head"
            width = f"[{self.input_dim(e, modality_dims)} -> {self.spaces[e.space]}]"
            lines.append(f"  {e.source:>14} --{head}--> {e.space} {width}")
        for t in self.terms:
            lines.append(f"  term {t.name}: {t.describe()}, weight {t.weight:g}")
        lines.append(f"  total: {'sum w*L / sum w' if self.reduction == 'mean' else 'sum w*L'}")
        for r in self.retrieval:
            lines.append(f"  retrieval {r.query} <-> {r.gallery_name} in {r.space}")
        return "\n".join(lines)


def _mmv_terms(va_space: str, vt_space: str, temperature: float, va_weight: float, vt_weight: float) -> list[LossTerm]:
    """MMV's objective: NCE(video, audio) + MIL-NCE(video, text), weights lambda_va, lambda_vt (1 and 1 in the paper)."""
    return [
        LossTerm(va_space, "video", "audio", NCELoss(temperature), va_weight),
        LossTerm(vt_space, "video", "text", MILNCELoss(temperature), vt_weight),
    ]


@register("graph")
class FAC(ModalityGraph):
    """Fine-and-coarse (MMV default): video, audio meet in S_va; video goes S_va -> S_vat; text joins in S_vat."""

    def __init__(
        self, va_dim: int = 512, vat_dim: int = 256, temperature: float = 0.07, va_weight: float = 1.0, vt_weight: float = 1.0,
        extra_edges: list[Edge] | None = None, extra_terms: list[LossTerm | ObjectiveTerm] | None = None,
    ) -> None:
        edges = [
            Edge("video", "va", MLPBNHead),
            Edge("video@va", "vat", ReLULinearBNHead),
            Edge("audio", "va", LinearHead),
            Edge("text", "vat", LinearHead),
        ]
        terms = _mmv_terms("va", "vat", temperature, va_weight, vt_weight)
        super().__init__({"va": va_dim, "vat": vat_dim}, edges + list(extra_edges or []), terms + list(extra_terms or []), "fac")


@register("graph")
class Shared(ModalityGraph):
    """Shared: one joint space S_vat for video, audio and text."""

    def __init__(
        self, dim: int = 512, temperature: float = 0.07, va_weight: float = 1.0, vt_weight: float = 1.0,
        extra_edges: list[Edge] | None = None, extra_terms: list[LossTerm | ObjectiveTerm] | None = None,
    ) -> None:
        edges = [Edge("video", "vat", MLPBNHead), Edge("audio", "vat", LinearHead), Edge("text", "vat", LinearHead)]
        terms = _mmv_terms("vat", "vat", temperature, va_weight, vt_weight)
        super().__init__({"vat": dim}, edges + list(extra_edges or []), terms + list(extra_terms or []), "shared")


@register("graph")
class Disjoint(ModalityGraph):
    """Disjoint: S_va for video-audio and S_vt for video-text, each with its own head from the video backbone."""

    def __init__(
        self, va_dim: int = 512, vt_dim: int = 256, temperature: float = 0.07, va_weight: float = 1.0, vt_weight: float = 1.0,
        extra_edges: list[Edge] | None = None, extra_terms: list[LossTerm | ObjectiveTerm] | None = None,
    ) -> None:
        edges = [
            Edge("video", "va", MLPBNHead),
            Edge("video", "vt", MLPBNHead),
            Edge("audio", "va", LinearHead),
            Edge("text", "vt", LinearHead),
        ]
        terms = _mmv_terms("va", "vt", temperature, va_weight, vt_weight)
        super().__init__({"va": va_dim, "vt": vt_dim}, edges + list(extra_edges or []), terms + list(extra_terms or []), "disjoint")
