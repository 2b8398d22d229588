"""MMV's backbones: exact parameter counts, output sizes, checkpointing, bf16 autocast, log-mel front end."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from versanet import registry
from versanet.data.transforms import RawClip
from versanet.encoders.mmv.audio_resnet import DMVR_LOGMEL, AudioResNet50, dmvr_logmel, logmel_frames
from versanet.encoders.mmv.r2plus1d import R2Plus1D18
from versanet.encoders.mmv.s3dg import S3DG, SafeConv3d, SelfGating, _tf_same_pad
from versanet.encoders.mmv.tsm_resnet import TSMResNet50, TSMResNet50x2

MINE = [S3DG, TSMResNet50, TSMResNet50x2, R2Plus1D18, AudioResNet50]


pytestmark = pytest.mark.usefixtures("one_thread")


# (class, constructor kwargs, trainable parameters, out_dim) -- docs/method.md, "Backbones"
FULL_SIZE = [
    (S3DG, {}, 9_162_704, 1024),
    (TSMResNet50, {}, 23_500_352, 2048),
    (TSMResNet50x2, {}, 93_891_712, 4096),
    (R2Plus1D18, {}, 31_300_125, 512),
    (R2Plus1D18, {"paper_midplanes": True}, 33_165_639, 512),
    (AudioResNet50, {}, 23_494_080, 2048),
]


@pytest.mark.parametrize("cls, kwargs, params, out_dim", FULL_SIZE, ids=lambda v: getattr(v, "__name__", None))
def test_exact_parameter_count_and_output_size(cls, kwargs, params, out_dim):
    torch.manual_seed(0)
    enc = cls(**kwargs)
    assert enc.num_parameters() == params
    assert enc.out_dim == out_dim
    # running statistics are buffers, not parameters
    assert sum(p.numel() for p in enc.parameters()) == params
    enc.eval()
    with torch.no_grad():
        y = enc(enc.example_input(1))
    assert y.shape == (1, out_dim)
    assert torch.isfinite(y).all()


def test_registered_under_their_class_names():
    for cls in MINE:
        assert registry.get("encoder", cls.__name__) is cls


def test_s3dg_structure():
    enc = S3DG()
    gates = [m for m in enc.modules() if isinstance(m, SelfGating)]
    assert len(gates) == 1 + 9 * 4  # conv_2c + every branch of the 9 inception blocks
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv3d)]
    assert not any(c.bias is not None for c in convs)
    assert sum(c.kernel_size == (3, 1, 1) for c in convs) == 1 + 9 * 2  # temporal halves of separable convs
    assert convs[0].kernel_size == (7, 7, 7) and convs[0].stride == (2, 2, 2) and convs[0].in_channels == 3
    assert S3DG(gating=False).num_parameters() == 9_162_704 - sum(g.fc.weight.numel() + g.fc.bias.numel() for g in gates)
    # downsampling: T / 8, H / 32, W / 32 (rounded up)
    enc.eval()
    with torch.no_grad():
        assert enc.forward_features(torch.rand(1, 3, 8, 64, 96)).shape == (1, 1024, 1, 2, 3)


def test_s3dg_tf_same_padding():
    x = torch.ones(1, 1, 8, 8, 8)
    padded = _tf_same_pad(x, (7, 7, 7), (2, 2, 2))
    assert padded.shape == (1, 1, 13, 13, 13)  # 2 before, 3 after
    assert padded[0, 0, 2, 2, 2] == 1 and padded[0, 0, 1, 2, 2] == 0 and padded[0, 0, 9, 2, 2] == 1 and padded[0, 0, 10, 2, 2] == 0
    torch.manual_seed(0)
    sym = S3DG(**S3DG.contract_kwargs).eval()
    same = S3DG(**S3DG.contract_kwargs, padding="tf_same").eval()
    same.load_state_dict(sym.state_dict())  # same parameters and keys
    video = torch.rand(1, 3, 8, 64, 64)
    with torch.no_grad():
        assert sym.forward_features(video).shape == same.forward_features(video).shape


def _tiny(cls):
    return cls(**cls.contract_kwargs)


@pytest.mark.parametrize("cls", MINE, ids=lambda c: c.__name__)
def test_grad_checkpointing_gives_the_same_outputs_and_gradients(cls):
    torch.manual_seed(0)
    plain = _tiny(cls).train()
    ckpt = copy.deepcopy(plain)
    ckpt.set_grad_checkpointing(True)
    assert cls(**cls.contract_kwargs, grad_checkpointing=True).grad_checkpointing
    x = plain.example_input(2)
    y_plain, y_ckpt = plain(x), ckpt(x)
    torch.testing.assert_close(y_ckpt, y_plain)
    weight = torch.randn_like(y_plain)
    (y_plain * weight).sum().backward()
    (y_ckpt * weight).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("cls", MINE, ids=lambda c: c.__name__)
def test_bf16_autocast_forward_and_backward(cls):
    torch.manual_seed(0)
    enc = _tiny(cls).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = enc(enc.example_input(2))
    assert y.shape == (2, enc.out_dim) and torch.isfinite(y.float()).all()
    y.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)


@pytest.mark.parametrize("frames, kernel", [(2, (3, 1, 1)), (4, (5, 1, 1)), (4, (7, 7, 7)), (6, (7, 7, 7))])
def test_bf16_conv3d_weight_gradient_where_onednn_gets_it_wrong(frames, kernel):
    # oneDNN's CPU bf16 Conv3d weight gradient is garbage when the input is shorter than the kernel
    torch.manual_seed(0)
    conv = SafeConv3d(16, 16, kernel, padding=tuple(k // 2 for k in kernel), bias=False)
    x = torch.randn(2, 16, frames, 8, 8)
    grad_out = torch.randn_like(conv(x))
    (conv(x) * grad_out).sum().backward()
    ref, conv.weight.grad = conv.weight.grad, None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    assert y.dtype == torch.bfloat16
    (y.float() * grad_out).sum().backward()
    assert (conv.weight.grad - ref).abs().max() <= 0.02 * ref.abs().max()


def test_bf16_autocast_full_size_s3dg():
    enc = S3DG().eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = enc(enc.example_input(1))
    assert y.shape == (1, 1024) and torch.isfinite(y.float()).all()


@pytest.mark.parametrize("cls", [TSMResNet50, AudioResNet50], ids=lambda c: c.__name__)
def test_channels_last_gives_the_same_result(cls):
    torch.manual_seed(0)
    ref = _tiny(cls).eval()
    fast = cls(**cls.contract_kwargs, channels_last=True).eval()
    fast.load_state_dict(ref.state_dict())
    x = ref.example_input(2)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), ref(x), rtol=1e-4, atol=1e-5)


def test_tsm_takes_the_number_of_frames_from_each_input():
    torch.manual_seed(0)
    enc = _tiny(TSMResNet50).eval()
    with torch.no_grad():
        for t in (4, 2, 3):
            video = torch.rand(2, 3, t, 32, 32)
            assert enc(video).shape == (2, enc.out_dim)
            assert {s.num_frames for s in enc.shifts()} == {t}
            # clip 1 alone gives the same feature as in the batch (no mixing across clips)
            torch.testing.assert_close(enc(video[1:])[0], enc(video)[1], rtol=1e-4, atol=1e-5)


def test_dmvr_logmel_feeds_the_audio_resnet():
    assert logmel_frames(3.2) == 151
    transform = dmvr_logmel()
    assert transform.spec() == {"sample_rate": 48000, "n_mels": 80}
    assert DMVR_LOGMEL["n_fft"] == 2048 and DMVR_LOGMEL["hop_length"] == 1024
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(153_600)).astype(np.float32)  # 3.2 s at 48 kHz
    clip = RawClip("v", 0.0, 3.2, train=True, audio=wave, audio_rate=48_000)
    logmel, mask = transform(clip)
    assert logmel.shape == (1, 151, 80) and bool(mask.all())
    enc = AudioResNet50().eval()
    with torch.no_grad():
        y = enc(logmel.unsqueeze(0))
    assert y.shape == (1, 2048) and torch.isfinite(y).all()
