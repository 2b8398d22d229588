"""Published checkpoints: the TF layout options (hand-worked), the TF-free checkpoint reader, and each converter end to end.

Fixtures are written by the tests in the published formats: MIL-NCE's PyTorch state dict and numpy
word list, MMV's Haiku parameter names (as ``.npz`` and, with TensorFlow installed, as a SavedModel).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from versanet.checkpoint import load_pretrained, safe_load
from versanet.cli import main
from versanet.data.dmvr_audio import DmvrLogMel, linear_to_mel_weight_matrix
from versanet.data.transforms import RawClip
from versanet.data.vocab_text import DMVR_PUNCTUATION, VocabularyTokenize
from versanet.encoders.mmv.s3dg import INCEPTION_WIDTHS, S3DG, _MaxPool3d, space_to_depth
from versanet.encoders.mmv.tsm_resnet import TemporalShift, TSMResNet
from versanet.weights.layout import ConversionError, swap_shifted_channels
from versanet.weights.tf_bundle import read_tf_variables


# ----------------------------------------------------------------------------- layout pieces, by hand
def test_space_to_depth_stem_layout_and_parameter_count() -> None:
    x = torch.arange(2 * 3 * 4 * 6 * 8, dtype=torch.float32).reshape(2, 3, 4, 6, 8)
    s2d = space_to_depth(x)
    assert s2d.shape == (2, 24, 2, 3, 4)
    for dt, dh, dw, c in [(0, 0, 0, 0), (1, 0, 1, 2), (0, 1, 1, 1), (1, 1, 0, 0)]:
        torch.testing.assert_close(s2d[:, dt * 12 + dh * 6 + dw * 3 + c], x[:, c, dt::2, dh::2, dw::2], rtol=0, atol=0)
    assert S3DG(stem="space_to_depth").num_parameters() == 9_146_000
    # the stem conv with one tap: output(t, h, w) = s2d[ch](t + kt, h + kh - 1, w + kw - 1), zero outside (pads (0,1),(1,2),(1,2))
    stem = S3DG(stem="space_to_depth", width_multiplier=1 / 64).blocks.conv_1a
    conv = stem.layers[0]
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 7, 1, 0, 3] = 1.0
    out = conv(s2d)
    padded = F.pad(s2d[:, 7:8], (1, 2, 1, 2, 0, 1))
    torch.testing.assert_close(out[:, 0], padded[:, 0, 1:3, 0:3, 3:7], rtol=0, atol=0)
    assert out[0, 0, 1, 0, 2].item() == 0.0  # w + 3 - 1 = 4 is past the last column (padding)


@pytest.mark.parametrize("size, same, fixed", [(5, [1, 3, 4], [2, 4, 4]), (6, [2, 4, 5], [2, 4, 5])])
def test_pool_padding_tf_same_and_the_milnce_port_at_odd_and_even_sizes(size: int, same: list[int], fixed: list[int]) -> None:
    x = torch.arange(size, dtype=torch.float32).view(1, 1, 1, 1, size)
    assert _MaxPool3d((1, 1, 3), (1, 1, 2), "tf_same")(x).flatten().tolist() == same   # pads (1, 1) at 5, (0, 1) at 6, -inf
    assert _MaxPool3d((1, 1, 3), (1, 1, 2), "tf_fixed")(x).flatten().tolist() == fixed  # always (0, 1) zeros + ceil_mode


def test_resnet_tf_same_padding_is_asymmetric_at_stride_two() -> None:
    net = TSMResNet(layers=(1, 1, 1, 1), channels=(16, 16, 32, 32), stem_chs=8, padding="tf_same").backbone
    x = torch.randn(1, 3, 15, 16)
    stem = net.stem.conv
    # 7x7/2: 15 rows -> 8 outputs, total pad 7*2+7-15 = 6 -> (3, 3); 16 cols -> 7*2+7-16 = 5 -> (2, 3)
    torch.testing.assert_close(stem(x), F.conv2d(F.pad(x, (2, 3, 3, 3)), stem.weight, stride=2))
    y = torch.rand(1, 8, 7, 8)
    pooled = net.stem.pool(y)  # 3x3/2 max: 7 -> (1, 1), 8 -> (0, 1), padded with -inf
    torch.testing.assert_close(pooled, F.max_pool2d(F.pad(y, (0, 1, 1, 1), value=-math.inf), 3, 2))
    conv = net.stages[1].blocks[0].conv2  # the 3x3/2 conv of stage 1
    z = torch.randn(1, conv.in_channels, 8, 7)
    torch.testing.assert_close(conv(z), F.conv2d(F.pad(z, (1, 1, 0, 1)), conv.weight, stride=2))


def _mmv_shift(x: torch.Tensor, frames: int, fraction: float = 1 / 8) -> torch.Tensor:
    """MMV's temporal_shift_gpu on ``[(B T), C, H, W]``: concat[last n from t+1, middle, first n from t-1]."""
    v = x.view(-1, frames, *x.shape[1:])
    n = int(x.shape[1] * fraction)
    back = F.pad(v[:, 1:, -n:], (0, 0, 0, 0, 0, 0, 0, 1))
    fwd = F.pad(v[:, :-1, :n], (0, 0, 0, 0, 0, 0, 1, 0))
    return torch.cat([back, v[:, :, n:-n], fwd], dim=2).view_as(x)


