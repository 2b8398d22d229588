"""Average precision as PASCAL VOC computes it (torchmetrics has only the non-interpolated variant).

Three APs of one ranked list exist in the literature and give different numbers:

- **non-interpolated** (scikit-learn, torchmetrics ``MultilabelAveragePrecision``):
  ``sum_n (R_n - R_{n-1}) P_n`` -- the mean precision at the rank of each positive. Used for
  AudioSet mAP (MMV, VATT); versanet takes it from torchmetrics.
- **VOC 11-point** (the VOC2007 devkit, ``VOCevalcls``): the mean over ``t in {0, 0.1, ..., 1}`` of
  the maximum precision at recall ``>= t``. What PASCAL VOC 2007 results (MMV's deflation table)
  are reported in.
- **VOC area** (VOC2010+ devkit): the area under the precision envelope ``P'(r) = max_{r' >= r} P(r')``,
  summed where recall changes.

Hand-worked example (scores 0.9 .. 0.5 descending, labels 1 0 0 1 1): precision at each rank
1, 1/2, 1/3, 1/2, 3/5, recall 1/3, 1/3, 1/3, 2/3, 1 -> non-interpolated (1 + 1/2 + 3/5)/3 = 0.7,
11-point (4 * 1 + 7 * 3/5)/11 = 0.74545, area (1 + 3/5 + 3/5)/3 = 0.73333 (tests/test_metrics.py).

Ties in score are broken by a stable sort (input order), as MATLAB's ``sort`` in the devkit does.
VOC's "difficult" ground truth is excluded from the ranking (``ignore``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

VocMode = Literal["11point", "area"]


def precision_recall_at_ranks(scores: Tensor, targets: Tensor, ignore: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Precision and recall after each rank of the list sorted by descending score (float64, ``[N']``)."""
    scores, targets = scores.flatten().double(), targets.flatten().bool()
    if ignore is not None:
        keep = ~ignore.flatten().bool()
        scores, targets = scores[keep], targets[keep]
    order = torch.sort(scores, descending=True, stable=True).indices
    hits = targets[order].double()
    tp = hits.cumsum(0)
    fp = (1 - hits).cumsum(0)
    positives = hits.sum().clamp(min=1)
    return tp / (tp + fp), tp / positives


def voc_average_precision(scores: Tensor, targets: Tensor, mode: VocMode = "11point", ignore: Tensor | None = None) -> float:
    """AP of one class: ``scores [N]``, binary ``targets [N]``; ``nan`` when there is no positive."""
    counted = targets.flatten().bool() if ignore is None else targets.flatten().bool() & ~ignore.flatten().bool()
    if not bool(counted.any()):
        return float("nan")
    precision, recall = precision_recall_at_ranks(scores, targets, ignore)
    if mode == "11point":
        ap = 0.0
        for t in torch.linspace(0, 1, 11, dtype=torch.float64):
            above = precision[recall >= t - 1e-12]
            ap += (above.max().item() if above.numel() else 0.0) / 11
        return ap
    if mode == "area":
        mrec = torch.cat([recall.new_zeros(1), recall, recall.new_ones(1)])
        mpre = torch.cat([precision.new_zeros(1), precision, precision.new_zeros(1)])
        mpre = mpre.flip(0).cummax(0).values.flip(0)  # precision envelope: max over higher recall
        change = torch.nonzero(mrec[1:] != mrec[:-1]).flatten() + 1
        return float(((mrec[change] - mrec[change - 1]) * mpre[change]).sum())
    raise ValueError(f"mode must be '11point' or 'area', not {mode!r}")


def voc_mean_average_precision(scores: Tensor, targets: Tensor, mode: VocMode = "11point", ignore: Tensor | None = None) -> float:
    """Mean over classes (columns) with at least one positive of :func:`voc_average_precision`; ``scores, targets: [N, C]``."""
    if scores.shape != targets.shape or scores.dim() != 2:
        raise ValueError(f"expected scores and targets of the same shape [N, C], got {tuple(scores.shape)} and {tuple(targets.shape)}")
    aps = [voc_average_precision(scores[:, c], targets[:, c], mode, None if ignore is None else ignore[:, c]) for c in range(scores.shape[1])]
    valid = [a for a in aps if a == a]
    return sum(valid) / len(valid) if valid else float("nan")


def mean_average_precision(scores: Tensor, targets: Tensor, ignore: Tensor | None = None) -> float:
    """Non-interpolated mAP (torchmetrics' multilabel AP per class, averaged over classes with a positive);
    ``ignore`` (bool ``[N, C]``) pairs are left out (torchmetrics' ``ignore_index``)."""
    from torchmetrics.functional.classification import binary_average_precision, multilabel_average_precision

    targets = targets.long().clone()
    has_positive = (targets > 0) if ignore is None else (targets > 0) & ~ignore.bool()
    has_positive = has_positive.sum(0) > 0
    if ignore is not None:
        targets[ignore.bool()] = -1
    ignore_index = -1 if ignore is not None else None
    if targets.shape[1] == 1:  # torchmetrics' multilabel metric wants two labels or more
        per_class = binary_average_precision(scores[:, 0].float(), targets[:, 0], thresholds=None, ignore_index=ignore_index).reshape(1)
    else:
        per_class = multilabel_average_precision(scores.float(), targets, num_labels=targets.shape[1], average=None, thresholds=None,
                                                 ignore_index=ignore_index)
    per_class = per_class[has_positive & ~torch.isnan(per_class)]
    return float(per_class.mean()) if per_class.numel() else float("nan")
