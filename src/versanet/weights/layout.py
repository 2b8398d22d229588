"""Shared pieces of every converter: named source parameters, kernel layouts, the TSM channel swap, exact loading.

Conventions of the sources (TF, Haiku, Sonnet; channels last) and of PyTorch (channels first):

- conv kernels: TF/Haiku ``[kT, kH, kW, in, out]`` (``...HWIO``) -> torch ``[out, in, kT, kH, kW]`` (``OI...``),
  :func:`conv_kernel`; a ``Conv1D`` of width 1 is a Linear (:func:`conv1x1_as_linear`);
- linear weights: ``[in, out]`` -> ``[out, in]`` (:func:`linear_weight`);
- batch norm: Haiku ``scale``/``offset`` and the state ``mean_ema/average``/``var_ema/average`` (shape
  ``[1, ..., C]``), TF ``gamma``/``beta``/``moving_mean``/``moving_variance`` -> torch ``weight``/``bias``/
  ``running_mean``/``running_var`` (``[C]``), with ``num_batches_tracked`` 0.

Haiku names a parameter ``module/path/param`` (its state ``module/path/~/sub/param``); a TF checkpoint
of the same network keys it by its variable name, possibly under an extra scope. :class:`NamedParams`
finds each parameter by the END of its path, so the converters are written once against the
reference code's module names and read every container of them.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

ALIASES: dict[str, tuple[str, ...]] = {
    "w": ("w", "kernel", "weights"),
    "b": ("b", "bias", "biases"),
    "scale": ("scale", "gamma"),
    "offset": ("offset", "beta"),
    "mean": ("mean_ema/average", "moving_mean"),
    "var": ("var_ema/average", "moving_variance"),
    "embeddings": ("embeddings", "embedding"),
}


class ConversionError(ValueError):
    """A source checkpoint that does not have the layout a converter expects; the message says what is missing."""


def normalise_name(name: str) -> str:
    """One spelling for a parameter path: no ``:0``, no ``/.ATTRIBUTES/VARIABLE_VALUE``, Haiku's ``/~/`` as ``/``."""
    name = name.removesuffix(":0").removesuffix("/.ATTRIBUTES/VARIABLE_VALUE")
    return re.sub(r"/~/|/~$", "/", name).strip("/")


class NamedParams:
    """Source parameters by path, looked up by the end of their path (case-insensitive), each used once.

    ``get("Mixed_3b/Branch_0_Conv2d_0a_1x1/conv_3d", "w")`` finds ``.../Mixed_3b/Branch_0_Conv2d_0a_1x1/conv_3d/w``
    (or ``/kernel``, see :data:`ALIASES`) under any scope; two matches or none raise :class:`ConversionError`.
    """

    def __init__(self, params: Mapping[str, np.ndarray | Tensor], source: str = "the checkpoint") -> None:
        self.params = {normalise_name(k): v for k, v in params.items()}
        self._lower = {k.lower(): k for k in self.params}
        self.source = source
        self.used: set[str] = set()

    def find(self, path: str, leaf: str) -> str | None:
        """The full name of ``path/leaf`` (any alias of ``leaf``), or None."""
        hits = []
        for alias in ALIASES.get(leaf, (leaf,)):
            tail = f"{path}/{alias}".lower()
            hits += [full for low, full in self._lower.items() if low == tail or low.endswith("/" + tail)]
        if len(hits) > 1:
            raise ConversionError(f"{self.source}: {path}/{leaf} is ambiguous: {', '.join(sorted(hits)[:4])}")
        return hits[0] if hits else None

    def get(self, path: str, leaf: str) -> Tensor:
        """The parameter ``path/leaf`` as a float32 tensor (see the class docstring)."""
        full = self.find(path, leaf)
        if full is None:
            near = [k for k in self.params if path.split("/")[-1].lower() in k.lower()][:6]
            raise ConversionError(
                f"{self.source} has no parameter {path}/{leaf} (looked for the names {', '.join(ALIASES.get(leaf, (leaf,)))}); "
                f"names containing {path.split('/')[-1]!r}: {', '.join(near) or 'none'}"
            )
        self.used.add(full)
        return torch.as_tensor(np.asarray(self.params[full], dtype=np.float32))

    def shape(self, path: str, leaf: str) -> tuple[int, ...]:
        """The shape of ``path/leaf`` (a :meth:`get` that does not count as using it)."""
        shape = tuple(self.get(path, leaf).shape)
        self.used.discard(self.find(path, leaf))  # type: ignore[arg-type]
        return shape

    def has(self, path: str, leaf: str) -> bool:
        return self.find(path, leaf) is not None

    def unused(self, ignore: Iterable[str] = ()) -> list[str]:
        """Source names no lookup used, except those matching a regex in ``ignore``."""
        patterns = [re.compile(p) for p in ignore]
        return sorted(k for k in self.params if k not in self.used and not any(p.search(k) for p in patterns))

    # ------------------------------------------------------------------ layer helpers
    def conv(self, path: str) -> Tensor:
        """A conv kernel ``[k..., in, out]`` -> torch ``[out, in, k...]``."""
        return conv_kernel(self.get(path, "w"))

    def batch_norm(self, path: str, prefix: str) -> dict[str, Tensor]:
        """BN ``path`` -> torch ``{prefix.weight, .bias, .running_mean, .running_var, .num_batches_tracked}``."""
        return {
            f"{prefix}.weight": self.get(path, "scale").reshape(-1),
            f"{prefix}.bias": self.get(path, "offset").reshape(-1),
            f"{prefix}.running_mean": self.get(path, "mean").reshape(-1),
            f"{prefix}.running_var": self.get(path, "var").reshape(-1),
            f"{prefix}.num_batches_tracked": torch.tensor(0),
        }

    def linear(self, path: str, prefix: str, bias: bool = True) -> dict[str, Tensor]:
        """A Haiku/TF linear ``w [in, out], b [out]`` -> torch ``{prefix.weight [out, in], prefix.bias}``."""
        out = {f"{prefix}.weight": linear_weight(self.get(path, "w"))}
        if bias:
            out[f"{prefix}.bias"] = self.get(path, "b").reshape(-1)
        return out


