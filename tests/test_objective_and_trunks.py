"""The shared interfaces: objective terms beyond pairs (state, weights, sums), declared retrievals, shared trunks."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor, nn

from versanet.encoders import Encoder, Tokens
from versanet.encoders.small import EmbeddingTextEncoder, SmallAudioCNN, SmallVideoCNN
from versanet.eval.retrieval import fused_similarity, retrieval_metrics
from versanet.graph import FAC, Edge, GraphError, LossTerm, ModalityGraph
from versanet.models import PretrainModule
from versanet.objective import ObjectiveTerm, Retrieval, TermInputs, combine


def small_encoders() -> dict[str, Encoder]:
    torch.manual_seed(0)
    return {
        "video": SmallVideoCNN(widths=(4, 8), out_dim=12),
        "audio": SmallAudioCNN(widths=(4,), out_dim=10),
        "text": EmbeddingTextEncoder(vocab_size=30, embed_dim=6, out_dim=9),
    }


def small_batch(b: int = 4, k: int = 2) -> dict:
    torch.manual_seed(1)
    return {
        "video": torch.rand(b, 3, 4, 32, 32),
        "audio": torch.randn(b, 1, 40, 24),
        "text": torch.randint(1, 30, (b, k, 5)),
        "mask": {"text": torch.ones(b, k, dtype=torch.bool)},
        "index": torch.arange(b),
    }


class FusedQueueTerm(ObjectiveTerm):
    """A stateful test term: the squared norm of the fused (video+audio)/2 embedding, plus a FIFO queue of them."""

    def __init__(self, space: str = "va", size: int = 6, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.space = space
        self.register_buffer("queue", torch.zeros(size, 0))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.updates = 0

    def reads(self) -> list[str]:
        return [f"video@{self.space}", f"audio@{self.space}", "video"]

    def build(self, graph: ModalityGraph, modality_dims: dict[str, int]) -> None:
        self.queue = torch.zeros(self.queue.shape[0], graph.spaces[self.space])

    def fused(self, inputs: TermInputs) -> Tensor:
        return (inputs.emb[f"video@{self.space}"] + inputs.emb[f"audio@{self.space}"]) / 2

    def forward(self, inputs: TermInputs) -> Tensor:
        return self.fused(inputs).pow(2).sum(1).mean()

    @torch.no_grad()
    def update(self, inputs: TermInputs) -> None:
        self.updates += 1
        self.queue = torch.cat([self.fused(inputs), self.queue])[: self.queue.shape[0]]
        self.filled += inputs.batch_size


def test_a_stateful_term_reads_embeddings_updates_once_per_step_and_sums_with_weights() -> None:
    term = FusedQueueTerm(weight=50.0)
    graph = FAC(va_dim=8, vat_dim=4, extra_terms=[term])
    graph.reduction = "sum"
    model = PretrainModule(small_encoders(), graph)
    model._trainer = SimpleNamespace(global_step=0)  # noqa: SLF001 - training_step reads the step only
    batch = small_batch()
    model.log = model.log_dict = lambda *a, **k: None  # type: ignore[method-assign]
    loss = model.training_step(batch, 0)
    assert term.updates == 1 and int(term.filled) == 4
    with torch.no_grad():
        emb = model(batch)
    parts = model.objective(batch, emb)
    expected = parts["video_audio@va"] + parts["video_text@vat"] + 50.0 * parts["FusedQueueTerm"]
    torch.testing.assert_close(parts["loss"], expected)
    # the queue holds the step's fused embeddings, newest first (train-mode BN: the step's own statistics)
    assert torch.isfinite(loss) and term.queue[:4].abs().sum() > 0 and term.queue[4:].abs().sum() == 0


def test_term_state_is_saved_and_restored_with_the_module() -> None:
    graph = FAC(va_dim=8, vat_dim=4, extra_terms=[FusedQueueTerm()])
    model = PretrainModule(small_encoders(), graph)
    model.terms["FusedQueueTerm"].queue.normal_()
    model.terms["FusedQueueTerm"].filled.fill_(7)
    state = model.state_dict()
    assert "terms.FusedQueueTerm.queue" in state
    fresh = PretrainModule(small_encoders(), FAC(va_dim=8, vat_dim=4, extra_terms=[FusedQueueTerm()]))
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.terms["FusedQueueTerm"].queue, model.terms["FusedQueueTerm"].queue)
    assert int(fresh.terms["FusedQueueTerm"].filled) == 7


def test_combine_is_a_weighted_mean_or_a_weighted_sum() -> None:
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(4.0)}
    weights = {"a": 1.0, "b": 3.0}
    assert combine(losses, weights, "mean").item() == pytest.approx((2 + 12) / 4)
    assert combine(losses, weights, "sum").item() == pytest.approx(14.0)
    with pytest.raises(ValueError, match="reduction"):
        combine(losses, weights, "max")


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ([LossTerm("va", "video", "audio"), LossTerm("va", "video", "audio")], "two objective terms are named 'video_audio@va'"),
        ([LossTerm("va", "video", "audio"), FusedQueueTerm(space="vat")], "needs audio in space 'vat'"),
        ([LossTerm("va", "video", "audio"), LossTerm("va", "video", "audio", name="a.b")], "may not be empty or contain '.'"),
    ],
)
def test_terms_are_checked_against_the_graph(terms: list, message: str) -> None:
    graph = ModalityGraph({"va": 8, "vat": 4}, [Edge("video", "va"), Edge("audio", "va"), Edge("video@va", "vat")], terms)
    with pytest.raises(GraphError, match=message):
        PretrainModule(small_encoders(), graph)


def test_a_term_reading_backbone_features_of_a_missing_modality_is_refused() -> None:
    class Reads(FusedQueueTerm):
        def reads(self) -> list[str]:
            return ["depth"]

    with pytest.raises(GraphError, match="backbone features of 'depth'"):
        PretrainModule(small_encoders(), FAC(va_dim=8, vat_dim=4, extra_terms=[Reads()]))


def test_fused_similarity_is_the_mean_cosine_over_the_gallery_modalities_present() -> None:
    q = {"video": torch.tensor([[1.0, 0.0], [0.0, 1.0]]), "audio": torch.tensor([[0.6, 0.8], [0.8, 0.6]])}
    g = {"video": torch.tensor([[1.0, 0.0], [0.6, 0.8]]), "audio": torch.tensor([[0.0, 1.0], [1.0, 0.0]])}
    present = {"video": torch.tensor([True, True]), "audio": torch.tensor([True, False])}
    sim = fused_similarity(q, g, present)
    # column 0 has both modalities: mean of the two cosines; column 1 has only video
    expected = torch.tensor([[(1.0 + 0.8) / 2, 0.6], [(0.0 + 0.6) / 2, 0.8]])
    torch.testing.assert_close(sim, expected)


def test_declared_retrievals_are_reported_and_match_a_hand_computation() -> None:
    graph = FAC(va_dim=8, vat_dim=4)
    graph._retrieval = [Retrieval("vat", "text", ["video"]), Retrieval("va", "video", "audio")]  # noqa: SLF001
    model = PretrainModule(small_encoders(), graph).eval()
    model._trainer = SimpleNamespace(world_size=1)  # noqa: SLF001
    model.log = model.log_dict = lambda *a, **k: None  # type: ignore[method-assign]
    batch = small_batch(b=6)
    with torch.no_grad():
        model._eval_step(batch, "val")  # noqa: SLF001
        model._eval_epoch_end("val")  # noqa: SLF001
        emb = model(batch)
    names = [(r["query"], r["gallery"], r["space"]) for r in model.retrieval_results]
    assert names == [("text", "video", "vat"), ("video", "text", "vat"), ("video", "audio", "va"), ("audio", "video", "va")]
    text = nn.functional.normalize(emb["text@vat"].reshape(6, 2, -1)[:, 0], dim=-1)
    video = nn.functional.normalize(emb["video@vat"], dim=-1)
    expected = retrieval_metrics(text @ video.T)
    got = model.retrieval_results[0]
    assert got["n"] == 6 and got["MedR"] == expected["MedR"] and got["R@1"] == expected["R@1"]


# ---------------------------------------------------------------------------- shared trunks
class TinyTrunk(nn.Module):
    """A 2-layer MLP over tokens: the shared part."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.width = width
        self.layers = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class TrunkedEncoder(Encoder):
    """Per-modality tokeniser (Linear) -> trunk (own or shared) -> mean."""

    input_ndim = 2
    shares_trunk = True

    def __init__(self, in_dim: int = 5, width: int = 8, trunk: str | None = None, modality: str = "x") -> None:
        super().__init__(modality, width)
        self.tokenise = nn.Linear(in_dim, width)
        self.shared_trunk = trunk
        self.trunk = None if trunk else TinyTrunk(width)

    def forward_tokens(self, x: Tensor) -> Tokens:
        h = self.trunk(self.tokenise(x))
        return Tokens(h, torch.ones(h.shape[:2], dtype=torch.bool), h.mean(1))

    def example_input(self, batch_size: int) -> Tensor:
        return torch.randn(batch_size, 3, 5)


