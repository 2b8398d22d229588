"""PyTorchVideo's networks as encoders: exact parameter counts, its state dicts load, and the features are its own."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("pytorchvideo.models")

from versanet.encoders.pytorchvideo_nets import ARCHITECTURES, PyTorchVideoNet  # noqa: E402
from versanet.registry import get, load_builtin  # noqa: E402

CLASSIFIER = 2048 * 400 + 400
# PyTorchVideo's model zoo: X3D-XS/S/M 3.79M, X3D-L 6.15M, Slow R50 32.45M, CSN R101 22.21M, R(2+1)D R50 28.11M
WITH_CLASSIFIER = {"x3d_xs": 3_794_274, "x3d_s": 3_794_274, "x3d_m": 3_794_274, "x3d_l": 6_153_384,
                   "slow_r50": 32_454_096, "csn_r101": 22_213_776, "r2plus1d_r50": 28_107_600}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_parameter_counts_are_pytorchvideos_without_the_classifier(arch: str) -> None:
    full = ARCHITECTURES[arch][0]()
    assert sum(p.numel() for p in full.parameters()) == WITH_CLASSIFIER[arch]
    encoder = PyTorchVideoNet(arch)
    assert encoder.num_parameters() == WITH_CLASSIFIER[arch] - CLASSIFIER and encoder.out_dim == 2048
    # a model-zoo state dict (the builder's own keys) loads, leaving only the classifier out
    result = encoder.load_state_dict(full.state_dict(), strict=False)
    assert result.missing_keys == [] and sorted(result.unexpected_keys) == sorted(k for k in full.state_dict() if ".proj." in k)


def test_x3d_features_are_pytorchvideos_at_its_clip_size_and_any_size_runs() -> None:
    torch.manual_seed(0)
    full = ARCHITECTURES["x3d_xs"][0]().eval()
    load_builtin()
    encoder = get("encoder", "PyTorchVideoNet")(arch="x3d_xs").eval()
    encoder.load_state_dict(full.state_dict(), strict=False)
    x = torch.randn(2, 3, *encoder.clip_shape)
    with torch.no_grad():
        expected = full.blocks[-1].pool(torch.nn.Sequential(*full.blocks[:-1])(x)).flatten(1)  # the head before dropout + classifier
        tokens = encoder.forward_tokens(x)
        smaller = encoder(torch.randn(1, 3, 4, 96, 128))
    torch.testing.assert_close(tokens.pooled, expected, rtol=1e-4, atol=1e-5)
    assert tokens.grid == (4, 5, 5) and tokens.tokens.shape == (2, 100, 432)
    assert smaller.shape == (1, 2048)


def test_an_unknown_architecture_is_named() -> None:
    with pytest.raises(ValueError, match="unknown arch 'x3d_xxl'.*x3d_m"):
        PyTorchVideoNet("x3d_xxl")
