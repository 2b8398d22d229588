"""Tiny models and a two-process Lightning launcher for the scale tests (negatives accumulation, FSDP).

:func:`run_ranks` starts ``world`` processes on this machine as an external launcher would (``torchrun``
sets ``LOCAL_RANK``; Lightning then joins the processes instead of starting its own), each builds a model
with :func:`build_model` and fits it with a real ``Trainer`` (gloo, CPU) under the named strategy;
:class:`Capture` writes what rank 0 saw (gradients after the cross-rank reduction, the loss averaged over
ranks, parameters) to a file the test reads back.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.multiprocessing as mp
from lightning.pytorch import Callback, Trainer
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from distributed_helpers import free_port
from versanet.encoders import Encoder, Tokens
from versanet.graph import Edge, LossTerm, ModalityGraph
from versanet.losses import MILNCELoss, NCELoss
from versanet.models import PretrainModule
from versanet.models.accumulation import concat_embeddings, split_batch

D_IN, K = 6, 3  # input width of every tiny modality; captions per clip


class MLPEncoder(Encoder):
    """``[N, D_IN] -> [N, out_dim]``: Linear, optional BatchNorm, Tanh, optional dropout, Linear."""

    input_ndim = 1

    def __init__(self, out_dim: int = 7, modality: str = "x", dropout: float = 0.0, norm: bool = False) -> None:
        super().__init__(modality, out_dim)
        layers: list[nn.Module] = [nn.Linear(D_IN, 8)]
        layers += [nn.BatchNorm1d(8)] if norm else []
        layers += [nn.Tanh(), nn.Dropout(dropout), nn.Linear(8, out_dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def forward_tokens(self, x: Tensor) -> Tokens:
        pooled = self.net(x)
        return Tokens(pooled[:, None], torch.ones(len(x), 1, dtype=torch.bool), pooled)

    def example_input(self, batch_size: int) -> Tensor:
        return torch.randn(batch_size, D_IN)


class TinyBlock(nn.Module):
    """A residual MLP block: the unit FSDP wraps in the tests."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.tanh(self.fc(x))


