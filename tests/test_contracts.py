"""Contract tests generated from the registry: every encoder, head and loss (plugins included).

Adding a registered class adds its tests: nothing here names a concrete model.
"""

from __future__ import annotations

import pytest
import torch

from versanet import registry
from versanet.encoders import Encoder
from versanet.heads import Head

registry.load_builtin()
registry.load_plugins()


def _params(kind: str) -> list:
    return [pytest.param(name, id=name) for name in registry.names(kind)]


@pytest.mark.parametrize("name", _params("encoder"))
def test_encoder_forward_backward_and_declared_shape(name: str) -> None:
    cls = registry.get("encoder", name)
    torch.manual_seed(0)
    encoder = cls(**cls.contract_kwargs)
    assert isinstance(encoder, Encoder)
    x = encoder.example_input(2)
    assert x.dim() == encoder.input_ndim + 1, "example_input must be [B, *input] with input_ndim input dims"
    out = encoder(x)
    assert out.shape == (2, encoder.out_dim)
    assert torch.isfinite(out).all()
    if getattr(cls, "parameter_free", False):  # pre-extracted features pass through: nothing to train
        assert encoder.num_parameters(trainable_only=False) == 0 and encoder.output_shape(3) == (3, encoder.out_dim)
        return
    out.float().pow(2).mean().backward()
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    assert trainable, f"{name} has no trainable parameters"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)
    assert encoder.output_shape(3) == (3, encoder.out_dim)


@pytest.mark.parametrize("name", _params("head"))
def test_head_forward_backward(name: str) -> None:
    head = registry.get("head", name)(6, 4)
    assert isinstance(head, Head) and (head.in_dim, head.out_dim) == (6, 4)
    x = torch.randn(5, 6, requires_grad=True)
    out = head(x)
    assert out.shape == (5, 4)
    out.pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", _params("loss"))
def test_loss_is_a_differentiable_scalar(name: str) -> None:
    loss = registry.get("loss", name)()
    a = torch.randn(4, 8, requires_grad=True)
    b = torch.randn(12, 8, requires_grad=True)  # K = 3 candidates per clip
    out = loss(a, b)
    assert out.dim() == 0 and torch.isfinite(out)
    out.backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


@pytest.mark.parametrize("name", _params("encoder"))
def test_encoder_tokens_agree_with_the_pooled_feature(name: str) -> None:
    cls = registry.get("encoder", name)
    torch.manual_seed(0)
    encoder = cls(**cls.contract_kwargs).eval()  # eval: BN statistics fixed, so two passes agree exactly
    x = encoder.example_input(2)
    with torch.no_grad():
        tokens = encoder.forward_tokens(x)
        pooled = encoder(x)
    assert tokens.tokens.dim() == 3 and tokens.tokens.shape[0] == 2 and tokens.tokens.shape[2] == encoder.token_dim
    assert tokens.mask.shape == tokens.tokens.shape[:2] and tokens.mask.dtype == torch.bool
    assert tokens.pooled.shape == (2, encoder.out_dim)
    torch.testing.assert_close(tokens.pooled, pooled)
    if tokens.grid is not None:
        assert int(torch.tensor(tokens.grid).prod()) == tokens.tokens.shape[1]
