"""Linear probes on frozen features: multinomial logistic regression, full batch, L-BFGS.

Features are standardised with the training set's mean and std (as MMV's StandardScaler), then a
single linear layer is fit with cross-entropy + L2 (``weight_decay`` on the weights).
"""

from __future__ import annotations

import torch
from torch import Tensor


def fit_linear_probe(train_x: Tensor, train_y: Tensor, weight_decay: float = 1e-3, max_iter: int = 200) -> torch.nn.Module:
    """Fit ``Linear(d, classes)`` on standardised ``train_x: [N, d]``; returns a module mapping raw features to logits."""
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    x = (train_x - mean) / std
    classes = int(train_y.max()) + 1
    linear = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(x), train_y) + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return torch.nn.Sequential(_Standardise(mean, std), linear).eval()


class _Standardise(torch.nn.Module):
    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


@torch.no_grad()
def probe_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, weight_decay: float = 1e-3) -> float:
    """Top-1 accuracy on the test set of a linear probe fit on the training set."""
    probe = fit_linear_probe(train_x.float(), train_y.long(), weight_decay)
    return (probe(test_x.float()).argmax(1) == test_y).float().mean().item()