def test_tsm_channel_permutation_makes_versanet_shift_equal_mmv() -> None:
    w = torch.arange(16, dtype=torch.float32).view(1, 16, 1, 1).expand(2, 16, 1, 1)
    assert swap_shifted_channels(w)[0, :, 0, 0].tolist() == [14, 15, *range(2, 14), 0, 1]
    torch.manual_seed(0)
    x, w = torch.randn(2 * 4, 16, 3, 3), torch.randn(5, 16, 1, 1)
    shift = TemporalShift(1 / 8, num_frames=4)
    torch.testing.assert_close(F.conv2d(shift(x), swap_shifted_channels(w)), F.conv2d(_mmv_shift(x, 4), w))


def test_word2vec_text_max_over_padding() -> None:
    from versanet.encoders.mmv.word2vec_text import Word2VecTextEncoder

    enc = Word2VecTextEncoder(vocab_size=5, embed_dim=3, out_dim=4, pool_padding=True)
    ids = torch.tensor([[2, 0, 0]])
    h = torch.relu(enc.proj(enc.table[ids]))
    torch.testing.assert_close(enc(ids), h.amax(dim=1))  # padding rows (table row 0) take part
    enc.pool_padding = False
    torch.testing.assert_close(enc(ids), h[:, 0])


def test_dmvr_log_mel_frames_and_mel_matrix() -> None:
    transform = DmvrLogMel()
    wave = np.random.default_rng(0).uniform(-1, 1, 153_600).astype(np.float32)
    logmel, mask = transform(RawClip("v", 0.0, 3.2, False, audio=wave, audio_rate=48000))
    assert logmel.shape == (1, 150, 80) and mask.item()
    # frame 149 starts at 149 * 1024 and runs 1024 samples past the end (zero padding at the end, no centring)
    frame = np.zeros(2048, np.float64)
    frame[:1024] = wave[149 * 1024 :]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2048) / 2048)  # periodic Hann
    mag = np.abs(np.fft.rfft(frame * window))
    # TF's triangles, by hand for band 10: edges are mel-equispaced between 80 and 7600 Hz
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    edges = np.linspace(mel(80.0), mel(7600.0), 82)
    freqs = np.linspace(0, 24000, 1025)
    band = np.clip(np.minimum((mel(freqs) - edges[10]) / (edges[11] - edges[10]), (edges[12] - mel(freqs)) / (edges[12] - edges[11])), 0, None)
    band[0] = 0.0
    np.testing.assert_allclose(linear_to_mel_weight_matrix()[:, 10].numpy(), band, atol=1e-6)
    np.testing.assert_allclose(logmel[0, 149, 10].item(), np.log(mag @ band + 1e-6), rtol=1e-4)


