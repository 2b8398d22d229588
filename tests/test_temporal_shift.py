"""TemporalShift against hand-written expected tensors, and its place inside the TSM bottleneck."""

from __future__ import annotations

import copy

import pytest
import torch
from einops import rearrange
from timm.models.resnetv2 import PreActBottleneck
from torch import nn

from versanet.encoders.mmv.tsm_resnet import TemporalShift, TSMBottleneck, TSMResNet, resnetv2


pytestmark = pytest.mark.usefixtures("one_thread")


def _clips(b: int, t: int, c: int) -> torch.Tensor:
    """``[(b t), c, 1, 1]`` with value 1000*(clip+1) + 100*(frame+1) + channel (never 0)."""
    x = torch.tensor([[[1000 * (i + 1) + 100 * (j + 1) + k for k in range(c)] for j in range(t)] for i in range(b)], dtype=torch.float32)
    return rearrange(x, "b t c -> (b t) c 1 1")


def _expected(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)[:, :, None, None]


def test_shift_one_eighth_of_eight_channels():
    # B=1, T=3, C=8, fraction 1/8 -> n=1: channel 0 from frame t-1, channel 7 from frame t+1
    shift = TemporalShift(1 / 8, num_frames=3)
    out = shift(_clips(1, 3, 8))
    expected = _expected([
        [0, 1101, 1102, 1103, 1104, 1105, 1106, 1207],  # t=0: nothing before it
        [1100, 1201, 1202, 1203, 1204, 1205, 1206, 1307],  # t=1
        [1200, 1301, 1302, 1303, 1304, 1305, 1306, 0],  # t=2: nothing after it
    ])
    assert torch.equal(out, expected)


def test_shift_two_channels_each_way_two_clips():
    # B=2, T=2, C=8, fraction 1/4 -> n=2; clips must not leak into each other
    shift = TemporalShift(1 / 4, num_frames=2)
    out = shift(_clips(2, 2, 8))
    expected = _expected([
        [0, 0, 1102, 1103, 1104, 1105, 1206, 1207],  # clip 0, t=0
        [1100, 1101, 1202, 1203, 1204, 1205, 0, 0],  # clip 0, t=1
        [0, 0, 2102, 2103, 2104, 2105, 2206, 2207],  # clip 1, t=0
        [2100, 2101, 2202, 2203, 2204, 2205, 0, 0],  # clip 1, t=1
    ])
    assert torch.equal(out, expected)


def test_shift_sixteen_channels_default_fraction_with_space():
    # C=16, default 1/8 -> n=2; every pixel of a frame moves together
    shift = TemporalShift(num_frames=3)
    x = _clips(1, 3, 16).expand(-1, -1, 2, 3).contiguous()
    out = shift(x)
    expected = _expected([
        [0, 0, *range(1102, 1114), 1214, 1215],
        [1100, 1101, *range(1202, 1214), 1314, 1315],
        [1200, 1201, *range(1302, 1314), 0, 0],
    ]).expand(-1, -1, 2, 3)
    assert torch.equal(out, expected)


def test_shift_rounds_channel_count_down():
    # C=12, fraction 1/8 -> n = int(1.5) = 1
    out = TemporalShift(1 / 8, num_frames=2)(_clips(1, 2, 12))
    expected = _expected([
        [0, *range(1101, 1111), 1211],
        [1100, *range(1201, 1211), 0],
    ])
    assert torch.equal(out, expected)


def test_disabled_shift_is_identity_and_enabled_by_default():
    shift = TemporalShift(1 / 8, num_frames=3)
    assert shift.enabled is True
    x = _clips(1, 3, 8)
    shift.enabled = False
    assert torch.equal(shift(x), x)


def test_shift_keeps_channels_last_and_its_gradient_is_the_reverse_shift():
    x = _clips(1, 3, 8).expand(-1, -1, 2, 2).contiguous(memory_format=torch.channels_last).requires_grad_()
    shift = TemporalShift(1 / 8, num_frames=3)
    out = shift(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, shift(x.detach().contiguous()))
    weight = torch.randn_like(out)
    out.backward(weight)
    # d out[t, 0] / d x[t-1, 0] = 1, d out[t, 7] / d x[t+1, 7] = 1, middle channels identity
    expected = torch.zeros_like(weight)
    expected[:, 1:7] = weight[:, 1:7]
    expected[:2, 0] = weight[1:, 0]
    expected[1:, 7] = weight[:2, 7]
    assert torch.equal(x.grad, expected)


def test_shift_checks_its_input():
    with pytest.raises(ValueError):
        TemporalShift(0.6)
    with pytest.raises(RuntimeError):
        TemporalShift(1 / 8)(torch.zeros(3, 8, 1, 1))
    with pytest.raises(ValueError):
        TemporalShift(1 / 8, num_frames=2)(torch.zeros(3, 8, 1, 1))


def _block(in_chs: int, out_chs: int, stride: int) -> PreActBottleneck:
    """A timm pre-activation bottleneck as ResNetV2 builds it (BN, plain convs), in eval mode."""
    if stride == 1:
        block = resnetv2(layers=(1,), channels=(out_chs,), stem_chs=in_chs).stages[0].blocks[0]
    else:  # a stride-2 projection block, as the first block of stages 2-4
        block = resnetv2(layers=(1, 1), channels=(in_chs, out_chs), stem_chs=in_chs).stages[1].blocks[0]
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.5), m.bias.normal_(0.0, 0.5)
                m.running_mean.normal_(), m.running_var.uniform_(0.5, 2.0)
    return block.eval()


@pytest.mark.parametrize("stride", [1, 2])
def test_bottleneck_shifts_only_the_residual_branch(stride):
    torch.manual_seed(0)
    block = _block(16, 32, stride)
    assert block.downsample is not None  # projection shortcut in both cases (16 -> 32 channels)
    tsm = TSMBottleneck.from_block(copy.deepcopy(block), shift_fraction=1 / 8).eval()
    tsm.shift.num_frames = 3
    x = torch.randn(2 * 3, 16, 8, 8)
    with torch.no_grad():
        # by hand: shortcut from the UNshifted pre-activation, shift before conv1 only
        pre = block.norm1(x)
        shifted = TemporalShift(1 / 8, num_frames=3)(pre)
        expected = block.conv3(block.norm3(block.conv2(block.norm2(block.conv1(shifted))))) + block.downsample(pre)
        assert torch.allclose(tsm(x), expected, atol=1e-5)
        # shift off: exactly timm's block
        tsm.shift.enabled = False
        assert torch.allclose(tsm(x), block(x), atol=1e-6)


def test_every_block_of_the_network_shifts_and_can_be_turned_off():
    torch.manual_seed(0)
    enc = TSMResNet(**TSMResNet.contract_kwargs).eval()
    assert len(enc.shifts()) == sum(len(s.blocks) for s in enc.backbone.stages) == 4
    assert all(isinstance(b, TSMBottleneck) for s in enc.backbone.stages for b in s.blocks)
    video = torch.rand(2, 3, 4, 32, 32)
    with torch.no_grad():
        shifted = enc(video)
        enc.set_temporal_shift(False)
        plain = enc(video)
        # shift off = the 2D network frame by frame, features averaged over frames
        frames = rearrange(video, "n c t h w -> (n t) c h w")
        per_frame = rearrange(enc.backbone.forward_features(frames).mean(dim=(2, 3)), "(n t) c -> n t c", t=4).mean(1)
    assert torch.allclose(plain, per_frame, atol=1e-5)
    assert not torch.allclose(shifted, plain, atol=1e-3)
    assert [s.num_frames for s in enc.shifts()] == [4] * 4  # taken from the input
