"""MCN's networks: ResDAVEnet's shapes, parameter count and pooling; the sentence max-pool; pre-extracted features."""

from __future__ import annotations

import torch

from versanet.encoders.mcn.precomputed import PrecomputedFeatures
from versanet.encoders.mcn.resdavenet import ResDAVEnet
from versanet.encoders.mcn.text import SentenceMaxPool


def test_resdavenet_downsamples_time_16x_and_has_the_reference_parameter_count(one_thread) -> None:
    net = ResDAVEnet()
    # the reference's 44,670,978 less its unused BatchNorm2d(1) (2 parameters)
    assert net.num_parameters() == 44_670_976
    small = ResDAVEnet(widths=(8, 8, 8, 16, 16), depths=(2, 2, 2, 2)).eval()
    with torch.no_grad():
        assert small.forward_features(torch.randn(1, 40, 1000)).shape == (1, 16, 63)  # 1000 -> 500 -> 250 -> 125 -> 63
        assert small(torch.randn(2, 40, 1000)).shape == (2, 16)


def test_resdavenet_pools_real_frames_in_evaluation_and_all_frames_in_training(one_thread) -> None:
    torch.manual_seed(0)
    net = ResDAVEnet(widths=(8, 8, 8, 16, 16), depths=(1, 1, 1, 1)).eval()
    spec = torch.randn(2, 40, 320)
    mask_row = torch.zeros(2, 1, 320)
    mask_row[0, 0, :100] = 1  # clip 0 is 100 frames long, clip 1 is all real
    mask_row[1, 0, :] = 1
    with torch.no_grad():
        frames = net.forward_features(spec)  # [2, 16, 20]; ratio round(320 / 20) = 16
        pooled = net(torch.cat([spec, mask_row], dim=1))
        assert torch.allclose(pooled[0], frames[0, :, : 100 // 16].mean(1), atol=1e-6)  # the first 6 output frames
        assert torch.allclose(pooled[1], frames[1, :, : 320 // 16].mean(1), atol=1e-6)
        assert torch.allclose(net(spec), frames.mean(2), atol=1e-6)  # no mask row: every frame is real
        net.train()
        assert torch.allclose(net.forward_tokens(torch.cat([spec, mask_row], dim=1)).pooled, net.forward_features(spec).mean(2), atol=1e-5)


def test_sentence_max_pool_lets_padding_take_part_like_the_reference() -> None:
    torch.manual_seed(0)
    text = SentenceMaxPool(vocab_size=10, embed_dim=4, out_dim=3, max_words=5)
    ids = torch.tensor([[3, 4, 0, 0, 0], [0, 0, 0, 0, 0]])
    vectors = torch.zeros(2, 5, 4)
    vectors[0, 0], vectors[0, 1] = text.table[3], text.table[4]
    expected = torch.relu(text.proj(vectors)).amax(dim=1)  # zero-padded word vectors, as MCN's data gives them
    assert torch.allclose(text(ids), expected)
    assert torch.allclose(text(ids[:, :2]), expected)  # shorter inputs are padded to max_words
    assert torch.allclose(text(ids)[1], torch.relu(text.proj.bias))
    assert text.num_parameters() == 4 * 3 + 3
    assert SentenceMaxPool(vocab_size=10).num_parameters() == 301 * 6144


def test_precomputed_features_pass_through() -> None:
    x = torch.randn(3, 7)
    assert torch.equal(PrecomputedFeatures(7)(x), x)
