"""Modality embedding graphs: presets, custom graphs, and the errors that say what to fix."""

from __future__ import annotations

import pytest
import torch

from versanet.encoders.small import EmbeddingTextEncoder, SmallAudioCNN, SmallVideoCNN
from versanet.graph import FAC, Disjoint, Edge, GraphError, LossTerm, ModalityGraph, Shared
from versanet.heads import LinearHead, MLPBNHead, ReLULinearBNHead
from versanet.models import PretrainModule


def encoders() -> dict:
    return {
        "video": SmallVideoCNN(widths=(4, 8), out_dim=12),
        "audio": SmallAudioCNN(widths=(4,), out_dim=10),
        "text": EmbeddingTextEncoder(vocab_size=30, embed_dim=6, out_dim=9),
    }


def batch(b: int = 4, k: int = 3) -> dict:
    return {
        "video": torch.rand(b, 3, 4, 32, 32),
        "audio": torch.randn(b, 1, 40, 24),
        "text": torch.randint(1, 30, (b, k, 5)),
        "mask": {"text": torch.ones(b, k, dtype=torch.bool)},
    }


def head_types(model: PretrainModule) -> dict[str, tuple[str, int, int]]:
    return {key: (type(h).__name__, h.in_dim, h.out_dim) for key, h in model.heads.items()}


def test_fac_preset_spaces_heads_and_shapes() -> None:
    model = PretrainModule(encoders(), FAC(va_dim=16, vat_dim=8))
    assert model.graph.spaces == {"va": 16, "vat": 8}
    assert head_types(model) == {
        "video->va": ("MLPBNHead", 12, 16),
        "video@va->vat": ("ReLULinearBNHead", 16, 8),
        "audio->va": ("LinearHead", 10, 16),
        "text->vat": ("LinearHead", 9, 8),
    }
    out = model(batch())
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "video": (4, 12), "audio": (4, 10), "text": (12, 9),
        "video@va": (4, 16), "video@vat": (4, 8), "audio@va": (4, 16), "text@vat": (12, 8),
    }
    losses = model.objective(batch(), out)
    assert set(losses) == {"video_audio@va", "video_text@vat", "loss"}
    assert losses["loss"].item() == pytest.approx(0.5 * (losses["video_audio@va"] + losses["video_text@vat"]).item())


def test_fac_coarse_video_is_computed_from_fine() -> None:
    model = PretrainModule(encoders(), FAC(va_dim=16, vat_dim=8)).eval()
    out = model(batch())
    torch.testing.assert_close(out["video@vat"], model.heads["video@va->vat"](out["video@va"]))


def test_shared_and_disjoint_presets() -> None:
    shared = PretrainModule(encoders(), Shared(dim=8))
    assert shared.graph.spaces == {"vat": 8}
    assert set(head_types(shared)) == {"video->vat", "audio->vat", "text->vat"}
    disjoint = PretrainModule(encoders(), Disjoint(va_dim=16, vt_dim=8))
    assert disjoint.graph.spaces == {"va": 16, "vt": 8}
    assert head_types(disjoint)["video->vt"] == ("MLPBNHead", 12, 8)
    assert head_types(disjoint)["video->va"] == ("MLPBNHead", 12, 16)
    for model in (shared, disjoint):
        loss = model.objective(batch(), model(batch()))["loss"]
        loss.backward()
        assert torch.isfinite(loss)


