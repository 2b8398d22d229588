"""Linear (or MLP) probes on frozen features: one classifier bank, one objective, one L-BFGS set-up.

Every probe in versanet (the benchmark modules' :class:`~versanet.downstream.LinearProbeModule`,
the end-of-fit :class:`~versanet.callbacks.LinearProbeReport`) trains a :class:`BankedClassifier`
on standardised features (MMV's StandardScaler) with the same objective per member ``m``:

    mean over its rows of cross-entropy (binary cross-entropy per class when multilabel) + wd_m * ||W_m||^2

(weights penalised, biases not), minimised full-batch by L-BFGS with a strong-Wolfe line search
(:func:`make_lbfgs`, :func:`probe_closure`). A bank trains several L2 strengths, hold-out splits or
low-shot draws at once: member ``m`` learns from the rows whose weight ``w[:, m]`` is 1.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BankedClassifier(nn.Module):
    """M independent classifiers evaluated together: ``[N, d] -> [N, M, C]``.

    ``hidden_dim=None``: linear ``W [M, C, d]``; else an MLP ``Linear -> ReLU -> Dropout -> Linear``
    per member. ``penalty()`` is each member's squared weight norm (biases excluded).
    """

    def __init__(self, members: int, in_dim: int, num_classes: int, hidden_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.members, self.in_dim, self.num_classes, self.hidden_dim = members, in_dim, num_classes, hidden_dim
        self.dropout = nn.Dropout(dropout)
        dims = [in_dim, hidden_dim, num_classes] if hidden_dim else [in_dim, num_classes]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(dims[:-1], dims[1:]):
            w = torch.empty(members, fan_out, fan_in)
            for m in range(members):
                nn.init.kaiming_uniform_(w[m], a=math.sqrt(5))  # nn.Linear's default
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(members, fan_out)))
        if not hidden_dim:  # a convex problem: start from zero like liblinear
            nn.init.zeros_(self.weights[0])

    def forward(self, x: Tensor) -> Tensor:
        """``[N, d]`` -> logits ``[N, M, C]``."""
        h = torch.einsum("nd,mcd->nmc", x, self.weights[0]) + self.biases[0]
        for w, b in zip(self.weights[1:], self.biases[1:]):
            h = torch.einsum("nmd,mcd->nmc", self.dropout(torch.relu(h)), w) + b
        return h

    def penalty(self) -> Tensor:
        """``[M]``: sum of squared weights per member."""
        return sum(w.pow(2).flatten(1).sum(1) for w in self.weights)


def head_losses(bank: BankedClassifier, x: Tensor, y: Tensor, w: Tensor, multilabel: bool = False) -> tuple[Tensor, Tensor]:
    """Data loss of each member summed over its rows ``[M]``, and how many rows each counts ``[M]``.

    ``x [n, d]`` standardised features, ``y [n]`` class ids (multi-hot ``[n, C]`` when multilabel),
    ``w [n, M]`` 1 where member m learns from row n.
    """
    logits = bank(x)  # [n, M, C]
    if multilabel:
        loss = F.binary_cross_entropy_with_logits(logits, y.float().unsqueeze(1).expand_as(logits), reduction="none").mean(-1)
    else:
        loss = F.cross_entropy(logits.permute(0, 2, 1), y.long().unsqueeze(1).expand(-1, logits.shape[1]), reduction="none")
    return (loss * w).sum(0), w.sum(0)


def make_lbfgs(params, lr: float = 1.0, max_iter: int = 50) -> torch.optim.LBFGS:  # noqa: ANN001 - any params iterable
    """The probes' L-BFGS: strong-Wolfe line search, tight tolerances (the problem is small and convex for a linear head)."""
    return torch.optim.LBFGS(params, lr=lr, max_iter=max_iter, history_size=20, tolerance_grad=1e-9, tolerance_change=1e-12,
                             line_search_fn="strong_wolfe")


def probe_closure(
    optimizer: torch.optim.Optimizer, bank: BankedClassifier, x: Tensor, y: Tensor, w: Tensor, decays: Tensor,
    multilabel: bool = False, chunk: int = 4096, backward: Callable[[Tensor], None] = Tensor.backward,
) -> Callable[[], Tensor]:
    """The L-BFGS closure of the probe objective (module docstring) summed over members, rows in chunks of ``chunk``.

    ``decays [M]``: each member's L2 strength. ``backward``: how to back-propagate (a LightningModule's ``manual_backward``).
    """
    counts = w.sum(0).clamp(min=1)
    rows_all = torch.arange(x.shape[0], device=x.device)

    def closure() -> Tensor:
        optimizer.zero_grad()
        total = torch.zeros((), device=x.device)
        for rows in rows_all.split(chunk):
            summed, _ = head_losses(bank, x[rows], y[rows], w[rows], multilabel)
            part = (summed / counts).sum()
            backward(part)
            total = total + part.detach()
        reg = (decays * bank.penalty()).sum()
        backward(reg)
        return total + reg.detach()

    return closure


class Standardise(nn.Module):
    """``(x - mean) / std`` with the training set's statistics (MMV's StandardScaler)."""

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def fit_linear_probe(train_x: Tensor, train_y: Tensor, weight_decay: float = 1e-3, max_iter: int = 200) -> nn.Module:
    """One linear probe on ``train_x [N, d]``: returns a module mapping raw features to logits ``[N, C]``."""
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    standardise = Standardise(mean, std)
    x = standardise(train_x)
    bank = BankedClassifier(1, x.shape[1], int(train_y.max()) + 1)
    optimizer = make_lbfgs(bank.parameters(), max_iter=max_iter)
    closure = probe_closure(optimizer, bank, x, train_y, torch.ones(len(x), 1), torch.tensor([weight_decay]))
    with torch.enable_grad():
        optimizer.step(closure)
    return nn.Sequential(standardise, bank, _FirstMember()).eval()


class _FirstMember(nn.Module):
    def forward(self, logits: Tensor) -> Tensor:
        return logits[:, 0]


@torch.no_grad()
def probe_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, weight_decay: float = 1e-3) -> float:
    """Top-1 accuracy on the test set of a linear probe fit on the training set."""
    probe = fit_linear_probe(train_x.float(), train_y.long(), weight_decay)
    return (probe(test_x.float()).argmax(1) == test_y).float().mean().item()