def trunk_model() -> PretrainModule:
    torch.manual_seed(0)
    encoders = {"video": TrunkedEncoder(5, trunk="shared"), "audio": TrunkedEncoder(7, trunk="shared")}
    graph = ModalityGraph({"va": 4}, [Edge("video", "va"), Edge("audio", "va")], [LossTerm("va", "video", "audio")])
    return PretrainModule(encoders, graph, trunks={"shared": TinyTrunk(8)})


def test_a_shared_trunk_counts_once_in_parameters_optimiser_and_checkpoint() -> None:
    model = trunk_model()
    trunk_params = sum(p.numel() for p in model.trunks["shared"].parameters())
    own = sum(p.numel() for m in model.encoders.values() for p in m.tokenise.parameters())
    heads = sum(p.numel() for p in model.heads.parameters())
    assert sum(p.numel() for p in model.parameters()) == trunk_params + own + heads
    assert model.encoders["video"].trunk is model.encoders["audio"].trunk is model.trunks["shared"]
    model._trainer = SimpleNamespace(estimated_stepping_batches=10)  # noqa: SLF001
    optimizer = model.configure_optimizers()["optimizer"]
    ids = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == trunk_params + own + heads
    state = model.state_dict()
    assert [k for k in state if "layers.0.weight" in k] == ["trunks.shared.layers.0.weight"]
    fresh = trunk_model()
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    fresh.load_state_dict(state)  # strict: the aliases are filled from trunks.shared.*
    for (name, a), b in zip(model.named_parameters(), fresh.parameters()):
        torch.testing.assert_close(a, b, msg=name)
    assert fresh.encoders["audio"].trunk.layers[0].weight is fresh.trunks["shared"].layers[0].weight