def conv_kernel(weight: Tensor) -> Tensor:
    """Channels-last kernel ``[k1, ..., kn, in, out]`` -> torch ``[out, in, k1, ..., kn]``."""
    n = weight.dim()
    return weight.permute(n - 1, n - 2, *range(n - 2)).contiguous()


def linear_weight(weight: Tensor) -> Tensor:
    """``[in, out]`` -> ``[out, in]``."""
    return weight.t().contiguous()


def conv1x1_as_linear(weight: Tensor) -> Tensor:
    """A width-1 ``Conv1D`` kernel ``[1, in, out]`` -> a Linear weight ``[out, in]``."""
    if weight.dim() != 3 or weight.shape[0] != 1:
        raise ConversionError(f"expected a width-1 Conv1D kernel [1, in, out], got shape {tuple(weight.shape)}")
    return weight[0].t().contiguous()


def swap_shifted_channels(weight: Tensor, shift_fraction: float = 1 / 8) -> Tensor:
    """The input-channel permutation between MMV's temporal shift and versanet's, applied to the next conv's weight.

    MMV's shift outputs ``[last n channels from t+1, middle, first n from t-1]`` (n = int(C * fraction));
    versanet's keeps each channel in place (first n from t-1, ..., last n from t+1). So the conv that
    reads the shifted tensor needs its first and last n input channels swapped: ``weight [out, C, ...]``
    -> ``out[:, :n] = weight[:, -n:]``, ``out[:, -n:] = weight[:, :n]``, the middle unchanged (an involution).
    """
    n = int(weight.shape[1] * shift_fraction)
    if n == 0:
        return weight.clone()
    out = weight.clone()
    out[:, :n], out[:, -n:] = weight[:, -n:], weight[:, :n]
    return out


def load_exact(module: nn.Module, state_dict: Mapping[str, Tensor], what: str = "converted") -> None:
    """``module.load_state_dict(state_dict)`` requiring the SAME key set and every shape equal; errors list them all."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    extra = sorted(set(state_dict) - set(own))
    shapes = [f"{k}: {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in state_dict and state_dict[k].shape != v.shape]
    if missing or extra or shapes:
        raise ConversionError(
            f"the {what} weights do not fit {type(module).__name__}: "
            + "; ".join(
                part for part in (
                    f"missing {len(missing)} ({', '.join(missing[:5])})" if missing else "",
                    f"unexpected {len(extra)} ({', '.join(extra[:5])})" if extra else "",
                    f"shape mismatches ({', '.join(shapes[:5])})" if shapes else "",
                ) if part
            )
        )
    module.load_state_dict(dict(state_dict), strict=True)