def test_dmvr_log_mel_matches_tensorflow() -> None:
    tf = pytest.importorskip("tensorflow")
    wave = np.random.default_rng(1).uniform(-1, 1, 48_000).astype(np.float32)
    stft = tf.signal.stft(wave, 2048, 1024, 2048, window_fn=tf.signal.hann_window, pad_end=True)
    matrix = tf.signal.linear_to_mel_weight_matrix(80, 1025, 48000, 80.0, 7600.0)
    expected = tf.math.log(tf.tensordot(tf.abs(stft), matrix, 1) + 1e-6).numpy()
    np.testing.assert_allclose(linear_to_mel_weight_matrix().numpy(), matrix.numpy(), atol=2e-5)  # TF rounds in float32
    ours = DmvrLogMel()(RawClip("v", 0.0, 1.0, False, audio=wave, audio_rate=48000))[0][0].numpy()
    np.testing.assert_allclose(ours, expected, atol=2e-4)


# ----------------------------------------------------------------------------- MIL-NCE
def _milnce_state(vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the key names and shapes of antoine77340/S3D_HowTo100M's ``S3D`` (full width, small vocabulary)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def unit(name: str, cin: int, cout: int, kernel: tuple[int, int, int], separable: bool = False) -> None:
        kt, kh, kw = kernel
        shapes = [(cout, cin, 1, kh, kw), (cout, cout, kt, 1, 1)] if separable else [(cout, cin, kt, kh, kw)]
        for i, shape in enumerate(shapes, 1):
            state[f"{name}.conv{i}.weight"] = torch.randn(shape, generator=g) * 0.1
            state[f"{name}.bn{i}.weight"] = torch.rand(cout, generator=g) + 0.5
            state[f"{name}.bn{i}.bias"] = torch.randn(cout, generator=g) * 0.1
            state[f"{name}.bn{i}.running_mean"] = torch.randn(cout, generator=g) * 0.1
            state[f"{name}.bn{i}.running_var"] = torch.rand(cout, generator=g) + 0.5
            state[f"{name}.bn{i}.num_batches_tracked"] = torch.tensor(7)

    def gate(name: str, c: int) -> None:
        state[f"{name}.fc.weight"], state[f"{name}.fc.bias"] = torch.randn(c, c, generator=g) * 0.1, torch.randn(c, generator=g)

    unit("conv1", 24, 64, (2, 4, 4))
    unit("conv_2b", 64, 64, (1, 1, 1))
    unit("conv_2c", 64, 192, (3, 3, 3), separable=True)
    gate("gating", 192)
    cin = 192
    for name, (b0, b1a, b1b, b2a, b2b, b3) in INCEPTION_WIDTHS.items():
        unit(f"{name}.conv_b0", cin, b0, (1, 1, 1))
        unit(f"{name}.conv_b1_a", cin, b1a, (1, 1, 1))
        unit(f"{name}.conv_b1_b", b1a, b1b, (3, 3, 3), separable=True)
        unit(f"{name}.conv_b2_a", cin, b2a, (1, 1, 1))
        unit(f"{name}.conv_b2_b", b2a, b2b, (3, 3, 3), separable=True)
        unit(f"{name}.conv_b3_b", cin, b3, (1, 1, 1))
        for i, c in enumerate((b0, b1b, b2b, b3)):
            gate(f"{name}.gating_b{i}", c)
        cin = b0 + b1b + b2b + b3
    state["fc.weight"], state["fc.bias"] = torch.randn(512, 1024, generator=g) * 0.03, torch.randn(512, generator=g)
    state["text_module.word_embd.weight"] = torch.randn(vocab, 300, generator=g)
    state["text_module.fc1.weight"], state["text_module.fc1.bias"] = torch.randn(2048, 300, generator=g) * 0.05, torch.randn(2048, generator=g)
    state["text_module.fc2.weight"], state["text_module.fc2.bias"] = torch.randn(512, 2048, generator=g) * 0.02, torch.randn(512, generator=g)
    return state


def test_milnce_s3d_converts_into_a_self_contained_checkpoint(tmp_path: Path) -> None:
    words = np.array(["cut", "the", "tomato", "don't", "open", "door"])
    state = _milnce_state(vocab=len(words) + 3)
    torch.save(state, tmp_path / "s3d_howto100m.pth")
    np.save(tmp_path / "s3d_dict.npy", words)
    out = tmp_path / "milnce.ckpt"
    main(["weights", "convert", "--from", "milnce_s3d", str(tmp_path / "s3d_howto100m.pth"), str(out)])

    model = load_pretrained(out)
    ours = model.state_dict()
    assert ours["encoders.video.blocks.conv_1a.layers.0.weight"] is not None
    torch.testing.assert_close(ours["encoders.video.blocks.conv_1a.layers.0.weight"], state["conv1.conv1.weight"])
    torch.testing.assert_close(ours["encoders.video.blocks.mixed_4e.branch_2.1.layers.4.running_var"], state["mixed_4e.conv_b2_b.bn2.running_var"])
    torch.testing.assert_close(ours["encoders.video.blocks.mixed_5c.branch_3.1.gate.fc.weight"], state["mixed_5c.gating_b3.fc.weight"])
    torch.testing.assert_close(ours["encoders.video.blocks.conv_2c.gate.fc.bias"], state["gating.fc.bias"])
    torch.testing.assert_close(ours["heads.text->vt.proj.weight"], state["text_module.fc2.weight"])
    assert model.encoders["video"].num_parameters() == 9_146_000
    # every source tensor landed somewhere, exactly once
    assert sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked")) == sum(
        v.numel() for k, v in ours.items() if not k.endswith("num_batches_tracked") and not k.startswith("terms.")
    )

    # text: MIL-NCE's rule (lowercase, [\w']+ words, unknown words dropped, id = index + 1), by hand
    text = model.transforms["text"]
    assert text.encode(["Cut the TOMATO, quickly! Don't"])[0, :5].tolist() == [1, 2, 3, 4, 0]
    ids = text.encode(["open door"])
    emb = state["text_module.word_embd.weight"][ids[0]]  # 16 rows: 2 words then 14 x the padding row 0
    expected = torch.relu(emb @ state["text_module.fc1.weight"].T + state["text_module.fc1.bias"]).amax(0)
    expected = expected @ state["text_module.fc2.weight"].T + state["text_module.fc2.bias"]
    with torch.no_grad():
        got = model.heads["text->vt"](model.encoders["text"](ids))
    torch.testing.assert_close(got[0], expected, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        assert model({"video": torch.rand(1, 3, 8, 32, 32)})["video@vt"].shape == (1, 512)
    assert safe_load(out)["versanet"]["converted_from"]["format"] == "milnce_s3d"
    assert VocabularyTokenize(checkpoint=str(out)).encode(["door"])[0, 0].item() == 6
    # MIL-NCE's evaluation ranks by the raw dot product; the checkpoint says so, and carries its clip geometry
    assert [(r.query, r.gallery, r.fusion) for r in model.graph.retrieval] == [("text", ["video"], "sum_dot")]
    assert model.clip == {"num_frames": 32, "fps": 10.0}


def test_milnce_converter_refuses_a_wrong_file(tmp_path: Path) -> None:
    state = _milnce_state(vocab=4)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    np.save(tmp_path / "s3d_dict.npy", np.array(["a", "b"]))
    from versanet.weights.convert import convert

    with pytest.raises(ConversionError, match="extra.weight"):
        convert("milnce_s3d", tmp_path / "bad.pth", tmp_path / "out.ckpt")
    np.save(tmp_path / "s3d_dict.npy", np.array([{"a": 1}], dtype=object))
    del state["extra.weight"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ConversionError, match="never unpickles"):
        convert("milnce_s3d", tmp_path / "bad.pth", tmp_path / "out.ckpt")


# ----------------------------------------------------------------------------- MMV (Haiku names)
def _haiku_unit(params: dict, scope: str, sd: dict, prefix: str, convs: int, gated: bool) -> None:
    """Write one versanet conv unit back into Haiku's layout: conv_3d[_1] w [k..., in, out], batch_norm[_1], self_gating."""
    for i in range(convs):
        suffix = f"_{i}" if i else ""
        params[f"{scope}/conv_3d{suffix}/w"] = sd[f"{prefix}.layers.{3 * i}.weight"].permute(2, 3, 4, 1, 0).numpy()
        _haiku_bn(params, f"{scope}/batch_norm{suffix}", sd, f"{prefix}.layers.{3 * i + 1}", 5)
    if gated:
        params[f"{scope}/self_gating/w"] = sd[f"{prefix}.gate.fc.weight"].T.numpy()
        params[f"{scope}/self_gating/b"] = sd[f"{prefix}.gate.fc.bias"].numpy()


def _haiku_bn(params: dict, scope: str, sd: dict, prefix: str, ndim: int) -> None:
    shape = (1,) * (ndim - 1) + (-1,)
    params[f"{scope}/scale"] = sd[f"{prefix}.weight"].reshape(shape).numpy()
    params[f"{scope}/offset"] = sd[f"{prefix}.bias"].reshape(shape).numpy()
    params[f"{scope}/~/mean_ema/average"] = sd[f"{prefix}.running_mean"].reshape(shape).numpy()
    params[f"{scope}/~/var_ema/average"] = sd[f"{prefix}.running_var"].reshape(shape).numpy()
    params[f"{scope}/~/mean_ema/counter"] = np.zeros((), np.int32)


def _haiku_resnet(params: dict, root: str, stem: str, unit: str, sd: dict, layers: tuple[int, ...]) -> None:
    params[f"{root}/{stem}/w"] = sd["backbone.stem.conv.weight"].permute(2, 3, 1, 0).numpy()
    for i, depth in enumerate(layers):
        for j in range(depth):
            src, dst = f"{root}/{unit}_{i}/block_{j}", f"backbone.stages.{i}.blocks.{j}"
            for k, (conv, norm) in enumerate((("conv1", "norm1"), ("conv2", "norm2"), ("conv3", "norm3"))):
                params[f"{src}/conv_{k}/w"] = sd[f"{dst}.{conv}.weight"].permute(2, 3, 1, 0).numpy()
                _haiku_bn(params, f"{src}/batch_norm" + (f"_{k}" if k else ""), sd, f"{dst}.{norm}", 4)
            if j == 0:
                params[f"{src}/shortcut_conv/w"] = sd[f"{dst}.downsample.conv.weight"].permute(2, 3, 1, 0).numpy()
    _haiku_bn(params, f"{root}/batch_norm", sd, "backbone.norm", 4)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if name.endswith(("running_var", "weight")) and t.dim() == 1 else torch.randn(t.shape, generator=g) * 0.2)


