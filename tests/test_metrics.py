"""Benchmark metrics against hand-worked answers: retrieval ranks, average precision (torchmetrics and VOC), CrossTask."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.classification import binary_average_precision
from torchmetrics.retrieval import RetrievalRecall

from versanet.eval.crosstask import StepRecall, assignment_matrix, order_constrained_assignment
from versanet.eval.metrics import mean_average_precision, voc_average_precision, voc_mean_average_precision
from versanet.eval.retrieval import match_ranks, retrieval_metrics

# text queries (rows) x videos (columns), the match of query i at column i
SIM = torch.tensor([
    [0.9, 0.1, 0.2, 0.3, 0.0],  # 0.9 is the largest            -> rank 1
    [0.8, 0.5, 0.6, 0.1, 0.2],  # 0.8 and 0.6 beat 0.5           -> rank 3
    [0.1, 0.7, 0.4, 0.2, 0.3],  # 0.7 beats 0.4                  -> rank 2
    [0.2, 0.1, 0.3, 0.9, 0.4],  #                                -> rank 1
    [0.6, 0.5, 0.7, 0.8, 0.1],  # all four beat 0.1              -> rank 5
])


def test_retrieval_ranks_recall_and_median_rank_by_hand() -> None:
    assert match_ranks(SIM).tolist() == [1, 3, 2, 1, 5]
    m = retrieval_metrics(SIM, ks=(1, 2, 3, 5, 10))
    assert m["R@1"] == pytest.approx(2 / 5) and m["R@2"] == pytest.approx(3 / 5) and m["R@3"] == pytest.approx(4 / 5)
    assert m["R@5"] == m["R@10"] == 1.0
    assert m["MedR"] == 2.0  # sorted ranks 1 1 2 3 5
    assert m["MeanR"] == pytest.approx(12 / 5)
    # the other direction (video -> text): columns as queries; a tie (0.5 vs 0.5 in column 1) counts for the query
    assert match_ranks(SIM.T).tolist() == [1, 2, 3, 1, 4]
    back = retrieval_metrics(SIM.T)
    assert back["R@1"] == pytest.approx(2 / 5) and back["MedR"] == 2.0 and back["MeanR"] == pytest.approx(11 / 5)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_recall_at_k_agrees_with_torchmetrics(k: int) -> None:
    indexes = torch.arange(5).repeat_interleave(5)
    target = torch.eye(5, dtype=torch.bool).flatten()
    expected = RetrievalRecall(top_k=k)(SIM.flatten(), target, indexes=indexes).item()
    assert retrieval_metrics(SIM, ks=(k,))[f"R@{k}"] == pytest.approx(expected)


def test_median_rank_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    sim = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.5, 0.0, 0.0], [1.0, 0.9, 0.1, 0.0], [1.0, 0.9, 0.8, 0.7]])
    assert match_ranks(sim).tolist() == [1, 2, 3, 4]
    assert retrieval_metrics(sim)["MedR"] == 2.5


# one ranked list, scores 0.9 .. 0.5: labels 1 0 0 1 1
SCORES = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
LABELS = torch.tensor([1, 0, 0, 1, 1])
# precision at ranks 1..5: 1, 1/2, 1/3, 1/2, 3/5; recall: 1/3, 1/3, 1/3, 2/3, 1


def test_average_precision_by_hand() -> None:
    # non-interpolated (torchmetrics): mean precision at the positives (1 + 1/2 + 3/5) / 3
    assert binary_average_precision(SCORES, LABELS).item() == pytest.approx(0.7)
    assert mean_average_precision(SCORES[:, None], LABELS[:, None]) == pytest.approx(0.7)
    # VOC2007 11-point: max precision at recall >= t; t = 0..0.3 -> 1, t = 0.4..1.0 -> 3/5
    assert voc_average_precision(SCORES, LABELS, "11point") == pytest.approx((4 * 1 + 7 * 0.6) / 11)
    # VOC2010+ area under the precision envelope: recall steps of 1/3 at precision 1, 3/5, 3/5
    assert voc_average_precision(SCORES, LABELS, "area") == pytest.approx((1 + 0.6 + 0.6) / 3)


def test_difficult_examples_are_left_out_and_classes_without_positives_do_not_count() -> None:
    ignore = torch.tensor([False, True, False, False, False])  # the negative at rank 2 is "difficult"
    # remaining list: P N P P -> precision 1, 1/2, 2/3, 3/4 at recall 1/3, 1/3, 2/3, 1
    assert voc_average_precision(SCORES, LABELS, "11point", ignore) == pytest.approx((4 * 1 + 7 * 0.75) / 11)
    assert voc_average_precision(SCORES, LABELS, "area", ignore) == pytest.approx((1 + 0.75 + 0.75) / 3)
    assert mean_average_precision(SCORES[:, None], LABELS[:, None], ignore[:, None]) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    scores = torch.stack([SCORES, SCORES.flip(0)], dim=1)
    labels = torch.stack([LABELS, torch.zeros(5, dtype=torch.long)], dim=1)  # class 1 has no positive: left out of the mean
    assert voc_mean_average_precision(scores, labels, "11point") == pytest.approx((4 + 7 * 0.6) / 11)
    assert mean_average_precision(scores, labels) == pytest.approx(0.7)


# CrossTask toy: 5 seconds x 3 steps
STEP_SCORES = torch.tensor([
    [0.2, 0.9, 0.0],
    [0.8, 0.1, 0.1],
    [0.1, 0.3, 0.2],
    [0.0, 0.6, 0.9],
    [0.3, 0.1, 0.5],
])


def test_order_constrained_assignment_by_hand() -> None:
    # per-step argmax (1, 0, 3) breaks the order; the best ordered choice is t = (1, 2, 3): 0.8 + 0.3 + 0.9 = 2.0
    # (next best: (1, 3, 4) = 1.9, (1, 2, 4) = 1.6, (0, 3, 4) = 1.3)
    assert order_constrained_assignment(STEP_SCORES).tolist() == [1, 2, 3]
    # without strict order two steps may share a second: (1, 3, 3) = 0.8 + 0.6 + 0.9 = 2.3
    assert order_constrained_assignment(STEP_SCORES, strict=False).tolist() == [1, 3, 3]
    # fewer seconds than steps: strict order is impossible, the order is kept non-strictly
    assert order_constrained_assignment(STEP_SCORES[:2]).tolist() == [0, 0, 1]  # 0.2 + 0.9 + 0.1


def test_crosstask_recall_by_hand() -> None:
    recall = StepRecall()
    annotation = torch.zeros(5, 3, dtype=torch.bool)
    annotation[1, 0] = True  # step 0 at second 1: hit
    annotation[3, 1] = True  # step 1 at second 3: predicted 2, miss
    annotation[3:5, 2] = True  # step 2 at seconds 3-4: predicted 3, hit
    prediction = assignment_matrix(order_constrained_assignment(STEP_SCORES), 5)
    assert prediction.sum(0).tolist() == [1, 1, 1]
    recall.update("make pancakes", prediction, annotation)  # 2 of 3
    second = annotation.clone()
    second[:, 1] = False  # step 1 absent from this video: counts neither way
    recall.update("make pancakes", prediction, second)  # 2 of 2
    other = torch.zeros(5, 3, dtype=torch.bool)
    other[0, 0] = True  # step 0 annotated at second 0, predicted 1: miss; steps 1 and 2 absent
    recall.update("jack up a car", prediction, other)  # 0 of 1
    assert recall.per_task() == {"jack up a car": 0.0, "make pancakes": pytest.approx(4 / 5)}
    assert recall.compute()["recall"] == pytest.approx((4 / 5 + 0.0) / 2) and recall.compute()["num_tasks"] == 2
