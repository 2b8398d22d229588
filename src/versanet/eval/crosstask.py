"""CrossTask step localisation (Zhukov et al. 2019; MCN's zero-shot protocol): order-constrained assignment and recall.

Each video has per-second scores ``O [S, K]`` (similarity of second ``t`` with the text of step ``k``)
and the task's K steps in their canonical order. Each step is placed at exactly one second, the
seconds strictly increasing with the step order, maximising the total score:

    maximise sum_k O[t_k, k]  subject to  t_1 < t_2 < ... < t_K

Dynamic programming, ``D[k, t] = O[t, k] + max_{t' < t} D[k-1, t']``, ``O(S K)`` with a running
maximum, then backtracking. When a video is shorter than its step list (``S < K``) strict order is
impossible; the assignment then only keeps the order (``t_1 <= t_2 <= ...``), several steps may share
a second (``strict=False`` asks for that always).

Recall (CrossTask's ``get_recalls``): per task, over its videos, the number of steps whose chosen
second lies inside one of that step's annotated intervals, divided by the number of steps that are
annotated in the video at all (a step absent from the video counts neither way). The benchmark
number is the mean over tasks.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor


def order_constrained_assignment(scores: Tensor, strict: bool = True) -> Tensor:
    """``scores [S, K]`` -> chosen second per step ``[K]`` (long), increasing in ``k``, maximising the total score."""
    if scores.dim() != 2:
        raise ValueError(f"expected scores [S, K], got shape {tuple(scores.shape)}")
    seconds, steps = scores.shape
    if steps == 0:
        return torch.zeros(0, dtype=torch.long)
    if seconds == 0:
        raise ValueError("cannot place steps in a video with no seconds")
    strict = strict and seconds >= steps
    o = scores.detach().double().cpu()
    best = o[:, 0].clone()  # D[0, t]
    back = torch.zeros(steps, seconds, dtype=torch.long)
    for k in range(1, steps):
        run_val, run_arg = torch.cummax(best, dim=0)  # max of D[k-1, :t+1] and where
        if strict:  # max over t' < t: shift by one second
            run_val = torch.cat([run_val.new_full((1,), float("-inf")), run_val[:-1]])
            run_arg = torch.cat([run_arg.new_zeros(1), run_arg[:-1]])
        best = run_val + o[:, k]
        back[k] = run_arg
    t = int(torch.argmax(best))
    chosen = [t]
    for k in range(steps - 1, 0, -1):
        t = int(back[k, t])
        chosen.append(t)
    return torch.tensor(chosen[::-1], dtype=torch.long)


def assignment_matrix(chosen: Tensor, seconds: int) -> Tensor:
    """Chosen seconds ``[K]`` -> bool ``[S, K]`` with one True per column."""
    out = torch.zeros(seconds, len(chosen), dtype=torch.bool)
    out[chosen, torch.arange(len(chosen))] = True
    return out


class StepRecall:
    """Accumulates CrossTask recall per task over videos (``update``), then ``compute()``."""

    def __init__(self) -> None:
        self.matched: dict[str, int] = defaultdict(int)
        self.total: dict[str, int] = defaultdict(int)

    def update(self, task: str, prediction: Tensor, annotation: Tensor) -> None:
        """``prediction``, ``annotation``: bool ``[S, K]`` (one True per step column in the prediction)."""
        if prediction.shape != annotation.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and annotation {tuple(annotation.shape)} differ in shape")
        annotation = annotation.bool().cpu()
        self.total[task] += int(annotation.any(dim=0).sum())
        self.matched[task] += int((prediction.bool().cpu() & annotation).sum())

    def per_task(self) -> dict[str, float]:
        return {task: self.matched[task] / n for task, n in sorted(self.total.items()) if n > 0}

    def compute(self) -> float:
        """Mean over tasks of the per-task recall (``nan`` with no annotated step)."""
        recalls = self.per_task()
        return sum(recalls.values()) / len(recalls) if recalls else float("nan")
