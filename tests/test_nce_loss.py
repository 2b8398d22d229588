"""NCE / MIL-NCE against an independent numpy reference of docs/method.md, "Losses" (values and gradients)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from versanet.losses import NCELoss


def reference_loss(a: np.ndarray, b: np.ndarray, k: int, tau: float, a_mask=None, b_mask=None) -> float:
    """Literal transcription of the formula: loops, no vectorisation, -inf for masked terms."""
    n = a.shape[0]
    a_mask = np.ones(n, bool) if a_mask is None else a_mask
    b_mask = np.ones((n, k), bool) if b_mask is None else b_mask
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    bk = b.reshape(n, k, -1)

    def lse(values: list[float]) -> float:
        m = max(values)
        return m + math.log(sum(math.exp(v - m) for v in values))

    losses = []
    for i in range(n):
        if not (a_mask[i] and b_mask[i].any()):
            continue
        num = [a[i] @ bk[i, kk] / tau for kk in range(k) if b_mask[i, kk]]
        den = [a[i] @ bk[j, kk] / tau for j in range(n) for kk in range(k) if b_mask[j, kk]]
        den += [a[j] @ bk[i, kk] / tau for j in range(n) for kk in range(k) if a_mask[j] and b_mask[i, kk]]
        losses.append(lse(den) - lse(num))
    return float(np.mean(losses))


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        hi = f(x)
        x[idx] = old - eps
        lo = f(x)
        x[idx] = old
        g[idx] = (hi - lo) / (2 * eps)
    return g


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_reference_values_and_gradients(k: int, masked: bool) -> None:
    rng = np.random.default_rng(k + 10 * masked)
    n, d, tau = 5, 4, 0.07
    a = rng.normal(size=(n, d))
    b = rng.normal(size=(n * k, d))
    a_mask = b_mask = None
    if masked:
        a_mask = np.array([True, True, False, True, True])
        b_mask = rng.random((n, k)) > 0.3
        b_mask[0] = False  # clip 0 has no candidate at all: its row drops out
        b_mask[1, 0] = True
    loss_fn = NCELoss(temperature=tau).double()
    ta = torch.tensor(a, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    out = loss_fn(
        ta, tb,
        None if a_mask is None else torch.tensor(a_mask),
        None if b_mask is None else torch.tensor(b_mask),
    )
    out.backward()
    expected = reference_loss(a, b, k, tau, a_mask, b_mask)
    assert out.item() == pytest.approx(expected, rel=1e-6)  # tau is stored as a float32 log
    grad_a = numeric_grad(lambda x: reference_loss(x, b, k, tau, a_mask, b_mask), a.copy())
    grad_b = numeric_grad(lambda x: reference_loss(a, x, k, tau, a_mask, b_mask), b.copy())
    np.testing.assert_allclose(ta.grad.numpy(), grad_a, atol=1e-6)
    np.testing.assert_allclose(tb.grad.numpy(), grad_b, atol=1e-6)


@pytest.mark.parametrize("k", [1, 4])
def test_identical_embeddings_give_log_2b(k: int) -> None:
    n = 8
    a = torch.ones(n, 3)
    b = torch.ones(n * k, 3)
    assert NCELoss()(a, b).item() == pytest.approx(math.log(2 * n), abs=1e-5)


def test_well_separated_embeddings_approach_log_2() -> None:
    n = 6
    a = torch.eye(n, dtype=torch.float64) * 10
    loss = NCELoss(temperature=0.01).double()(a, a.clone())
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    # and it is the floor: a random pairing is far above it
    assert NCELoss(temperature=0.07)(torch.randn(n, 6), torch.randn(n, 6)).item() > math.log(2) + 0.5


def test_masked_rows_are_excluded_and_rescaled() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(4, 5), torch.randn(4, 5)
    full = NCELoss()(a[:2], b[:2])
    # clips 2 and 3 lack the modality: their rows drop out and they are not negatives either
    masked = NCELoss()(a, b, b_mask=torch.tensor([[True], [True], [False], [False]]), a_mask=torch.tensor([True, True, False, False]))
    assert masked.item() == pytest.approx(full.item(), abs=1e-6)


def test_learnable_temperature_is_clamped_and_trains() -> None:
    loss = NCELoss(temperature=0.07, learnable_temperature=True, min_temperature=0.05)
    assert isinstance(loss.log_inv_tau, torch.nn.Parameter)
    with torch.no_grad():
        loss.log_inv_tau.fill_(math.log(1 / 0.001))
    assert loss.temperature.item() == pytest.approx(0.05)
    with torch.no_grad():
        loss.log_inv_tau.fill_(math.log(1 / 0.07))
    out = loss(torch.randn(4, 3), torch.randn(4, 3))
    out.backward()
    assert loss.log_inv_tau.grad is not None and loss.log_inv_tau.grad.abs() > 0


def test_bad_shapes_and_temperatures_are_rejected() -> None:
    with pytest.raises(ValueError, match="multiple of the batch"):
        NCELoss()(torch.randn(3, 4), torch.randn(4, 4))
    with pytest.raises(ValueError, match="temperature"):
        NCELoss(temperature=0.0)