class BlockTrunk(nn.Module):
    """``[N, L, width]`` through two :class:`TinyBlock` s: a trunk several encoders share."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([TinyBlock(width), TinyBlock(width)])

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class TrunkEncoder(Encoder):
    """``[N, D_IN] -> [N, 8]``: a per-modality linear tokeniser into 2 tokens, then a trunk (shared or its own)."""

    input_ndim = 1
    shares_trunk = True

    def __init__(self, trunk: str | None = None, modality: str = "x") -> None:
        super().__init__(modality, 8)
        self.tokenise = nn.Linear(D_IN, 16)
        self.shared_trunk = trunk
        self.trunk = None if trunk else BlockTrunk(8)

    def forward_tokens(self, x: Tensor) -> Tokens:
        h = self.trunk(self.tokenise(x).view(len(x), 2, 8))
        return Tokens(h, torch.ones(h.shape[:2], dtype=torch.bool), h.mean(1))

    def example_input(self, batch_size: int) -> Tensor:
        return torch.randn(batch_size, D_IN)


def nce_graph() -> ModalityGraph:
    """NCE(video, audio) in one space, learned temperature."""
    return ModalityGraph({"va": 5}, [Edge("video", "va"), Edge("audio", "va")], [LossTerm("va", "video", "audio", NCELoss(learnable_temperature=True))])


def milnce_graph() -> ModalityGraph:
    """FAC-shaped: NCE(video, audio) in va and MIL-NCE(video, K masked captions) in vat (video reaches vat through va)."""
    edges = [Edge("video", "va"), Edge("video@va", "vat"), Edge("audio", "va"), Edge("text", "vat")]
    terms = [LossTerm("va", "video", "audio", NCELoss(learnable_temperature=True)), LossTerm("vat", "video", "text", MILNCELoss(learnable_temperature=True))]
    return ModalityGraph({"va": 5, "vat": 4}, edges, terms)


def mcn_graph() -> ModalityGraph:
    """MCN's objective at toy size: MMS for text-video, audio-text, audio-video; online k-means clustering over a queue
    (re-fit every step); reconstruction of the backbone features from the joint space; gated heads; summed."""
    from versanet.heads.gated import GatedEmbeddingUnit, GatedLinearHead
    from versanet.losses import MaskedMarginSoftmax
    from versanet.losses.clustering import ClusteringTerm
    from versanet.losses.reconstruction import ReconstructionTerm

    edges = [Edge("video", "joint", GatedEmbeddingUnit), Edge("audio", "joint", GatedLinearHead), Edge("text", "joint", GatedEmbeddingUnit)]
    terms = [LossTerm("joint", a, b, MaskedMarginSoftmax()) for a, b in (("text", "video"), ("audio", "text"), ("audio", "video"))]
    terms += [ClusteringTerm("joint", num_clusters=3, queue_size=8, refit_every=1, seed=3), ReconstructionTerm("joint", weight=50.0)]
    return ModalityGraph({"joint": 6}, edges, terms, name="mcn", reduction="sum")


GRAPHS = {"nce": nce_graph, "milnce_masks": milnce_graph, "mcn": mcn_graph}
#: captions per clip each graph's batch holds (MCN: one caption, the anchor of its text terms)
CAPTIONS = {"mcn": 1}


def build_model(
    graph: str = "nce", accumulation: int = 1, dropout: float = 0.0, norm: bool = False, shared_trunk: bool = False, vatt_ma: bool = False, **kwargs: Any,
) -> PretrainModule:
    """A seeded tiny model: video, audio (and text) encoders, the named graph, Adam. ``vatt_ma``: a tiny VATT-MA
    (VATT's video and audio towers around one shared ``VATTTrunk``, NCE; inputs from :func:`vatt_batch`)."""
    torch.manual_seed(0)
    kwargs.setdefault("warmup_steps", 0)
    if vatt_ma:
        from versanet.encoders.vatt import VATTAudio, VATTTrunk, VATTVideo

        common = {"size": "tiny", "trunk": "shared", "dropout": 0.0, "pre_projection": True, "post_projection": 8}
        towers: dict[str, Encoder] = {"video": VATTVideo(patch_size=(2, 4, 4), max_buckets=(1, 2, 2), **common), "audio": VATTAudio(patch_size=8, max_buckets=4, **common)}
        return PretrainModule(towers, nce_graph(), trunks={"shared": VATTTrunk("tiny", dropout=0.0)}, negatives_accumulation=accumulation, **kwargs)
    if shared_trunk:
        encoders: dict[str, Encoder] = {m: TrunkEncoder(trunk="shared") for m in ("video", "audio")}
        return PretrainModule(encoders, nce_graph(), trunks={"shared": BlockTrunk(8)}, negatives_accumulation=accumulation, **kwargs)
    graph_ = GRAPHS[graph]()
    encoders = {m: MLPEncoder(dropout=dropout, norm=norm) for m in graph_.modalities}
    return PretrainModule(encoders, graph_, negatives_accumulation=accumulation, **kwargs)


def global_batch(n: int = 8, seed: int = 1, k: int = K) -> dict[str, Any]:
    """``n`` clips: video/audio ``[n, D_IN]``, text ``[n, k, D_IN]``; some captions, one clip's text and one clip's audio missing."""
    g = torch.Generator().manual_seed(seed)
    text_mask = torch.rand(n, k, generator=g) > 0.3
    text_mask[:, 0] |= torch.arange(n) % 3 != 1
    text_mask[1] = False
    audio_mask = torch.ones(n, 1, dtype=torch.bool)
    audio_mask[n - 3] = False
    return {
        "video": torch.randn(n, D_IN, generator=g), "audio": torch.randn(n, D_IN, generator=g), "text": torch.randn(n, k, D_IN, generator=g),
        "mask": {"text": text_mask, "audio": audio_mask}, "index": torch.arange(n),
    }


def vatt_batch(n: int = 8, seed: int = 1) -> dict[str, Any]:
    """``n`` clips for :func:`build_model` ``(vatt_ma=True)``: video ``[n, 3, 2, 8, 8]`` in [-1, 1], waveforms ``[n, 1, 32]``."""
    g = torch.Generator().manual_seed(seed)
    return {"video": torch.rand(n, 3, 2, 8, 8, generator=g) * 2 - 1, "audio": torch.randn(n, 1, 32, generator=g),
            "mask": {"audio": torch.ones(n, 1, dtype=torch.bool)}, "index": torch.arange(n)}


def graph_batch(graph: str, n: int = 8) -> dict[str, Any]:
    """:func:`global_batch` with the captions per clip ``graph`` expects."""
    return global_batch(n, k=CAPTIONS.get(graph, K))


class Samples(Dataset):
    """The clips of a batch dict, one sample each (the default collate puts them back together)."""

    def __init__(self, batch: dict[str, Any]) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return len(self.batch["index"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: ({m: v[i] for m, v in x.items()} if isinstance(x, dict) else x[i]) for k, x in self.batch.items()}


def reference_step(model: PretrainModule, batch: dict[str, Any]) -> tuple[float, dict[str, Tensor]]:
    """One process, the whole batch, one pass: the loss and every parameter's gradient."""
    model.train()
    loss = model.objective(batch, model(batch))["loss"]
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def reference_micro_batches(model: PretrainModule, batch: dict[str, Any], parts: int) -> tuple[float, dict[str, Tensor]]:
    """One process, the micro-batches forwarded in turn WITH a graph (normalised per micro-batch, RNG drawn in order),
    the objective on their concatenation: what negatives accumulation must reproduce without keeping the graphs."""
    model.train()
    emb = concat_embeddings([model(chunk) for chunk in split_batch(batch, parts, len(batch["index"]))])
    loss = model.objective(batch, emb)["loss"]
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def unwrap_name(name: str) -> str:
    """A parameter's name with the wrappers' prefixes removed (``_forward_module.``, ``_fsdp_wrapped_module.``, ``module.``)."""
    for prefix in ("_forward_module.", "module."):
        name = name.removeprefix(prefix)
    return name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")


@contextmanager
def full_parameters(trainer: Trainer, with_grads: bool = False) -> Iterator[list[tuple[str, Tensor]]]:
    """The model's parameters by name, unsharded under FSDP (a collective: every rank enters)."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    model = trainer.strategy.model
    if isinstance(model, FSDP):
        with FSDP.summon_full_params(model, with_grads=with_grads, writeback=False):
            yield [(unwrap_name(n), p) for n, p in model.named_parameters()]
    else:
        yield list(trainer.lightning_module.named_parameters())


class Capture(Callback):
    """Rank 0 saves the first step's reduced gradients, the rank-mean loss and the parameters after the fit to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.grads: dict[str, Tensor] = {}
        self.losses: list[float] = []

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: PretrainModule, optimizer: Any) -> None:
        if not self.grads:
            with full_parameters(trainer, with_grads=True) as named:
                self.grads = {n: p.grad.detach().clone() for n, p in named if p.grad is not None}

    def on_train_batch_end(self, trainer: Trainer, pl_module: PretrainModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"].detach().clone()
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(loss)
            loss /= torch.distributed.get_world_size()
        self.losses.append(loss.item())

    def on_fit_end(self, trainer: Trainer, pl_module: PretrainModule) -> None:
        with full_parameters(trainer) as named:
            params = {n: p.detach().clone() for n, p in named}
        if trainer.global_rank == 0:
            torch.save({"grads": self.grads, "losses": self.losses, "params": params}, self.path)



def make_strategy(name: str, **kwargs: Any) -> Any:
    """``ddp`` or ``fsdp`` (wrapping every :class:`TinyBlock` and, for the tiny encoders, every ``MLPEncoder``)."""
    from lightning.pytorch.strategies import DDPStrategy

    if name == "ddp":
        return DDPStrategy(**kwargs)
    CPUFSDPStrategy = _cpu_fsdp_strategy()  # noqa: N806

    from versanet.heads import LinearHead

    kwargs.setdefault("auto_wrap_policy", {TinyBlock, MLPEncoder, LinearHead})
    return CPUFSDPStrategy(**kwargs)


def _cpu_fsdp_strategy() -> type:
    from lightning.pytorch.strategies import FSDPStrategy
    from lightning.pytorch.strategies.fsdp import _setup_activation_checkpointing
    from torch.distributed.fsdp import FullyShardedDataParallel

    class CPUFSDPStrategy(FSDPStrategy):
        """Lightning's FSDPStrategy on CPU processes (gloo), for tests.

        Lightning refuses ``accelerator="cpu"`` for ``FSDPStrategy`` itself (an exact-type check) and wraps
        with ``device_id=None`` there, which torch's FSDP refuses without an accelerator; torch's FSDP runs
        on CPU when given ``device_id=cpu`` (as torch's own tests do). Everything else is Lightning's.
        """

        def _setup_model(self, model: nn.Module) -> nn.Module:
            model = FullyShardedDataParallel(
                module=model, cpu_offload=self.cpu_offload, mixed_precision=self.mixed_precision_config,
                sharding_strategy=self.sharding_strategy, device_id=torch.device("cpu"), **self.kwargs,
            )
            _setup_activation_checkpointing(model, self._activation_checkpointing_kwargs)
            return model

    return CPUFSDPStrategy


def fit_job(job: dict[str, Any], world: int = 1) -> Trainer:
    """Fit ``build_model(**job["model"])`` on ``global_batch(job["clips"])`` (``clips / world`` per rank and step).

    ``job``: ``strategy`` (``ddp``, ``fsdp`` or ``auto``), ``strategy_kwargs``, ``steps``, ``out`` (where
    :class:`Capture` writes), ``root``, ``save_every`` (sharded/full checkpoints every N steps under ``root``),
    ``ckpt_path`` (resume), ``trainer`` (more Trainer arguments), ``callbacks``.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    model = build_model(**job["model"])
    batch = vatt_batch(job["clips"]) if job["model"].get("vatt_ma") else graph_batch(job["model"].get("graph", "nce"), job["clips"])
    # rank r reads the contiguous rows [r*B, (r+1)*B): the gathered batch is then the batch in its own order (k-means
    # starts from points chosen by position, so the order matters to clustering terms; Lightning's sampler would shuffle)
    per_rank, rank = job["clips"] // world, int(os.environ.get("LOCAL_RANK", 0))
    loader = DataLoader(Samples(batch), batch_size=per_rank, sampler=range(rank * per_rank, (rank + 1) * per_rank))
    callbacks: list[Callback] = [Capture(job["out"]), *job.get("callbacks", [])]
    if job.get("save_every"):
        callbacks.append(ModelCheckpoint(dirpath=job["root"], every_n_train_steps=job["save_every"], save_top_k=-1, filename="{step}"))
    strategy = make_strategy(job["strategy"], **job.get("strategy_kwargs", {})) if job.get("strategy", "auto") != "auto" else "auto"
    trainer = Trainer(
        accelerator="cpu", devices=world, strategy=strategy, max_steps=job.get("steps", 1), logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=bool(job.get("save_every")),
        default_root_dir=job.get("root"), num_sanity_val_steps=0, limit_val_batches=0, callbacks=callbacks, use_distributed_sampler=False,
        **job.get("trainer", {}),
    )
    trainer.fit(model, train_dataloaders=loader, ckpt_path=job.get("ckpt_path"))
    return trainer


def _fit_worker(rank: int, world: int, port: int, job: dict[str, Any]) -> None:
    # what torchrun sets: Lightning then joins these processes instead of launching its own
    os.environ.update({"LOCAL_RANK": str(rank), "NODE_RANK": "0", "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    fit_job(job, world)


def run_ranks(world: int, job: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """Fit ``job`` on ``world`` local processes (gloo); rank 0's :class:`Capture`."""
    port = free_port()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_fit_worker, args=(r, world, port, job)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert codes == [0] * world, f"ranks exited with {codes}"
    return torch.load(job["out"], weights_only=True)