def _mmv_fixture(video: str) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor], tuple[int, ...]]:
    """MMV's Haiku params (tiny widths) and the versanet FAC model they describe (its state dict)."""
    from versanet.encoders.mmv.audio_resnet import AudioResNet50
    from versanet.encoders.mmv.word2vec_text import Word2VecTextEncoder
    from versanet.graph import FAC
    from versanet.models import PretrainModule

    layers = (2, 1, 1, 1)
    small = {"layers": layers, "channels": (32, 32, 64, 64), "stem_chs": 8}
    enc = S3DG(width_multiplier=0.125, stem="space_to_depth", padding="tf_same") if video == "s3d" else TSMResNet(padding="tf_same", **small)
    model = PretrainModule(
        {"video": enc, "audio": AudioResNet50(padding="tf_same", **small), "text": Word2VecTextEncoder(vocab_size=9, embed_dim=6, out_dim=10, pool_padding=True)},
        FAC(va_dim=12, vat_dim=6),
    )
    _randomise(model, 0)
    sd = model.state_dict()
    p: dict[str, np.ndarray] = {}
    v = "audio_text_video_model/visual_module"
    if video == "s3d":
        _haiku_unit(p, f"{v}/S3D/Conv2d_1a_7x7", sd, "encoders.video.blocks.conv_1a", 1, False)
        _haiku_unit(p, f"{v}/S3D/Conv2d_2b_1x1", sd, "encoders.video.blocks.conv_2b", 1, False)
        _haiku_unit(p, f"{v}/S3D/Conv2d_2c_3x3", sd, "encoders.video.blocks.conv_2c", 2, True)
        for name in INCEPTION_WIDTHS:
            s, d = f"{v}/S3D/{name.capitalize()}", f"encoders.video.blocks.{name}"
            _haiku_unit(p, f"{s}/Branch_0_Conv2d_0a_1x1", sd, f"{d}.branch_0", 1, True)
            _haiku_unit(p, f"{s}/Branch_1_Conv2d_0a_1x1", sd, f"{d}.branch_1.0", 1, False)
            _haiku_unit(p, f"{s}/Branch_1_Conv2d_0b_3x3", sd, f"{d}.branch_1.1", 2, True)
            _haiku_unit(p, f"{s}/Branch_2_Conv2d_0a_1x1", sd, f"{d}.branch_2.0", 1, False)
            _haiku_unit(p, f"{s}/Branch_2_Conv2d_0b_3x3", sd, f"{d}.branch_2.1", 2, True)
            _haiku_unit(p, f"{s}/Branch_3_Conv2d_0b_1x1", sd, f"{d}.branch_3.1", 1, True)
    else:
        vsd = {k.removeprefix("encoders.video."): t for k, t in sd.items() if k.startswith("encoders.video.")}
        _haiku_resnet(p, f"{v}/TSMResNetV2", "tsm_resnet_stem", "tsm_resnet_unit", vsd, layers)
    asd = {k.removeprefix("encoders.audio."): t for k, t in sd.items() if k.startswith("encoders.audio.")}
    _haiku_resnet(p, "audio_text_video_model/audio_module/res_net_v2", "initial_conv", "block_group", asd, layers)
    t = "audio_text_video_model/text_module"
    p[f"{t}/embed/embeddings"] = sd["encoders.text.table"].numpy()
    p[f"{t}/text_conv1/w"] = sd["encoders.text.proj.weight"].T[None].numpy()
    p[f"{t}/text_conv1/b"] = sd["encoders.text.proj.bias"].numpy()
    m = "audio_text_video_model"
    for scope, prefix, bias in [("vid2audio_embd/final_projection_inner", "heads.video->va.proj.0", True), ("vid2audio_embd/final_projection", "heads.video->va.proj.3", False),
                                ("vis_embd/final_projection", "heads.video@va->vat.proj.1", True), ("audio_embd/final_projection", "heads.audio->va.proj", True),
                                ("txt_embd/final_projection", "heads.text->vat.proj", True)]:
        p[f"{m}/{scope}/w"] = sd[f"{prefix}.weight"].T.numpy()
        if bias:
            p[f"{m}/{scope}/b"] = sd[f"{prefix}.bias"].numpy()
    for scope, prefix in [("vid2audio_embd/batch_norm", "heads.video->va.proj.1"), ("vid2audio_embd/batch_norm_1", "heads.video->va.proj.4"), ("vis_embd/batch_norm", "heads.video@va->vat.proj.2")]:
        _haiku_bn(p, f"{m}/{scope}", sd, prefix, 2)
    p[f"{m}/audio2txt_embd/final_projection/w"] = np.zeros((64, 6), np.float32)  # trained, unused at evaluation
    return p, sd, layers