def test_custom_graph_with_extra_space_and_term() -> None:
    graph = ModalityGraph(
        spaces={"va": 16, "vat": 8, "at": 4},
        edges=[Edge("video", "va", MLPBNHead), Edge("audio", "va"), Edge("video@va", "vat", ReLULinearBNHead),
               Edge("text", "vat"), Edge("audio@va", "at", ReLULinearBNHead), Edge("text@vat", "at")],
        terms=[LossTerm("va", "video", "audio"), LossTerm("vat", "video", "text"), LossTerm("at", "audio", "text", weight=0.5)],
    )
    model = PretrainModule(encoders(), graph)
    losses = model.objective(batch(), model(batch()))
    assert set(losses) == {"video_audio@va", "video_text@vat", "audio_text@at", "loss"}
    expected = (losses["video_audio@va"] + losses["video_text@vat"] + 0.5 * losses["audio_text@at"]) / 2.5
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        (ModalityGraph({"va": 8}, [Edge("video", "va"), Edge("depth", "va")], [LossTerm("va", "video", "depth")]), "reads modality 'depth', which has no encoder"),
        (ModalityGraph({"a": 8, "b": 8}, [Edge("video", "a"), Edge("audio@b", "a"), Edge("audio@a", "b")], [LossTerm("a", "video", "audio")]), "cycle"),
        (ModalityGraph({"va": 8}, [Edge("video", "va"), Edge("audio", "va")], [LossTerm("va", "video", "text")]), "no edge takes text there"),
        (ModalityGraph({"va": 8}, [Edge("video", "va"), Edge("audio", "va")], [LossTerm("vt", "video", "audio")]), "unknown space 'vt'"),
        (ModalityGraph({"va": 8}, [Edge("video", "vx")], [LossTerm("va", "video", "audio")]), "targets unknown space 'vx'"),
        (ModalityGraph({"va": 8}, [Edge("video", "va"), Edge("video", "va")], [LossTerm("va", "video", "video")]), "reached by two edges"),
        (ModalityGraph({"va": 8}, [Edge("video", "va")], []), "no loss terms"),
    ],
)
def test_invalid_graphs_raise_clear_errors(graph: ModalityGraph, message: str) -> None:
    with pytest.raises(GraphError, match=message):
        PretrainModule(encoders(), graph)


def test_head_with_wrong_width_is_rejected() -> None:
    graph = ModalityGraph({"va": 8}, [Edge("video", "va", lambda i, o: LinearHead(i, 7)), Edge("audio", "va")], [LossTerm("va", "video", "audio")])
    with pytest.raises(GraphError, match=r"maps 12 -> 7, but the edge needs 12 -> 8"):
        PretrainModule(encoders(), graph)


def test_summary_names_every_edge_and_term() -> None:
    model = PretrainModule(encoders(), FAC(va_dim=16, vat_dim=8))
    text = model.graph.summary({m: e.out_dim for m, e in model.encoders.items()}, model.heads)
    assert "video@va --ReLULinearBNHead--> vat [16 -> 8]" in text
    assert "term video_text@vat: MILNCELoss(video, text) in vat, weight 1" in text and "term video_audio@va: NCELoss(video, audio) in va" in text
    assert "retrieval video <-> text in vat" in text and "total: sum w*L / sum w" in text


def test_missing_text_has_no_influence_on_the_loss() -> None:
    model = PretrainModule(encoders(), FAC(va_dim=16, vat_dim=8)).eval()
    data = batch()
    data["mask"]["text"][0] = False  # an AudioSet-like clip: no captions
    loss = model.objective(data, model(data))["video_text@vat"]
    data["text"][0] = torch.randint(1, 30, data["text"][0].shape)  # whatever sits in the masked slot
    assert model.objective(data, model(data))["video_text@vat"].item() == pytest.approx(loss.item(), rel=1e-6)
    data["mask"]["text"][0] = True
    assert model.objective(data, model(data))["video_text@vat"].item() != pytest.approx(loss.item(), rel=1e-3)


def test_an_encoder_the_graph_never_reads_is_dropped_with_a_warning() -> None:
    graph = ModalityGraph({"va": 8}, [Edge("video", "va"), Edge("audio", "va")], [LossTerm("va", "video", "audio")])
    with pytest.warns(UserWarning, match=r"reads no text: encoder\(s\) text dropped"):
        model = PretrainModule(encoders(), graph)
    assert sorted(model.encoders) == ["audio", "video"] and not any(k.startswith("encoders.text.") for k in model.state_dict())
