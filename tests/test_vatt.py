"""VATT: parameter counts, token counts, DropToken, positional resampling, the Transformer maths, VATT-MA sharing.

Full-size models are built on the meta device (shapes only, no memory); the forward passes use tiny widths.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningModule
from torch import nn

from versanet.encoders.vatt import (
    SIZES, VATTAudio, VATTText, VATTTrunk, VATTVideo, drop_tokens, resample_table, spline_resample_matrix,
)
from versanet.encoders.vatt.transformer import (
    MultiHeadAttention, T5Encoder, TransformerEncoder, relative_position_bucket, resolve_size,
)
from versanet.graph import Edge, LossTerm, ModalityGraph
from versanet.heads import LinearHead, MLPBNHead, ReLULinearBNHead
from versanet.models import PretrainModule

REPO = Path(__file__).resolve().parents[1]


def trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def model_from_dict(init_args: dict, device: str = "cpu") -> PretrainModule:
    """A ``PretrainModule`` from its config's ``init_args``, as ``versanet fit`` would build it."""
    parser = ArgumentParser()
    parser.add_subclass_arguments(LightningModule, "model")
    with torch.device(device):
        return parser.instantiate(parser.parse_object({"model": {"class_path": "PretrainModule", "init_args": copy.deepcopy(init_args)}})).model


def model_from_config(name: str) -> PretrainModule:
    """The ``model:`` of ``configs/vatt/<name>.yaml``, built on the meta device (shapes only)."""
    config = yaml.safe_load((REPO / "configs" / "vatt" / f"{name}.yaml").read_text())
    return model_from_dict(config["model"]["init_args"], "meta")


# ---------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize(("size", "count"), [("small", 18_915_328), ("base", 85_056_000), ("medium", 151_156_736), ("large", 302_311_424)])
def test_transformer_parameter_counts(size: str, count: int) -> None:
    with torch.device("meta"):
        assert trainable(VATTTrunk(size)) == count


def test_tower_parameter_counts() -> None:
    with torch.device("meta"):
        video = VATTVideo("base")
        text = VATTText("small", vocab_size=2**16)
        audio = VATTAudio("base")
    # ViT-Base at 32x224x224, no classifier: Transformer + Conv3d(3, 768, 4x16x16) + 8/14/14 tables + LN + [AGG]
    assert trainable(video) == 87_446_016 == 85_056_000 + 2_360_064 + 36 * 768 + 2 * 768 + 768
    assert trainable(audio) == 86_078_976 == 85_056_000 + 128 * 768 + 768 + 1200 * 768 + 2 * 768 + 768
    # T5-Small: 6 x (RMS 512 + q,k,v,o 4 x 512^2 + LN 1024 + wi,wo 2 x 512 x 2048) + relative bias 32 x 8 + final RMS 512,
    # plus Linear(300, 512, no bias) and the 300-d [AGG]; the 2^16 x 300 word table is a frozen buffer
    assert trainable(text.trunk) == 18_884_352
    assert trainable(text) == 19_038_252 == 18_884_352 + 300 * 512 + 300
    assert text.table.shape == (2**16, 300) and "table" in dict(text.named_buffers())


@pytest.mark.parametrize(
    ("name", "total", "heads"),
    [("bbs", 193_877_292, 1_314_048), ("mbs", 260_905_772, 1_445_120), ("lbs", 412_060_460, 1_445_120), ("ma", 162_990_336, 1_707_264)],
)
def test_paper_model_totals_from_the_shipped_configs(name: str, total: int, heads: int) -> None:
    model = model_from_config(name)
    assert trainable(model.heads) == heads
    assert trainable(model) == total
    if name == "ma":  # one Medium Transformer for the three modalities, counted once
        trunk = model.trunks["shared"]
        assert all(enc.trunk is trunk for enc in model.encoders.values())
        assert trainable(trunk) == 151_156_736
        own = {m: trainable(enc) - trainable(trunk) for m, enc in model.encoders.items()}
        assert own == {"video": 5_285_888, "audio": 3_463_168, "text": 1_377_280}
    else:
        assert all(not enc.shared_trunk for enc in model.encoders.values())
    assert all(enc.droptoken_rate == 0.5 for m, enc in model.encoders.items() if m != "text")