def _write_vocab(path: Path) -> Path:
    path.write_text("<pad>\n<bos>\n<eos>\n<unk>\nopen\nthe\ndoor\ncut\ntomato\n", encoding="utf-8")
    return path


def _check_mmv(out: Path, sd: dict[str, torch.Tensor], video: str) -> None:
    model = load_pretrained(out)
    ours = model.state_dict()
    assert set(ours) == set(sd)
    for key, value in sd.items():
        if video != "s3d" and key.startswith("encoders.video.") and key.endswith("conv1.weight"):
            value = swap_shifted_channels(value)  # MMV's shift order, converted
        if not key.endswith("num_batches_tracked") and not key.startswith("terms."):  # terms are not published
            torch.testing.assert_close(ours[key], value, rtol=0, atol=0, msg=key)
    text = model.transforms["text"]
    assert text.encode(["Open the door, Bob!"])[0, :5].tolist() == [4, 5, 6, 3, 0]  # dmvr: punctuation deleted, unknown -> <unk> (3)
    assert type(model.transforms["audio"]).__name__ == "DmvrLogMel"


@pytest.mark.parametrize("video", ["s3d", "tsm"])
def test_mmv_haiku_npz_converts(tmp_path: Path, video: str) -> None:
    params, sd, _ = _mmv_fixture(video)
    np.savez(tmp_path / "mmv.npz", **params)
    out = tmp_path / "mmv.ckpt"
    main(["weights", "convert", "--from", "mmv_haiku_npz", str(tmp_path / "mmv.npz"), str(out), "--vocab", str(_write_vocab(tmp_path / "vocab.txt"))])
    _check_mmv(out, sd, video)


