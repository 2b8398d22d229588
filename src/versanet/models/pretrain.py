"""The pretraining LightningModule: encoders + a modality embedding graph + contrastive objective.

Batch layout (a dict, as the data modules collate it; N = B or B*K after flattening):
- ``batch[m]``: modality ``m``'s input, ``[B, *input]`` or ``[B, K, *input]`` for K candidates per clip
  (the encoder's ``input_ndim`` tells which);
- ``batch["mask"][m]`` (optional): bool ``[B]`` or ``[B, K]``, False where the modality is missing;
- ``batch["index"]`` (optional): ``[B]`` dataset indices, used to de-duplicate padded DDP evaluation.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from versanet.encoders import Encoder
from versanet.eval.retrieval import first_occurrence, retrieval_metrics
from versanet.graph import Edge, GraphError, ModalityGraph

Embeddings = dict[str, Tensor]


class PretrainModule(LightningModule):
    """Self-supervised pretraining of any modality embedding graph (MMV, VATT and plugin modalities).

    Args:
        encoders: modality name -> backbone; the key is the batch key the encoder reads.
        graph: spaces, heads and loss terms (``FAC``, ``Shared``, ``Disjoint`` or a ``ModalityGraph``).
        optimizer: ``adam`` (MMV, VATT) or ``adamw``.
        lr: peak learning rate, reached after ``warmup_steps`` of linear warm-up, then cosine decay
            to ``lr * final_lr_ratio`` at the last training step.
        sync_batchnorm: convert BatchNorm to SyncBatchNorm when training on several accelerators
            (torch has no CPU SyncBatchNorm; under CPU DDP the statistics stay per process).
    """

    def __init__(
        self,
        encoders: dict[str, Encoder],
        graph: ModalityGraph,
        optimizer: Literal["adam", "adamw"] = "adam",
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 1000,
        final_lr_ratio: float = 0.0,
        sync_batchnorm: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["encoders", "graph"] if not self._from_cli() else None)
        for name, encoder in encoders.items():
            encoder.modality = name
        self.encoders = nn.ModuleDict(encoders)
        self.graph = graph
        dims = {name: enc.out_dim for name, enc in encoders.items()}
        graph.validate(dims)
        self.heads = nn.ModuleDict({e.key: build_head(graph, e, dims) for e in graph.edges})
        self.losses = nn.ModuleDict({t.name: t.loss for t in graph.terms})
        self._eval_outputs: dict[str, list[dict[str, Tensor]]] = {}
        self.retrieval_results: list[dict[str, Any]] = []  # the last eval epoch's, for reports

    @staticmethod
    def _from_cli() -> bool:
        """True when LightningCLI instantiates us: it supplies the config dict as hyperparameters."""
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

        return _given_hyperparameters.get() is not None

    # ------------------------------------------------------------------ forward
    def encode(self, modality: str, x: Tensor) -> Tensor:
        """Backbone features ``[N, d_m]``; a ``[B, K, *input]`` input is flattened clip-major to ``N = B*K``."""
        encoder = self.encoders[modality]
        if x.dim() == encoder.input_ndim + 2:
            x = x.flatten(0, 1)
        elif x.dim() != encoder.input_ndim + 1:
            raise ValueError(
                f"{modality} input has shape {tuple(x.shape)}; {type(encoder).__name__} expects "
                f"[B, *input] or [B, K, *input] with {encoder.input_ndim} input dims"
            )
        return encoder(x)

    def forward(self, batch: dict[str, Any]) -> Embeddings:
        """Every node the batch's modalities reach: ``{"video": [B, d_v], "video@va": [B, 512], ...}``.

        Backbone features are keyed by the modality name, joint-space embeddings by ``modality@space``.
        Modalities absent from the batch (or from the graph) are skipped.
        """
        out: Embeddings = {m: self.encode(m, batch[m]) for m in self.graph.modalities if m in batch}
        for edge in self.graph.ordered_edges():
            source = out.get(edge.source)
            if source is not None:
                out[edge.target] = self.heads[edge.key](source)
        return out

    # ------------------------------------------------------------------ loss
    def _batch_size(self, batch: dict[str, Any]) -> int:
        """Clips in the batch (an anchor modality has one input per clip; candidates may have K)."""
        if "index" in batch:
            return len(batch["index"])
        return batch[self.graph.terms[0].a].shape[0]

    @staticmethod
    def _masks(batch: dict[str, Any], modality: str, batch_size: int, device: torch.device) -> Tensor | None:
        mask = batch.get("mask", {}).get(modality)
        return None if mask is None else mask.to(device).bool().reshape(batch_size, -1)

    def objective(self, batch: dict[str, Any], emb: Embeddings) -> dict[str, Tensor]:
        """Each term's loss and their weighted mean ``"loss" = sum_w w*L / sum_w w``."""
        losses: dict[str, Tensor] = {}
        total, weights = 0.0, 0.0
        for term in self.graph.terms:
            a, b = emb[f"{term.a}@{term.space}"], emb[f"{term.b}@{term.space}"]
            batch_size = a.shape[0]
            if batch_size != batch[term.a].shape[0]:
                raise ValueError(f"loss term {term.name}: the anchor {term.a} must have one embedding per clip")
            a_mask = self._masks(batch, term.a, batch_size, a.device)
            if a_mask is not None:
                a_mask = a_mask.any(dim=1)
            b_mask = self._masks(batch, term.b, batch_size, a.device)
            losses[term.name] = self.losses[term.name](a, b, a_mask, b_mask)
            total = total + term.weight * losses[term.name]
            weights += term.weight
        losses["loss"] = total / weights
        return losses

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        losses = self.objective(batch, self(batch))
        batch_size = self._batch_size(batch)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=False, batch_size=batch_size)
        self.log("loss", losses["loss"], prog_bar=True, logger=False, batch_size=batch_size)
        for term in self.graph.terms:
            if isinstance(getattr(term.loss, "log_inv_tau", None), nn.Parameter):
                self.log(f"train/temperature_{term.name}", term.loss.temperature, batch_size=batch_size)
        return losses["loss"]

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        emb = self(batch)
        losses = self.objective(batch, emb)
        batch_size = self._batch_size(batch)
        self.log(f"{stage}/loss", losses["loss"], batch_size=batch_size, sync_dist=True, prog_bar=stage == "val")
        index = batch.get("index", torch.arange(batch_size, device=self.device))
        for term in self.graph.terms:
            a, b = emb[f"{term.a}@{term.space}"], emb[f"{term.b}@{term.space}"]
            k = b.shape[0] // batch_size
            a_mask = self._masks(batch, term.a, batch_size, a.device)
            b_mask = self._masks(batch, term.b, batch_size, a.device)
            valid = torch.ones(batch_size, dtype=torch.bool, device=a.device)
            valid &= a_mask.any(1) if a_mask is not None else valid
            valid &= b_mask[:, 0] if b_mask is not None else valid
            # the first candidate is the query/target (the caption nearest the clip)
            self._eval_outputs.setdefault(term.name, []).append(
                {"a": a.detach().float(), "b": b.detach().float().reshape(batch_size, k, -1)[:, 0], "valid": valid, "index": index}
            )

    def _eval_epoch_end(self, stage: str) -> None:
        """Retrieval in both directions for every loss term, over the whole (de-duplicated) eval set."""
        results: list[dict[str, Any]] = []
        for term in self.graph.terms:
            parts = self._eval_outputs.pop(term.name, [])
            if not parts:
                continue
            merged = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
            if self.trainer.world_size > 1:
                merged = {key: self.all_gather(v).flatten(0, 1) for key, v in merged.items()}
            keep = first_occurrence(merged["index"]) & merged["valid"]
            a = nn.functional.normalize(merged["a"][keep], dim=-1)
            b = nn.functional.normalize(merged["b"][keep], dim=-1)
            sim = a @ b.T
            for query, gallery, s in ((term.a, term.b, sim), (term.b, term.a, sim.T)):
                results.append({"query": query, "gallery": gallery, "space": term.space, "n": int(keep.sum()), **retrieval_metrics(s)})
        self._eval_outputs.clear()
        if results:
            self.retrieval_results = results
            self.log_dict(
                {f"{stage}/{r['query']}_to_{r['gallery']}@{r['space']}/{k}": r[k] for r in results for k in ("R@1", "R@5", "R@10", "MedR", "MeanR")},
                rank_zero_only=True,
            )

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    # ------------------------------------------------------------------ setup and optimisation
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        specs = datamodule.modality_specs() if hasattr(datamodule, "modality_specs") else {}
        missing = [m for m in self.graph.modalities if specs and m not in specs]
        if missing:
            raise ValueError(
                f"the graph uses {', '.join(missing)} but the data module provides only {', '.join(specs)}; "
                "add a transform for each modality to data.init_args.transforms"
            )
        for modality, spec in specs.items():
            if modality in self.encoders:
                self.encoders[modality].check_input_spec(spec)
        if self.hparams.get("sync_batchnorm", True) and self._trainer is not None and self.trainer.world_size > 1:
            if self.trainer.strategy.root_device.type == "cpu":
                rank_zero_warn("sync_batchnorm: torch has no CPU SyncBatchNorm; BN statistics stay per process on CPU DDP")
            else:
                nn.SyncBatchNorm.convert_sync_batchnorm(self)

    def on_fit_start(self) -> None:
        dims = {m: enc.out_dim for m, enc in self.encoders.items()}
        rank_zero_info(self.graph.summary(dims, self.heads))
        params = {m: enc.num_parameters() for m, enc in self.encoders.items()}
        rank_zero_info("  encoders: " + ", ".join(f"{m}={type(self.encoders[m]).__name__} ({n:,} params)" for m, n in params.items()))

    def configure_optimizers(self) -> dict[str, Any]:
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[self.hparams.optimizer]
        optimizer = opt_cls(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(self.hparams.warmup_steps, total - 1)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1), eta_min=self.hparams.lr * self.hparams.final_lr_ratio)
        if warmup > 0:
            ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warmup, total_iters=warmup)
            scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])
        else:
            scheduler = cosine
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def build_head(graph: ModalityGraph, edge: Edge, dims: dict[str, int]) -> nn.Module:
    """Call the edge's head factory with ``(in_dim, out_dim)`` and check the head declares those widths."""
    in_dim, out_dim = graph.input_dim(edge, dims), graph.spaces[edge.space]
    try:
        head = edge.head(in_dim, out_dim)
    except TypeError as err:
        raise GraphError(f"head of edge {edge.source} -> {edge.space}: cannot build it with (in_dim={in_dim}, out_dim={out_dim}): {err}. "
                         "Don't set in_dim/out_dim in the head's init_args: the graph supplies them.") from err
    got = (getattr(head, "in_dim", in_dim), getattr(head, "out_dim", out_dim))
    if got != (in_dim, out_dim):
        raise GraphError(f"head {type(head).__name__} of edge {edge.source} -> {edge.space} maps {got[0]} -> {got[1]}, "
                         f"but the edge needs {in_dim} -> {out_dim} (the source's width -> the width of space {edge.space!r})")
    return head
