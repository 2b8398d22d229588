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
from torchmetrics import Metric

from versanet.eval.retrieval import first_occurrence


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


class StepRecall(Metric):
    """CrossTask recall per task over videos, gathered across processes (a torchmetrics ``Metric``).

    ``update(task, prediction, annotation, index=None)`` per video; ``compute()`` ->
    ``{"recall": mean over tasks, "num_tasks": n, "recall/<task>": per task}`` over every process's
    videos (a video a distributed sampler repeated counts once, by its dataset ``index``);
    :meth:`per_task` is the per-task part. Task names travel between processes as UTF-8 bytes
    (at most ``MAX_TASK_BYTES``).
    """

    full_state_update = False
    MAX_TASK_BYTES = 128

    def __init__(self) -> None:
        super().__init__()
        for name in ("matched", "total", "task", "index"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, task: str, prediction: Tensor, annotation: Tensor, index: int | None = None) -> None:
        """``prediction``, ``annotation``: bool ``[S, K]`` (one True per step column in the prediction)."""
        if prediction.shape != annotation.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and annotation {tuple(annotation.shape)} differ in shape")
        name = str(task).encode("utf-8")
        if len(name) > self.MAX_TASK_BYTES:
            raise ValueError(f"task name {task!r} is longer than {self.MAX_TASK_BYTES} bytes")
        annotation = annotation.bool().to(self.device)
        self.total.append(annotation.any(dim=0).sum().reshape(1))
        self.matched.append((prediction.bool().to(self.device) & annotation).sum().reshape(1))
        encoded = torch.zeros(1, self.MAX_TASK_BYTES, dtype=torch.uint8, device=self.device)
        encoded[0, : len(name)] = torch.tensor(list(name), dtype=torch.uint8)
        self.task.append(encoded)
        self.index.append(torch.tensor([-1 if index is None else int(index)], dtype=torch.long, device=self.device))

    def compute(self) -> dict[str, float]:
        if isinstance(self.matched, list) and not self.matched:
            return {"recall": float("nan"), "num_tasks": 0.0}

        def cat(state: Tensor | list[Tensor]) -> Tensor:
            return (torch.cat(state) if isinstance(state, list) else state).cpu()

        index = cat(self.index)
        keep = (index < 0) | first_occurrence(index)
        matched, total = defaultdict(int), defaultdict(int)
        for m, n, code in zip(cat(self.matched)[keep].tolist(), cat(self.total)[keep].tolist(), cat(self.task)[keep]):
            name = bytes(code[code > 0].tolist()).decode("utf-8")
            matched[name] += int(m)
            total[name] += int(n)
        per_task = {name: matched[name] / n for name, n in sorted(total.items()) if n > 0}
        out = {"recall": sum(per_task.values()) / len(per_task) if per_task else float("nan"), "num_tasks": float(len(per_task))}
        out.update({f"recall/{name}": r for name, r in per_task.items()})
        return out

    def per_task(self) -> dict[str, float]:
        """Recall of each task with an annotated step (from :meth:`compute`)."""
        return {k.split("/", 1)[1]: v for k, v in self.compute().items() if k.startswith("recall/")}