_WRITE_SAVED_MODEL = """
import sys, numpy as np, tensorflow as tf
arrays = np.load(sys.argv[1])
class Exported(tf.Module):
    def __init__(self):
        super().__init__()
        self.params = [tf.Variable(arrays[k], name=k.replace("/~/", "/")) for k in arrays.files]
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def scale(self, x):
        return x * 2.0
tf.saved_model.save(Exported(), sys.argv[2])
"""


def test_mmv_tfhub_saved_model_converts(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    params, sd, _ = _mmv_fixture("tsm")
    np.savez(tmp_path / "mmv.npz", **params)
    saved = tmp_path / "tsm-resnet50"
    subprocess.run([sys.executable, "-c", _WRITE_SAVED_MODEL, str(tmp_path / "mmv.npz"), str(saved)], check=True, capture_output=True)
    _write_vocab(saved / "assets" / "vocab.txt") if (saved / "assets").mkdir(exist_ok=True) is None else None
    names = read_tf_variables(saved)
    assert "audio_text_video_model/text_module/text_conv1/w" in names
    np.testing.assert_array_equal(names["audio_text_video_model/visual_module/TSMResNetV2/tsm_resnet_stem/w"], params["audio_text_video_model/visual_module/TSMResNetV2/tsm_resnet_stem/w"])
    out = tmp_path / "mmv.ckpt"
    main(["weights", "convert", "--from", "mmv_tfhub", str(saved), str(out)])
    _check_mmv(out, sd, "tsm")


def test_vocabulary_tokenize_dmvr_rule() -> None:
    tok = VocabularyTokenize(pattern=r"\S+", first_id=0, unknown="id", unknown_id=3, delete=DMVR_PUNCTUATION, max_tokens=4)
    tok.set_words(["<pad>", "<bos>", "<eos>", "<unk>", "dont", "stop"])
    assert tok.encode(["Don't STOP... now"]).tolist() == [[4, 5, 3, 0]]

