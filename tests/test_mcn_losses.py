"""MCN's losses against hand-worked values: masked margin softmax, the clustering loss, k-means, reconstruction."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from versanet.heads.decoders import ReconstructionDecoder
from versanet.heads.gated import GatedEmbeddingUnit, GatedLinearHead
from versanet.losses import MaskedMarginSoftmax
from versanet.losses.clustering import ClusteringTerm, centroid_loss, kmeans
from versanet.losses.reconstruction import ReconstructionTerm
from versanet.objective import TermInputs


def lse(*xs: float) -> float:
    return math.log(sum(math.exp(x) for x in xs))


def test_mms_on_a_fixed_matrix_matches_the_hand_worked_value() -> None:
    # a = I, so S = a b^T = b^T: S = [[2, 0], [1, 1]]; the margin 0.001 comes off the diagonal
    a = torch.eye(2, dtype=torch.float64)
    b = torch.tensor([[2.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    rows = (lse(1.999, 0.0) - 1.999 + lse(1.0, 0.999) - 0.999) / 2
    cols = (lse(1.999, 1.0) - 1.999 + lse(0.0, 0.999) - 0.999) / 2
    loss = MaskedMarginSoftmax()(a, b)
    assert loss.item() == pytest.approx(rows + cols, abs=1e-12)
    assert MaskedMarginSoftmax()(b, a).item() == pytest.approx(rows + cols, abs=1e-12)  # symmetric


def test_mms_equals_the_reference_formula_and_drops_masked_clips() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    s = a @ b.T - 0.001 * torch.eye(6)
    target = torch.arange(6)
    assert MaskedMarginSoftmax()(a, b).item() == pytest.approx((F.cross_entropy(s, target) + F.cross_entropy(s.T, target)).item(), rel=1e-6)
    keep = torch.tensor([True, True, False, True, True, True])
    sub = a[keep] @ b[keep].T - 0.001 * torch.eye(5)
    expected = F.cross_entropy(sub, torch.arange(5)) + F.cross_entropy(sub.T, torch.arange(5))
    assert MaskedMarginSoftmax()(a, b, a_mask=keep).item() == pytest.approx(expected.item(), rel=1e-6)


def test_clustering_loss_on_three_samples_and_two_centroids() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    centroids = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1])
    # logits x C^T = [[1, 0], [0, 2], [1, 2]], the assigned centroid's minus 0.001
    expected = (lse(0.999, 0.0) - 0.999 + lse(0.0, 1.999) - 1.999 + lse(1.0, 1.999) - 1.999) / 3
    assert centroid_loss(x, centroids, labels, 0.001).item() == pytest.approx(expected, abs=1e-12)


def test_kmeans_labels_and_centroids_on_five_points() -> None:
    points = torch.tensor([[1.0, 0.0], [2.0, 0.2], [0.0, 1.0], [0.2, 3.0], [-0.5, 1.0]], dtype=torch.float64)
    init = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    labels, centroids, iterations = kmeans(points, 3, init)
    assert labels.tolist() == [0, 0, 1, 1, 1]  # by cosine: [-0.5, 1] goes up, not left
    # plain means of the raw points; nobody points down, so the third cluster is empty -> zero
    assert torch.allclose(centroids, torch.tensor([[1.5, 0.1], [-0.1, 5.0 / 3.0], [0.0, 0.0]], dtype=torch.float64))
    assert iterations == 2  # the second pass changes nothing


def test_kmeans_random_start_is_seeded_and_draws_distinct_points() -> None:
    points = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    one = kmeans(points, 4, generator=torch.Generator().manual_seed(7))
    two = kmeans(points, 4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    with pytest.raises(ValueError, match="at least 5 points"):
        kmeans(points[:4], 5)


def term_inputs(xs: dict[str, torch.Tensor], step: int, training: bool = True) -> TermInputs:
    return TermInputs({f"{m}@s": x for m, x in xs.items()}, {}, next(iter(xs.values())).shape[0], step, training)


def test_clustering_term_fits_pushes_and_refits_on_schedule() -> None:
    torch.manual_seed(0)
    term = ClusteringTerm("s", ["v", "a"], num_clusters=2, queue_size=4, refit_every=2, group_size=2, queue_per_group=1)
    term.build(SimpleNamespace(spaces={"s": 3}), {})
    steps = [{"v": torch.randn(4, 3), "a": torch.randn(4, 3)} for _ in range(4)]
    fitted = []
    for step, xs in enumerate(steps):
        inputs = term_inputs(xs, step)
        before = term.centroids.clone()
        loss = term(inputs)
        assert loss.dim() == 0 and torch.isfinite(loss)
        fitted.append(not torch.equal(before, term.centroids))
        term.update(inputs)
    assert fitted == [True, False, True, False]  # steps 0 and 2 re-fit; 1 and 3 only assign
    fused = [(xs["v"] + xs["a"]) / 2 for xs in steps]
    # FIFO, newest first, the first clip of each group of 2: steps 3 and 2 fill the 4 rows
    assert torch.allclose(term.queue, torch.cat([fused[3][0::2], fused[2][0::2]]))
    assert term.queue_rows == 4


def test_clustering_term_loss_on_fixed_centroids_in_evaluation() -> None:
    term = ClusteringTerm("s", ["v", "a", "t"], num_clusters=2, queue_size=0)
    term.build(SimpleNamespace(spaces={"s": 2}), {})
    term.centroids.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    term.fitted.fill_(True)
    v = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    a = torch.tensor([[1.0, 0.2], [0.0, 3.0]])
    t = torch.tensor([[1.0, -0.5], [0.2, 1.0]])
    loss = term(term_inputs({"v": v, "a": a, "t": t}, 0, training=False))
    labels = torch.tensor([0, 1])  # the fused mean [[4/3, -0.1], [0.067, 5/3]] by cosine
    expected = sum(centroid_loss(x, term.centroids, labels, 0.001) for x in (v, a, t)) / 3
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_reconstruction_term_is_the_sum_of_mses_and_reaches_the_targets() -> None:
    torch.manual_seed(0)
    term = ReconstructionTerm("s", ["v", "a"], decoder=lambda i, o: ReconstructionDecoder(i, o, hidden_dim=5))
    term.build(SimpleNamespace(spaces={"s": 4}), {"v": 3, "a": 2})
    target_a = torch.randn(6, 2, requires_grad=True)
    emb = {"v@s": torch.randn(6, 4), "a@s": torch.randn(6, 4), "v": torch.rand(6, 3), "a": target_a}
    loss = term(TermInputs(emb, {}, 6))
    expected = F.mse_loss(term.decoders["v"](emb["v@s"]), emb["v"]) + F.mse_loss(term.decoders["a"](emb["a@s"]), target_a)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert target_a.grad is not None and target_a.grad.abs().sum() > 0  # targets are not detached, as in MCN
    assert term.weight == 50.0


def test_gated_units_gate_with_themselves_and_count_mcn_parameters() -> None:
    torch.manual_seed(0)
    unit = GatedEmbeddingUnit(4, 3)
    x = torch.randn(2, 4)
    y = unit.fc(x)
    assert torch.allclose(unit(x), y * torch.sigmoid(unit.cg.fc(y)))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(GatedEmbeddingUnit(4096, 6144)) == 4097 * 6144 + 6145 * 6144 == 62_926_848
    assert count(GatedLinearHead(1024, 6144)) == 2 * 1025 * 1024 + 1025 * 6144
    assert count(ReconstructionDecoder(6144, 4096)) == 6145 * 1024 + 1025 * 4096
