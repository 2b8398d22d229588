"""Classification metrics of an evaluation set, computed once over every process's samples.

:class:`ClassificationScores` is a torchmetrics ``Metric``: each step adds its scores, labels and
dataset indices to ``cat`` states, and ``compute()`` (which torchmetrics runs after gathering the
states of every process) scores the whole set. A sample that a distributed sampler gave to two
processes (it pads the last batch by repeating samples) counts once, by its dataset index.

Metrics (:func:`classification_metrics`): single-label ``top1`` (and ``top5`` with more than 5
classes) by torchmetrics' ``MulticlassAccuracy``; multilabel ``mAP`` (non-interpolated, AudioSet's),
``mAP_voc11`` and ``mAP_voc_area`` (PASCAL VOC's, :mod:`versanet.eval.metrics`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from versanet.eval.metrics import mean_average_precision, voc_mean_average_precision
from versanet.eval.retrieval import first_occurrence


def classification_metrics(scores: Tensor, labels: Tensor, num_classes: int, multilabel: bool, ignore: Tensor | None = None,
                           prefix: str = "test/") -> dict[str, float]:
    """``scores [N, C]`` -> ``{prefix}top1`` (and ``top5`` with more than 5 classes), or the three multilabel mAPs.

    ``ignore`` (bool ``[N, C]``, VOC's "difficult") pairs are left out of the mAPs.
    """
    if multilabel:
        return {
            f"{prefix}mAP": mean_average_precision(scores, labels, ignore),
            f"{prefix}mAP_voc11": voc_mean_average_precision(scores, labels.bool(), "11point", ignore),
            f"{prefix}mAP_voc_area": voc_mean_average_precision(scores, labels.bool(), "area", ignore),
        }
    out = {f"{prefix}top1": MulticlassAccuracy(num_classes, top_k=1, average="micro")(scores, labels.long()).item()}
    if num_classes > 5:
        out[f"{prefix}top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")(scores, labels.long()).item()
    return out


class ClassificationScores(Metric):
    """Scores of a whole evaluation set, gathered across processes; ``compute()`` -> :func:`classification_metrics`.

    ``update(scores, labels, index=None, ignore=None)``: ``scores [B, C]`` or ``[B, H, C]`` (H
    classifiers scored together: the metrics are averaged over them), ``labels [B]`` (or multi-hot
    ``[B, C]``), dataset ``index [B]`` (None: every row counts), ``ignore`` bool ``[B, C]``.
    """

    full_state_update = False

    def __init__(self, num_classes: int, multilabel: bool = False, prefix: str = "test/") -> None:
        super().__init__()
        self.num_classes, self.multilabel, self.prefix = num_classes, multilabel, prefix
        for name in ("scores", "labels", "index", "ignore"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, labels: Tensor, index: Tensor | None = None, ignore: Tensor | None = None) -> None:
        scores = scores.detach().float()
        if scores.dim() == 2:
            scores = scores.unsqueeze(1)
        self.scores.append(scores)
        self.labels.append(labels.detach())
        self.index.append(torch.full((len(scores),), -1, dtype=torch.long, device=scores.device) if index is None else index.detach().long())
        self.ignore.append(torch.zeros(len(scores), 0, dtype=torch.bool, device=scores.device) if ignore is None else ignore.detach().bool())

    def compute(self) -> dict[str, float]:
        def cat(state: Tensor | list[Tensor]) -> Tensor:
            return torch.cat(state) if isinstance(state, list) else state

        if isinstance(self.scores, list) and not self.scores:
            return {}
        scores, labels, index, ignore = cat(self.scores), cat(self.labels), cat(self.index), cat(self.ignore)
        keep = (index < 0) | first_occurrence(index)
        scores, labels = scores[keep].cpu(), labels[keep].cpu()
        ignore = ignore[keep].cpu() if ignore.shape[-1] else None
        per_head = [classification_metrics(scores[:, h], labels, self.num_classes, self.multilabel, ignore, self.prefix)
                    for h in range(scores.shape[1])]
        return {k: sum(r[k] for r in per_head) / len(per_head) for k in per_head[0]}