def test_vatt_head_variant() -> None:
    model = model_from_config("bbs")
    video_va, va_vat = model.heads["video->va"].proj, model.heads["video@va->vat"].proj
    assert video_va[0].bias is None and video_va[3].bias is None and isinstance(video_va[1], nn.BatchNorm1d)
    assert va_vat[1].bias is None and isinstance(va_vat[2], nn.BatchNorm1d)
    assert model.heads["audio->va"].proj.bias is not None and model.heads["text->vat"].proj.bias is not None


# ---------------------------------------------------------------------------- token counts
def trunk_lengths(encoder: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(tokens entering the Transformer, output tokens) for one forward pass."""
    seen = []
    handle = encoder.trunk.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[1]))
    with torch.no_grad():
        tokens = encoder.forward_tokens(x)
    handle.remove()
    return seen[0], tokens.tokens.shape[1]


def test_video_token_counts(one_thread: None) -> None:
    torch.manual_seed(0)
    video = VATTVideo("tiny", droptoken_rate=0.5)
    clip = torch.rand(1, 3, 32, 224, 224) * 2 - 1
    video.eval()
    assert trunk_lengths(video, clip) == (1 + 1568, 1568)
    assert video.forward_tokens(clip[:, :, :4, :32, :32]).grid == (1, 2, 2)
    video.train()
    assert trunk_lengths(video, clip) == (1 + 784, 784)
    video.eval()
    assert trunk_lengths(video, torch.rand(1, 3, 32, 320, 320)) == (1 + 3200, 3200)  # 8 x 20 x 20: tables resampled


def test_audio_and_text_token_counts(one_thread: None) -> None:
    torch.manual_seed(0)
    audio = VATTAudio("tiny", droptoken_rate=0.5).eval()
    wave = torch.randn(1, 1, 153_600) * 0.1
    assert trunk_lengths(audio, wave) == (1 + 1200, 1200)
    audio.train()
    assert trunk_lengths(audio, wave) == (1 + 600, 600)
    text = VATTText("tiny", vocab_size=100).eval()
    ids = torch.randint(1, 100, (2, 16))
    ids[1, 10:] = 0
    assert trunk_lengths(text, ids) == (17, 16)
    assert text.forward_tokens(ids).mask.sum(1).tolist() == [16, 10]


# ---------------------------------------------------------------------------- DropToken
def test_droptoken_keeps_a_random_subset_per_batch_or_per_sample() -> None:
    torch.manual_seed(0)
    x = torch.arange(2 * 10).float().reshape(2, 10, 1).expand(2, 10, 3).contiguous()  # token i of sample n holds 10 n + i
    batch = drop_tokens(x, 0.5, "batch")
    assert batch.shape == (2, 5, 3)
    kept = batch[..., 0] - torch.tensor([[0.0], [10.0]])
    assert torch.equal(kept[0], kept[1]) and len(set(kept[0].tolist())) == 5  # the same 5 positions in every sample
    samples = [drop_tokens(x, 0.5, "sample")[..., 0] - torch.tensor([[0.0], [10.0]]) for _ in range(20)]
    assert all(len(set(s[0].tolist())) == 5 and set(s[0].tolist()) <= set(range(10)) for s in samples)
    assert any(set(s[0].tolist()) != set(s[1].tolist()) for s in samples)  # independent draws per sample
    assert drop_tokens(x, 0.3, "batch").shape[1] == 7
    with pytest.raises(ValueError, match="batch' or 'sample"):
        drop_tokens(x, 0.5, "clip")  # type: ignore[arg-type]


def test_droptoken_only_in_pretraining_training_mode() -> None:
    torch.manual_seed(0)
    video = VATTVideo(size="tiny", max_buckets=(2, 2, 2), droptoken_rate=0.5, droptoken_per="sample")
    x = video.example_input(2)
    assert video.train().forward_tokens(x).tokens.shape[1] == 4 and video.forward_tokens(x).grid is None
    assert video.eval().forward_tokens(x).tokens.shape[1] == 8 and video.forward_tokens(x).grid == (2, 2, 2)
    video.prepare_downstream()  # what load_pretrained does for fine-tuning and benchmarks
    assert video.train().forward_tokens(x).tokens.shape[1] == 8
    with pytest.raises(ValueError, match="fraction of tokens dropped"):
        VATTAudio(size="tiny", droptoken_rate=1.0)


def test_a_loaded_checkpoint_fine_tunes_without_droptoken(tmp_path: Path) -> None:
    from versanet.checkpoint import load_pretrained, save_pretrained

    tower = {"size": "tiny", "droptoken_rate": 0.5}
    config = {
        "encoders": {
            "video": {"class_path": "VATTVideo", "init_args": {**tower, "max_buckets": [2, 2, 2]}},
            "audio": {"class_path": "VATTAudio", "init_args": {**tower, "patch_size": 16, "max_buckets": 8}},
        },
        "graph": {"class_path": "ModalityGraph", "init_args": {"spaces": {"va": 8}, "edges": [{"source": "video", "space": "va"}, {"source": "audio", "space": "va"}],
                                                                "terms": [{"space": "va", "a": "video", "b": "audio"}]}},
    }
    model = model_from_dict(config)
    assert model.encoders["video"].droptoken_rate == 0.5
    loaded = load_pretrained(save_pretrained(tmp_path / "vatt.ckpt", config, model.state_dict()))
    video = loaded.encoders["video"].train()
    assert video.droptoken_rate == 0.0 and loaded.encoders["audio"].droptoken_rate == 0.0
    assert video.forward_tokens(video.example_input(2)).tokens.shape[1] == 8  # every token, in training mode


# ---------------------------------------------------------------------------- positional embeddings
def tfa_interpolate_spline(train: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """TF Addons' ``interpolate_spline`` (order 3, no regularisation) for 1-D points, written out with numpy."""
    phi = lambda r2: np.maximum(r2, 1e-10) ** 1.5  # noqa: E731
    n = len(train)
    a = phi((train[:, None] - train[None, :]) ** 2)
    b = np.stack([train, np.ones(n)], 1)
    lhs = np.block([[a, b], [b.T, np.zeros((2, 2))]])
    w_v = np.linalg.solve(lhs, np.concatenate([values, np.zeros((2, values.shape[1]))]))
    return phi((query[:, None] - train[None, :]) ** 2) @ w_v[:n] + np.stack([query, np.ones(len(query))], 1) @ w_v[n:]


def test_resampling_to_the_same_size_is_exact_and_matches_tf_addons_otherwise() -> None:
    torch.manual_seed(0)
    table = torch.randn(14, 6)
    assert resample_table(table, 14) is table
    for m in (20, 9, 1):
        expected = tfa_interpolate_spline(np.arange(14) / 14, table.double().numpy(), np.arange(m) / m)
        np.testing.assert_allclose(resample_table(table.double(), m).numpy(), expected, rtol=1e-9, atol=1e-9)
    # the spline interpolates: asked for the table's own bucket positions it returns the rows
    torch.testing.assert_close(spline_resample_matrix(7, 14, dtype=torch.float64)[::2], torch.eye(7, dtype=torch.float64), atol=1e-9, rtol=0)


def test_resampling_to_a_larger_grid_is_smooth() -> None:
    n, m = 14, 20
    c = torch.arange(n, dtype=torch.float64) / n
    q = torch.arange(m, dtype=torch.float64) / m
    ramp = torch.stack([3 * c - 1, -c], 1)
    torch.testing.assert_close(resample_table(ramp, m), torch.stack([3 * q - 1, -q], 1))  # linear: exact, even past (n-1)/n
    wave = torch.sin(2 * math.pi * c)[:, None]
    up = resample_table(wave, m)[:, 0]
    error = (up - torch.sin(2 * math.pi * q)).abs()
    assert error[q <= (n - 1) / n].max() < 1e-2 and error[(q > 0.1) & (q < 0.8)].max() < 1e-3  # a bit looser near the ends
    second = up[2:] - 2 * up[1:-1] + up[:-2]
    assert second.abs().max() < 4 * (2 * math.pi / m) ** 2  # no wiggles: second differences of a smooth curve


def test_positional_tables_get_gradients_through_resampling() -> None:
    video = VATTVideo(size="tiny", max_buckets=(2, 2, 2)).eval()
    video(torch.rand(1, 3, 8, 48, 48)).pow(2).sum().backward()  # 2 x 3 x 3 tokens: the spatial tables are resampled 2 -> 3
    pos = video.pos_embedding_lookup
    assert pos.vertical_position_embeddings.weight.grad.abs().sum() > 0 and pos.temporal_position_embeddings.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------- the Transformer maths
def reference_attention(mha: MultiHeadAttention, x: torch.Tensor, bias: torch.Tensor | None, scaled: bool) -> torch.Tensor:
    n, length, _ = x.shape
    split = lambda t: t.reshape(n, length, mha.num_heads, mha.d_kv).transpose(1, 2)  # noqa: E731
    q, k, v = split(mha.q(x)), split(mha.k(x)), split(mha.v(x))
    scores = torch.einsum("bnqd,bnkd->bnqk", q, k) / (math.sqrt(mha.d_kv) if scaled else 1.0)
    if bias is not None:
        scores = scores + bias
    return mha.o((scores.softmax(-1) @ v).transpose(1, 2).reshape(n, length, -1))


def test_attention_is_vatts_scaled_and_t5s_unscaled_attention() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    padding = (~mask).float()[:, None, None, :] * -1e9
    for scaled in (True, False):
        mha = MultiHeadAttention(16, 8, 2, bias=scaled, dropout=0.1, scaled=scaled).eval()
        torch.testing.assert_close(mha(x, padding), reference_attention(mha, x, padding, scaled))
    trunk = TransformerEncoder(resolve_size("tiny", d_model=16, num_heads=2, d_kv=8)).eval()
    out = trunk(x, mask)
    changed = x.clone()
    changed[1, 3:] = 5.0  # padded tokens do not affect the real ones
    torch.testing.assert_close(trunk(changed, mask)[1, :3], out[1, :3])
    layer = trunk.layers[0]
    assert layer.layer_norm.eps == 1e-6 and layer.feed_forward.mlp.act.approximate == "none" and trunk.final_layer_norm.eps == 1e-6


def test_t5_relative_position_buckets_and_shared_bias() -> None:
    offsets = torch.tensor([0, -1, -7, -8, -16, -63, -64, -500, 1, 7, 8, 100])  # key - query
    assert relative_position_bucket(offsets).tolist() == [0, 1, 7, 8, 10, 15, 15, 15, 17, 23, 24, 31]
    t5 = T5Encoder(resolve_size("tiny", d_model=16, num_heads=2, d_kv=8)).eval()
    assert hasattr(t5.layers[0].self_attention.attention, "relative_attention_bias")
    assert not hasattr(t5.layers[1].self_attention.attention, "relative_attention_bias")
    assert isinstance(t5.layers[0].self_attention.layer_norm, nn.RMSNorm) and isinstance(t5.layers[0].feed_forward.layer_norm, nn.LayerNorm)
    assert all(m.bias is None for m in t5.modules() if isinstance(m, nn.Linear))  # T5: no biases
    bias = t5.layers[0].self_attention.attention.compute_bias(4)
    assert bias.shape == (1, 2, 4, 4) and torch.equal(bias[0, :, 0, 1], bias[0, :, 2, 3])  # depends on the offset only


def test_sizes_are_vatts() -> None:
    as_tuple = {name: (s.num_layers, s.d_model, s.d_ff, s.num_heads, s.d_kv) for name, s in SIZES.items()}
    assert as_tuple["small"] == (6, 512, 2048, 8, 64) and as_tuple["base"] == (12, 768, 3072, 12, 64)
    assert as_tuple["medium"] == (12, 1024, 4096, 16, 64) and as_tuple["large"] == (24, 1024, 4096, 16, 64)
    with pytest.raises(ValueError, match="unknown VATT size 'huge'"):
        resolve_size("huge")


# ---------------------------------------------------------------------------- VATT-MA
def tiny_ma() -> PretrainModule:
    torch.manual_seed(0)
    common = {"size": "tiny", "trunk": "shared", "post_projection": 24}
    encoders = {
        "video": VATTVideo(max_buckets=(2, 2, 2), pre_projection=True, droptoken_rate=0.5, **common),
        "audio": VATTAudio(patch_size=16, max_buckets=8, pre_projection=True, droptoken_rate=0.5, **common),
        "text": VATTText(vocab_size=30, embed_dim=12, max_tokens=6, **common),
    }
    graph = ModalityGraph(
        {"va": 8, "vat": 6},
        [Edge("video", "va", lambda i, o: MLPBNHead(i, o, first_bias=False)), Edge("video@va", "vat", lambda i, o: ReLULinearBNHead(i, o, bias=False)),
         Edge("audio", "va", LinearHead), Edge("text", "vat", LinearHead)],
        [LossTerm("va", "video", "audio"), LossTerm("vat", "video", "text")],
    )
    return PretrainModule(encoders, graph, trunks={"shared": VATTTrunk("tiny")})


def test_vatt_ma_shares_one_trunk_in_parameters_gradients_and_checkpoint() -> None:
    model = tiny_ma()
    trunk = model.trunks["shared"]
    assert all(enc.trunk is trunk for enc in model.encoders.values())
    assert trainable(model) == trainable(trunk) + sum(trainable(e) - trainable(trunk) for e in model.encoders.values()) + trainable(model.heads)
    state = model.state_dict()
    assert [k for k in state if k.endswith("layers.0.mha.q.weight")] == ["trunks.shared.layers.0.mha.q.weight"]
    assert {"encoders.video.agg_embedding", "encoders.audio.agg_embedding", "encoders.text.agg_embedding"} <= set(state)
    batch = {m: enc.example_input(4) for m, enc in model.encoders.items()}
    feats = {m: model.encode(m, x) for m, x in batch.items()}
    assert all(f.shape == (4, 24) for f in feats.values())
    grads = {}
    for m, f in feats.items():
        model.zero_grad()
        f.pow(2).sum().backward(retain_graph=True)
        grads[m] = trunk.layers[0].mha.q.weight.grad.clone()
    assert all(g.abs().sum() > 0 for g in grads.values())
    fresh = tiny_ma()
    fresh.load_state_dict(state)  # strict; the per-modality aliases are filled from trunks.shared
    for (name, a), b in zip(model.named_parameters(), fresh.parameters()):
        torch.testing.assert_close(a, b, msg=name)


def test_a_trunk_of_the_wrong_width_is_refused() -> None:
    graph = ModalityGraph({"va": 8}, [Edge("video", "va"), Edge("audio", "va")], [LossTerm("va", "video", "audio")])
    encoders = {"video": VATTVideo(size="tiny", trunk="shared"), "audio": VATTAudio(size="tiny", trunk="shared")}
    with pytest.raises(ValueError, match="is 64 wide but trunk 'shared' is 512 wide"):
        PretrainModule(encoders, graph, trunks={"shared": VATTTrunk("small")})


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = VATTText(size="tiny", vocab_size=40).eval()  # eval: no dropout, so both passes are deterministic
    recomputed = VATTText(size="tiny", vocab_size=40, grad_checkpointing=True).eval()
    recomputed.load_state_dict(plain.state_dict())
    ids = plain.example_input(3)
    plain(ids).pow(2).sum().backward()
    recomputed(ids).pow(2).sum().backward()
    for (name, a), b in zip(plain.named_parameters(), recomputed.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_vatt_ma_optimiser_holds_the_shared_trunk_once() -> None:
    from lightning.pytorch import Trainer

    model = tiny_ma()
    model.trainer = Trainer(max_steps=10, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    params = [p for group in model.configure_optimizers()["optimizer"].param_groups for p in group["params"]]
    assert len({id(p) for p in params}) == len(params)
    assert sum(p.numel() for p in params) == trainable(model)
    trunk = {id(p) for p in model.trunks["shared"].parameters()}
    assert sum(id(p) in trunk for p in params) == len(trunk)  # each trunk tensor once, though three encoders hold it


# ---------------------------------------------------------------------------- speed flags
def test_bf16_autocast_forward_and_backward(one_thread: None) -> None:
    torch.manual_seed(0)
    towers = [VATTVideo(size="tiny", max_buckets=(2, 2, 2), droptoken_rate=0.5), VATTAudio(size="tiny", patch_size=16, max_buckets=8), VATTText(size="tiny", vocab_size=40)]
    for tower in towers:
        x = tower.example_input(2)
        linear_dtypes = set()
        hooks = [m.register_forward_hook(lambda mod, args, y: linear_dtypes.add(y.dtype)) for m in tower.modules() if isinstance(m, nn.Linear)]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = tower(x)
        for hook in hooks:
            hook.remove()
        assert linear_dtypes == {torch.bfloat16} and torch.isfinite(out.float()).all()  # every matmul in bf16; norms stay fp32
        out.float().pow(2).sum().backward()
        grads = [p.grad for p in tower.parameters() if p.requires_grad]
        assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads), type(tower).__name__


@pytest.mark.slow  # inductor compiles two layers: ~20 s on a busy 2-core machine
def test_compile_flag_compiles_each_layer_and_keeps_the_outputs(one_thread: None) -> None:
    torch.manual_seed(0)
    plain = VATTAudio(size="tiny", patch_size=16, max_buckets=8).eval()
    compiled = VATTAudio(size="tiny", patch_size=16, max_buckets=8, compile=True).eval()
    compiled.load_state_dict(plain.state_dict())
    assert all(layer._compiled_call_impl is not None for layer in compiled.trunk.layers)
    assert all(layer._compiled_call_impl is None for layer in plain.trunk.layers)
    x = plain.example_input(2)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), plain(x), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------- DropToken under negatives accumulation
def tiny_vatt_va(per: str, accumulation: int) -> PretrainModule:
    """Video and audio towers with DropToken 50% and dropout 0.1, NCE in one space."""
    torch.manual_seed(0)
    encoders = {
        "video": VATTVideo(size="tiny", max_buckets=(2, 2, 2), droptoken_rate=0.5, droptoken_per=per),
        "audio": VATTAudio(size="tiny", patch_size=16, max_buckets=8, droptoken_rate=0.5, droptoken_per=per),
    }
    graph = ModalityGraph({"va": 8}, [Edge("video", "va"), Edge("audio", "va")], [LossTerm("va", "video", "audio")])
    return PretrainModule(encoders, graph, warmup_steps=0, negatives_accumulation=accumulation)


@pytest.mark.parametrize("per", ["batch", "sample"])
def test_droptoken_draws_from_the_global_rng_so_negatives_accumulation_reproduces_its_micro_batches(per: str, tmp_path: Path, one_thread: None) -> None:
    """DropToken (and dropout) draw from torch's global RNG: negatives accumulation's cached pass and its re-run
    draw the same tokens, and the step gives the gradients of the micro-batches forwarded in turn with a graph from
    the same seed. It is not the gradient of the whole batch in one pass: the draws depend on the split (docs/vatt.md)."""
    import os

    from lightning.pytorch import Trainer
    from torch.utils.data import DataLoader

    from scale_helpers import Capture, Samples, reference_micro_batches, reference_step
    from versanet.seeding import derived_seed

    probe = tiny_vatt_va(per, 1)
    g = torch.Generator().manual_seed(1)
    batch = {
        "video": torch.rand(8, *probe.encoders["video"].example_input(1).shape[1:], generator=g) * 2 - 1,
        "audio": torch.randn(8, 1, 128, generator=g),
        "mask": {"audio": torch.ones(8, 1, dtype=torch.bool)},
        "index": torch.arange(8),
    }
    micro, one_pass = tiny_vatt_va(per, 1), tiny_vatt_va(per, 1)
    seed = derived_seed(int(os.environ.get("PL_GLOBAL_SEED", "0")), 0, 0, 0)  # what PretrainModule.seed_batch sets for the first batch
    torch.manual_seed(seed)
    expected_loss, expected = reference_micro_batches(micro, batch, parts=2)
    torch.manual_seed(seed)
    _, whole = reference_step(one_pass, batch)
    name = "encoders.video.voxel_to_patch.weight"
    assert not torch.allclose(whole[name], expected[name])  # one pass over 8 clips draws other tokens than two passes over 4

    trainer = Trainer(
        accelerator="cpu", devices=1, max_steps=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=[Capture(str(tmp_path / "c.pt"))],
    )
    trainer.fit(tiny_vatt_va(per, 2), train_dataloaders=DataLoader(Samples(batch), batch_size=8))
    got = torch.load(tmp_path / "c.pt", weights_only=True)
    assert got["losses"][0] == pytest.approx(expected_loss, abs=1e-5)
    assert set(got["grads"]) == set(expected)
    for key, grad in expected.items():
        torch.testing.assert_close(got["grads"][key], grad, atol=1e-5, rtol=1e-4, msg=lambda m: f"{key}: {m}")
