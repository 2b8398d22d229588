"""Zero-shot text-to-video retrieval (MSR-VTT 1k-A, YouCook2; the toy world's held-out clips): ``versanet test`` only.

Similarity is measured in the joint space the pretraining graph defines for the two modalities
(the space of the loss term that contrasts them: ``S_vat`` for FAC's video and text), between
L2-normalised embeddings. A video with V clips (``[B, V, *input]``, V evenly spaced clips from the
data module) is embedded per clip and the V embeddings are averaged before normalising (MMV: 4
clips). The text query is candidate ``text_candidate`` of the sample's captions (``[B, K, L]``; the
benchmark data gives K = 1).

``gallery: [video, audio]`` scores a text against video and audio together: by default the
similarity is the mean over the gallery modalities of the cosine similarity in the space where each
meets the text; ``fusion: sum_dot`` is MCN's own evaluation, the sum of raw dot products
``text @ (video + audio)^T``. A sample whose audio is missing is scored by the modalities it has. FAC has no audio-text edge; audio is then taken ``S_va -> S_vat``
through the video's fine-to-coarse head (MMV's evaluation trick, ``borrow_heads``).

Metrics (both directions): R@1, R@5, R@10 (fractions), median and mean rank (1-indexed), logged as
``test/text_to_video/R@1`` ... and ``test/video_to_text/...`` (``video+audio`` for a joint gallery).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor

from versanet.downstream.common import Init, embed, encode_views, load_pretrained, shared_space
from versanet.eval.retrieval import Fusion, first_occurrence, fused_similarity, retrieval_metrics


class ZeroShotRetrievalModule(LightningModule):
    """Text <-> video (or video+audio) retrieval in the pretrained joint space; nothing is trained.

    Args:
        checkpoint: pretraining checkpoint (``versanet fit``).
        init: ``pretrained``, or ``random`` for the same network with random weights (a baseline).
        query: the query modality (``text``).
        gallery: gallery modalities; several are fused as MCN does (see the module docstring).
        spaces: modality -> joint space to compare it with the query in (default: the graph's).
        text_candidate: which of K caption candidates is the query.
        borrow_heads: allow another modality's head out of a shared space (FAC audio -> S_vat).
        fusion: how a multi-modality gallery is scored (``mean_cosine`` or MCN's ``sum_dot``, see
            :func:`~versanet.eval.retrieval.fused_similarity`); None: the pretraining graph's declared
            retrieval of the same query and gallery, else ``mean_cosine``.
    """

    zero_shot = True

    def __init__(
        self,
        checkpoint: str,
        init: Init = "pretrained",
        init_seed: int = 0,
        query: str = "text",
        gallery: list[str] = ["video"],  # noqa: B006 - shown as is by --print_config
        spaces: dict[str, str] | None = None,
        text_candidate: int = 0,
        borrow_heads: bool = True,
        fusion: Fusion | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = load_pretrained(checkpoint, init, init_seed)
        for p in self.model.parameters():
            p.requires_grad_(False)
        graph = self.model.graph
        self.spaces = {m: (spaces or {}).get(m) or shared_space(graph, query, m, borrow_heads) for m in gallery}
        declared = [r.fusion for r in graph.retrieval if r.query == query and sorted(r.gallery) == sorted(gallery)]
        self.fusion: Fusion = fusion or (declared[0] if declared else "mean_cosine")
        self._parts: list[dict[str, Tensor]] = []
        self.results: dict[str, float] = {}

    @property
    def gallery_name(self) -> str:
        return "+".join(self.hparams.gallery)

    def on_test_start(self) -> None:
        self.model.eval()
        self._parts = []
        dm = self.trainer.datamodule
        specs = dm.modality_specs() if hasattr(dm, "modality_specs") else {}
        for m in [self.hparams.query, *self.hparams.gallery]:
            if m in specs and m in self.model.encoders:
                self.model.encoders[m].check_input_spec(specs[m])

    def _query(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Query inputs ``[B, *input]`` and validity ``[B]``: candidate ``text_candidate`` of ``[B, K, *input]``
        (view 0 of ``[B, V, K, *input]`` when the data stacked the captions per view)."""
        q = self.hparams.query
        x = batch[q]
        ndim = self.model.encoders[q].input_ndim
        mask = batch.get("mask", {}).get(q)
        b = x.shape[0]
        mask = mask.reshape(b, *x.shape[1 : x.dim() - ndim]) if mask is not None else None
        while x.dim() > ndim + 2:  # per-view copies of the captions: the first view's
            x = x[:, 0]
            mask = mask[:, 0] if mask is not None else None
        valid = torch.ones(b, dtype=torch.bool, device=x.device)
        if x.dim() == ndim + 2:
            k = self.hparams.text_candidate
            x = x[:, k]
            if mask is not None:
                valid = mask[:, k].bool()
        elif mask is not None:
            valid = mask.reshape(b, -1)[:, 0].bool()
        return x, valid

    @torch.no_grad()
    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        q = self.hparams.query
        x, valid = self._query(batch)
        qfeat = self.model.encoders[q](x)
        seen = sum(len(p["valid"]) for p in self._parts)
        index = batch.get("index")
        index = torch.as_tensor(index, device=x.device) if index is not None else torch.arange(seen, seen + len(x), device=x.device)
        part: dict[str, Tensor] = {"valid": valid, "index": index}
        for m, space in self.spaces.items():
            part[f"query@{m}"] = embed(self.model, q, qfeat, space, self.hparams.borrow_heads).float()
            feats = encode_views(self.model.encoders[m], batch[m])  # [B, V, d]
            b, v, _ = feats.shape
            emb = embed(self.model, m, feats.flatten(0, 1), space, self.hparams.borrow_heads).reshape(b, v, -1)
            part[f"gallery@{m}"] = emb.float().mean(1)  # fused_similarity normalises for mean_cosine
            mask = batch.get("mask", {}).get(m)
            part[f"present@{m}"] = mask.reshape(b, -1).any(1) if mask is not None else torch.ones(b, dtype=torch.bool, device=feats.device)
        self._parts.append(part)

    def similarity(self, merged: dict[str, Tensor]) -> Tensor:
        """``[Q, Q]`` query x gallery similarity (mean over gallery modalities present)."""
        return fused_similarity(
            {m: merged[f"query@{m}"] for m in self.spaces}, {m: merged[f"gallery@{m}"] for m in self.spaces},
            {m: merged[f"present@{m}"] for m in self.spaces}, self.fusion,
        )

    def on_test_epoch_end(self) -> None:
        merged = {k: torch.cat([p[k] for p in self._parts]) for k in self._parts[0]}
        self._parts = []
        if self.trainer.world_size > 1:
            merged = {k: self.all_gather(v).flatten(0, 1) for k, v in merged.items()}
        keep = first_occurrence(merged["index"]) & merged["valid"]
        merged = {k: v[keep] for k, v in merged.items()}
        sim = self.similarity(merged)
        q, g = self.hparams.query, self.gallery_name
        results: dict[str, float] = {}
        for name, s in ((f"{q}_to_{g}", sim), (f"{g}_to_{q}", sim.T)):
            for metric, value in retrieval_metrics(s).items():
                results[f"test/{name}/{metric}"] = value
        results["test/num_queries"] = float(sim.shape[0])
        self.results = results
        self.log_dict(results, batch_size=sim.shape[0])