def test_both_modalities_train_the_one_trunk() -> None:
    model = trunk_model()
    batch = {"video": torch.randn(4, 3, 5), "audio": torch.randn(4, 3, 7)}
    emb = model(batch)
    emb["video"].sum().backward(retain_graph=True)
    from_video = model.trunks["shared"].layers[0].weight.grad.clone()
    model.zero_grad()
    emb["audio"].sum().backward()
    from_audio = model.trunks["shared"].layers[0].weight.grad.clone()
    model.zero_grad()
    (emb := model(batch))["video"].sum().add(emb["audio"].sum()).backward()
    torch.testing.assert_close(model.trunks["shared"].layers[0].weight.grad, from_video + from_audio)
    assert from_video.abs().sum() > 0 and from_audio.abs().sum() > 0


def test_trunk_names_are_checked() -> None:
    graph = ModalityGraph({"va": 4}, [Edge("video", "va"), Edge("audio", "va")], [LossTerm("va", "video", "audio")])
    with pytest.raises(GraphError, match="names trunk 'shard', but model.trunks has shared"):
        PretrainModule({"video": TrunkedEncoder(trunk="shard"), "audio": TrunkedEncoder()}, graph, trunks={"shared": TinyTrunk()})
    with pytest.raises(GraphError, match="no encoder names them"):
        PretrainModule({"video": TrunkedEncoder(), "audio": TrunkedEncoder()}, graph, trunks={"spare": TinyTrunk()})
    with pytest.raises(TypeError, match="cannot run a shared trunk"):
        encoder = SmallVideoCNN(widths=(4,), out_dim=4)
        encoder.shared_trunk = "shared"
        PretrainModule({"video": encoder, "audio": TrunkedEncoder()}, graph, trunks={"shared": TinyTrunk()})


def test_identical_embeddings_give_log_2b_through_the_term_interface() -> None:
    term = LossTerm("va", "video", "audio")
    e = nn.functional.normalize(torch.randn(1, 8), dim=-1).repeat(5, 1)
    value = term(TermInputs({"video@va": e, "audio@va": e}, {}, 5))
    assert value.item() == pytest.approx(math.log(10), rel=1e-6)
