"""The pretraining LightningModule: encoders (and shared trunks) + a modality embedding graph + its objective.

Batch layout (a dict, as the data modules collate it; N = B or B*K after flattening):
- ``batch[m]``: modality ``m``'s input, ``[B, *input]`` or ``[B, K, *input]`` for K candidates per clip
  (the encoder's ``input_ndim`` tells which);
- ``batch["mask"][m]`` (optional): bool ``[B]`` or ``[B, K]``, False where the modality is missing;
- ``batch["index"]`` (optional): ``[B]`` dataset indices, used to de-duplicate padded DDP evaluation.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from versanet.encoders import Encoder
from versanet.eval.retrieval import first_occurrence, fused_similarity, retrieval_metrics
from versanet.graph import Edge, GraphError, ModalityGraph
from versanet.models.accumulation import RngState, concat_embeddings, keep_running_stats, split_batch
from versanet.objective import TermInputs, combine
from versanet.schedules import warmup_cosine
from versanet.seeding import derived_seed

Embeddings = dict[str, Tensor]


class PretrainModule(LightningModule):
    """Self-supervised pretraining of any modality embedding graph (MMV, VATT, MCN and plugin modalities).

    Args:
        encoders: modality name -> backbone; the key is the batch key the encoder reads.
        graph: spaces, heads, objective terms and validation retrievals (``FAC``, ``Shared``,
            ``Disjoint`` or a ``ModalityGraph``).
        trunks: name -> a module several encoders share (VATT-MA's one Transformer). An encoder
            whose config says ``trunk: NAME`` runs it; it is built once, so it counts once in the
            parameters, the optimiser and the checkpoint (under ``trunks.NAME``).
        optimizer: ``adam`` (MMV, VATT, MCN) or ``adamw``.
        lr: peak learning rate, reached after ``warmup_steps`` of linear warm-up, then cosine decay
            to ``lr * final_lr_ratio`` at the last training step.
        sync_batchnorm: convert BatchNorm to SyncBatchNorm when training on several accelerators
            (torch has no CPU SyncBatchNorm; under CPU DDP the statistics stay per process).
        negatives_accumulation: split each training batch into this many micro-batches, run the
            networks one micro-batch at a time and the objective once on the whole batch (GradCache,
            :mod:`versanet.models.accumulation`): the negative pool is ``world_size * batch_size`` with
            the activation memory of ``batch_size / negatives_accumulation`` clips, for one extra
            forward per micro-batch. 1 (default): one pass over the batch.
    """

    def __init__(
        self,
        encoders: dict[str, Encoder],
        graph: ModalityGraph,
        trunks: dict[str, nn.Module] | None = None,
        optimizer: Literal["adam", "adamw"] = "adam",
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 1000,
        final_lr_ratio: float = 0.0,
        sync_batchnorm: bool = True,
        negatives_accumulation: int = 1,
    ) -> None:
        super().__init__()
        if negatives_accumulation < 1:
            raise ValueError(f"negatives_accumulation must be >= 1 (micro-batches per training batch), got {negatives_accumulation}")
        self.negatives_accumulation = int(negatives_accumulation)
        self.save_hyperparameters(ignore=["encoders", "graph", "trunks"] if not self._from_cli() else None)
        # trunks first: a shared tensor's checkpoint key is its first name, trunks.<name>.*
        self.trunks = nn.ModuleDict(trunks or {})
        encoders = drop_unread_encoders(encoders, graph)
        for name, encoder in encoders.items():
            encoder.modality = name
        attach_trunks(encoders, self.trunks)
        self.encoders = nn.ModuleDict(encoders)
        self.graph = graph
        dims = {name: enc.out_dim for name, enc in encoders.items()}
        graph.validate(dims)
        self.heads = nn.ModuleDict({e.key: build_head(graph, e, dims) for e in graph.edges})
        for term in graph.terms:
            term.build(graph, dims)
        self.terms = nn.ModuleDict({t.name: t for t in graph.terms})
        self.transforms: dict[str, Any] = {}  # the data transforms, restored from a checkpoint (versanet.checkpoint)
        self.clip: dict[str, Any] = {}  # the training clip geometry {num_frames, fps, audio_rate}, restored likewise
        self._eval_outputs: list[dict[str, Tensor]] = []
        self.retrieval_results: list[dict[str, Any]] = []  # the last eval epoch's, for reports
        self.register_state_dict_post_hook(_drop_aliases)
        self.register_load_state_dict_pre_hook(_restore_aliases)

    @staticmethod
    def _from_cli() -> bool:
        """True when LightningCLI instantiates us: it supplies the config dict as hyperparameters."""
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

        return _given_hyperparameters.get() is not None

    # ------------------------------------------------------------------ forward
    def encode(self, modality: str, x: Tensor) -> Tensor:
        """Backbone features ``[N, d_m]``; a ``[B, K, *input]`` input is flattened clip-major to ``N = B*K``."""
        return self.encoders[modality](self._flat_input(modality, x))

    def encode_tokens(self, modality: str, x: Tensor):  # noqa: ANN201 - versanet.encoders.Tokens
        """Token-level backbone output (:class:`~versanet.encoders.Tokens`); candidates flattened as in :meth:`encode`."""
        return self.encoders[modality].forward_tokens(self._flat_input(modality, x))

    def _flat_input(self, modality: str, x: Tensor) -> Tensor:
        encoder = self.encoders[modality]
        if x.dim() == encoder.input_ndim + 2:
            return x.flatten(0, 1)
        if x.dim() != encoder.input_ndim + 1:
            raise ValueError(
                f"{modality} input has shape {tuple(x.shape)}; {type(encoder).__name__} expects "
                f"[B, *input] or [B, K, *input] with {encoder.input_ndim} input dims"
            )
        return x

    def forward(self, batch: dict[str, Any]) -> Embeddings:
        """Every node the batch's modalities reach: ``{"video": [B, d_v], "video@va": [B, 512], ...}``.

        Backbone features are keyed by the modality name, joint-space embeddings by ``modality@space``.
        Modalities absent from the batch (or from the graph) are skipped.
        """
        out: Embeddings = {m: self.encode(m, batch[m]) for m in self.encoders if m in batch}
        return self.embed(out)

    def embed(self, features: Embeddings) -> Embeddings:
        """Backbone features by modality -> the same dict plus every joint-space node the graph's heads reach."""
        out = dict(features)
        for edge in self.graph.ordered_edges():
            source = out.get(edge.source)
            if source is not None:
                out[edge.target] = self.heads[edge.key](source)
        return out

    # ------------------------------------------------------------------ objective
    def batch_size_of(self, batch: dict[str, Any]) -> int:
        """Clips in the batch (every modality's tensor starts with the clip axis)."""
        if "index" in batch:
            return len(batch["index"])
        for m in self.encoders:
            if m in batch:
                return batch[m].shape[0]
        raise ValueError(f"the batch has none of the encoders' modalities ({', '.join(self.encoders)}); keys: {', '.join(batch)}")

    def term_inputs(self, batch: dict[str, Any], emb: Embeddings) -> TermInputs:
        step = int(getattr(self._trainer, "global_step", 0))  # 0 outside a trainer
        return TermInputs(emb, batch, self.batch_size_of(batch), step, self.training)

    def objective(self, batch: dict[str, Any], emb: Embeddings) -> dict[str, Tensor]:
        """Each term's loss and their combination ``"loss"`` (the graph's ``reduction``)."""
        inputs = self.term_inputs(batch, emb)
        losses = {name: term(inputs) for name, term in self.terms.items()}
        weights = {name: term.weight for name, term in self.terms.items()}
        return {**losses, "loss": combine(losses, weights, self.graph.reduction)}

    @torch.no_grad()
    def update_terms(self, batch: dict[str, Any], emb: Embeddings) -> None:
        """Let stateful terms (queues, centroids) take this step's detached embeddings; once per optimizer step."""
        inputs = self.term_inputs(batch, {k: v.detach() for k, v in emb.items()})
        for term in self.terms.values():
            term.update(inputs)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        if self.negatives_accumulation > 1:
            emb, losses, loss = self._accumulated_step(batch, batch_idx)
        else:
            emb = self(batch)
            losses = self.objective(batch, emb)
            loss = losses["loss"]
        self.update_terms(batch, emb)
        batch_size = self.batch_size_of(batch)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=False, batch_size=batch_size)
        self.log("loss", losses["loss"], prog_bar=True, logger=False, batch_size=batch_size)
        for name, term in self.terms.items():
            for key, value in term.metrics().items():
                self.log(f"train/{name}/{key}", value, batch_size=batch_size)
        return loss

    # ------------------------------------------------------------------ negatives accumulation (GradCache)
    def _accumulated_step(self, batch: dict[str, Any], batch_idx: int) -> tuple[Embeddings, dict[str, Tensor], Tensor]:
        """The objective on the whole batch, the networks one micro-batch at a time (:mod:`versanet.models.accumulation`).

        Returns the whole batch's (detached) embeddings, the objective's losses, and the tensor Lightning
        back-propagates: the objective (for the terms' own parameters, e.g. a learned temperature) plus the
        last micro-batch's re-run against its cached gradient, with the value of ``losses["loss"]``.

        Micro-batches 1..N-1 are back-propagated here, inside the training step: under DDP that is inside
        the wrapped forward, before the reducer expects gradients, so they accumulate locally, and the one
        backward Lightning runs afterwards reduces the sum across ranks (DDP's ``no_sync`` accumulation).
        That is also why :meth:`optimizer_zero_grad` leaves the gradients alone on this path: they are zeroed
        before the step (:meth:`on_train_batch_start`).
        """
        trainer = self.trainer
        self._check_units_for_accumulation()
        micro = split_batch(batch, self.negatives_accumulation, self.batch_size_of(batch))
        states, parts = [], []
        with torch.no_grad(), keep_running_stats(self):
            for chunk in micro:
                states.append(RngState.capture(self.device))
                parts.append(self(self._inputs_to_device(chunk)))
        emb = {k: v.requires_grad_() for k, v in concat_embeddings(parts).items()}
        losses = self.objective(batch, emb)
        keys = list(emb)
        cached = torch.autograd.grad(losses["loss"], [emb[k] for k in keys], retain_graph=True, allow_unused=True)
        scaler = getattr(trainer.precision_plugin, "scaler", None)  # fp16: scale as Lightning's backward does
        offsets = dict.fromkeys(keys, 0)
        for i, (chunk, state) in enumerate(zip(micro, states)):
            state.restore()
            out = self(self._inputs_to_device(chunk))
            pairs = []
            for key, grad in zip(keys, cached):
                n = out[key].shape[0]
                if grad is not None:
                    pairs.append((out[key], grad[offsets[key] : offsets[key] + n]))
                offsets[key] += n
            if i < len(micro) - 1:
                grads = [scaler.scale(g) if scaler is not None else g for _, g in pairs]
                torch.autograd.backward([o for o, _ in pairs], grads)
                continue
            surrogate = sum((o * g).sum() for o, g in pairs)  # its gradient w.r.t. o is g; its value is dropped
            loss = losses["loss"] + (surrogate - surrogate.detach())
        return {k: v.detach() for k, v in emb.items()}, losses, loss

    def _check_units_for_accumulation(self) -> None:
        """Under FSDP, the micro-batches back-propagate while the root unit's forward (the training step) is still open,
        which FSDP allows only for units of their own: every encoder and head must be one."""
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        if not isinstance(self.trainer.strategy.model, FSDP):
            return
        loose = [f"encoders.{m}" for m, e in self.encoders.items() if not isinstance(e, FSDP)]
        loose += [f"heads.{k}" for k, h in self.heads.items() if not isinstance(h, FSDP)]
        if loose:
            raise RuntimeError(
                f"negatives_accumulation under FSDP needs every encoder and head in an FSDP unit of its own; not wrapped: "
                f"{', '.join(loose)}. Add versanet.encoders.Encoder and versanet.heads.Head to the strategy's auto_wrap_policy."
            )

    def _inputs_to_device(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """A micro-batch with its modality inputs on the module's device (they stay on the host, :meth:`transfer_batch_to_device`)."""
        return {k: v.to(self.device, non_blocking=True) if k in self.encoders and isinstance(v, Tensor) else v for k, v in chunk.items()}

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """With ``negatives_accumulation``, a training batch's modality inputs stay on the host (pinned by the loader)
        and move one micro-batch at a time: only the embeddings of the whole batch live on the device."""
        if self.negatives_accumulation > 1 and self._trainer is not None and self.trainer.training and isinstance(batch, dict):
            inputs = {k: v for k, v in batch.items() if k in self.encoders}
            rest = super().transfer_batch_to_device({k: v for k, v in batch.items() if k not in inputs}, device, dataloader_idx)
            return {**rest, **inputs}
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def seed_batch(self, batch_idx: int) -> None:
        """Seed torch's RNG (every device) from ``(seed_everything's seed, epoch, batch, rank)`` before a training batch.

        Dropout and DropToken draw from it; Lightning does not checkpoint RNG states, so without this a resumed
        run would draw differently from the uninterrupted one. Seeded per batch, the model's randomness is a
        function of the batch's position, as the data's is of the sample's (``versanet.data.loaders``).
        """
        base = int(os.environ.get("PL_GLOBAL_SEED", "0"))
        torch.manual_seed(derived_seed(base, self.current_epoch, batch_idx, self.global_rank))

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: torch.optim.Optimizer) -> None:
        """Lightning zeroes gradients between the training step and its backward; with ``negatives_accumulation`` the
        step has already back-propagated its first micro-batches by then, so :meth:`on_train_batch_start` does it."""
        if self.negatives_accumulation == 1:
            optimizer.zero_grad()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Seed torch's RNG for this batch (see :meth:`seed_batch`); with ``negatives_accumulation``, zero the gradients
        at the first batch of each optimizer step, before the training step (under FSDP, before the root unit's forward,
        which is where FSDP frees its flat gradients)."""
        self.seed_batch(batch_idx)
        if self.negatives_accumulation > 1 and batch_idx % self.trainer.accumulate_grad_batches == 0:
            for optimizer in self.trainer.optimizers:
                optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        emb = self(batch)
        losses = self.objective(batch, emb)
        batch_size = self.batch_size_of(batch)
        self.log(f"{stage}/loss", losses["loss"], batch_size=batch_size, sync_dist=True, prog_bar=stage == "val")
        for name in self.terms:
            self.log(f"{stage}/{name}", losses[name], batch_size=batch_size, sync_dist=True)
        inputs = self.term_inputs(batch, emb)
        part: dict[str, Tensor] = {"index": batch.get("index", torch.arange(batch_size, device=self.device))}
        for r in self.graph.retrieval:
            for m in [r.query, *r.gallery]:
                node = f"{m}@{r.space}"
                if node in part or node not in emb:
                    continue
                x = emb[node]
                # with K candidates per clip (captions) the first, nearest the clip, is the query/target
                part[node] = x.detach().float().reshape(batch_size, x.shape[0] // batch_size, -1)[:, 0]
                mask = inputs.mask(m)
                part[f"present:{m}"] = mask[:, 0] if mask is not None else torch.ones(batch_size, dtype=torch.bool, device=x.device)
        self._eval_outputs.append(part)

    def _eval_epoch_end(self, stage: str) -> None:
        """Every declared retrieval in both directions, over the whole (de-duplicated) eval set."""
        parts, self._eval_outputs = self._eval_outputs, []
        if not parts:
            return
        merged = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
        if self.trainer.world_size > 1:
            merged = {key: self.all_gather(v).flatten(0, 1) for key, v in merged.items()}
        first = first_occurrence(merged["index"])
        results: list[dict[str, Any]] = []
        for r in self.graph.retrieval:
            keep = first & merged[f"present:{r.query}"]
            keep &= torch.stack([merged[f"present:{m}"] for m in r.gallery]).any(0)
            query = {m: merged[f"{r.query}@{r.space}"][keep] for m in r.gallery}
            gallery = {m: merged[f"{m}@{r.space}"][keep] for m in r.gallery}
            sim = fused_similarity(query, gallery, {m: merged[f"present:{m}"][keep] for m in r.gallery}, r.fusion)
            for q, g, s in ((r.query, r.gallery_name, sim), (r.gallery_name, r.query, sim.T)):
                results.append({"query": q, "gallery": g, "space": r.space, "n": int(keep.sum()), **retrieval_metrics(s)})
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

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the data transforms (and what they learned) beside the weights: see :mod:`versanet.checkpoint`."""
        from versanet.checkpoint import FORMAT_VERSION, export_transforms

        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        transforms = getattr(datamodule, "transforms", None) or self.transforms
        checkpoint["versanet"] = {"format_version": FORMAT_VERSION, "transforms": export_transforms(transforms)}
        # the clip geometry the model was trained on (frames, rate): tools that cut new videos into clips read it
        clip = {k: v for k, v in (getattr(datamodule, "clip_kw", None) or {}).items() if k in ("num_frames", "fps", "audio_rate")}
        if clip or self.clip:
            checkpoint["versanet"]["clip"] = clip or dict(self.clip)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from versanet.checkpoint import build_transforms

        stored = checkpoint.get("versanet", {})
        if stored.get("transforms"):
            self.transforms = build_transforms(stored["transforms"])
        self.clip = dict(stored.get("clip") or {})

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

        self._summary = self._describe()  # now: a strategy may wrap (and shard) the modules after setup

    def _describe(self) -> str:
        dims = {m: enc.out_dim for m, enc in self.encoders.items()}
        parts = []
        for m, enc in self.encoders.items():
            shared = f", trunk {enc.shared_trunk!r} shared" if enc.shared_trunk else ""
            parts.append(f"{m}={type(enc).__name__} ({enc.num_parameters():,} params{shared})")
        total = sum(p.numel() for p in self.parameters() if p.requires_grad)
        encoders = "  encoders: " + ", ".join(parts) + f"; total trainable {total:,} (shared tensors once)"
        return self.graph.summary(dims, self.heads) + "\n" + encoders

    def on_fit_start(self) -> None:
        self._attach_wrapped_trunks()
        rank_zero_info(getattr(self, "_summary", None) or self._describe())

    def on_validation_start(self) -> None:
        self._attach_wrapped_trunks()

    def on_test_start(self) -> None:
        self._attach_wrapped_trunks()

    def _attach_wrapped_trunks(self) -> None:
        """Hand a trunk that a strategy wrapped (an FSDP unit now stands in ``trunks``) to the encoders that share it.

        FSDP wraps a module where it first meets it, under ``trunks``; the encoders would still call the bare module,
        whose parameters FSDP now shards. Refuses the one layout FSDP cannot run: a shared trunk with parameters outside
        any FSDP unit of its own while its encoders are units (the first encoder's unit would take them).
        """
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        for encoder in self.encoders.values():
            name = encoder.shared_trunk
            if name is None:
                continue
            trunk = self.trunks[name]
            if encoder.trunk is not trunk:
                encoder.attach_trunk(trunk)
            if isinstance(encoder, FSDP) and not isinstance(trunk, FSDP) and _params_outside_units(trunk):
                raise RuntimeError(
                    f"FSDP: trunk {name!r} is shared by several encoders that are FSDP units, but some of its parameters "
                    f"({', '.join(_params_outside_units(trunk)[:3])}) are in no unit of the trunk's own, so the first encoder's "
                    "unit would take them. Add the trunk's class to the strategy's auto_wrap_policy."
                )

    def configure_optimizers(self) -> dict[str, Any]:
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[self.hparams.optimizer]
        params = [p for p in self.parameters() if p.requires_grad]  # parameters() lists a shared tensor once
        optimizer = opt_cls(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = warmup_cosine(optimizer, total, self.hparams.warmup_steps, self.hparams.final_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def drop_unread_encoders(encoders: dict[str, Encoder], graph: ModalityGraph) -> dict[str, Encoder]:
    """``encoders`` without those no edge and no objective term reads, with a warning naming them.

    Their parameters would never get a gradient: DDP stops at the first step ("parameters that were not
    used in producing loss"), and they would only cost memory and checkpoint space.
    """
    read = set(graph.modalities) | {node.split("@", 1)[0] for term in graph.terms for node in term.reads()}
    unread = [m for m in encoders if m not in read]
    if unread:
        rank_zero_warn(f"graph {graph.name!r} reads no {', '.join(unread)}: encoder(s) {', '.join(unread)} dropped "
                       "(no edge or objective term uses them; their weights would never train)")
    return {m: e for m, e in encoders.items() if m in read}


def attach_trunks(encoders: dict[str, Encoder], trunks: nn.ModuleDict) -> None:
    """Hand each named trunk to the encoders whose config names it; unknown or unused names are config errors."""
    used = set()
    for modality, encoder in encoders.items():
        name = encoder.shared_trunk
        if name is None:
            continue
        if name not in trunks:
            known = ", ".join(trunks) or "none"
            raise GraphError(f"encoder {modality} ({type(encoder).__name__}) names trunk {name!r}, but model.trunks has {known}")
        encoder.attach_trunk(trunks[name])
        used.add(name)
    unused = [name for name in trunks if name not in used]
    if unused:
        raise GraphError(f"trunk(s) {', '.join(unused)} are built but no encoder names them (set `trunk: NAME` in an encoder)")


# name segments of the modules FSDP and activation checkpointing wrap around a module; state dicts drop them
_WRAPPER_SEGMENTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


def _state_dict_name(name: str) -> str:
    """A parameter's name as state dicts spell it: without wrapper segments (``encoders._fsdp_wrapped_module.x`` -> ``encoders.x``)."""
    for segment in _WRAPPER_SEGMENTS:
        name = name.replace(segment, "")
    return name


def _params_outside_units(module: nn.Module) -> list[str]:
    """Names of ``module``'s parameters that no FSDP unit inside it manages (they go to an enclosing unit)."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    names, stack = [], [("", module)]
    while stack:
        prefix, sub = stack.pop()
        names += [prefix + n for n, _ in sub.named_parameters(recurse=False)]
        stack += [(f"{prefix}{n}.", child) for n, child in sub.named_children() if not isinstance(child, FSDP)]
    return names


def _aliases(module: nn.Module) -> dict[str, str]:
    """State-dict names that hold a tensor already listed under an earlier name: ``{alias: first name}``."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    named = list(module.named_parameters(remove_duplicate=False)) + list(module.named_buffers(remove_duplicate=False))
    for name, tensor in ((_state_dict_name(n), t) for n, t in named):
        if id(tensor) in first:
            aliases[name] = first[id(tensor)]
        else:
            first[id(tensor)] = name
    return aliases


def _drop_aliases(module: nn.Module, state_dict: dict[str, Tensor], prefix: str, local_metadata: Any) -> None:
    """State-dict hook: a shared trunk is saved once, under its first name (``trunks.<name>.*``)."""
    for alias in _aliases(module):
        state_dict.pop(prefix + alias, None)


def _restore_aliases(module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:
    """Load pre-hook: fill each alias of a shared tensor from its first name, so strict loading finds every key."""
    for alias, name in _aliases(module).items():
        if prefix + alias not in state_dict and prefix + name in state_dict:
            state_dict[prefix + alias] = state_dict[prefix + name]


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
