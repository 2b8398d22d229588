"""Seeds derived from positions: the data's randomness from ``(seed, epoch, index)``, the model's from ``(seed, epoch, batch, rank)``.

What a sample or a training batch draws is then a function of where it is in the run, so a resumed
run draws exactly as the uninterrupted one (Lightning checkpoints no RNG state).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

_MASK = 2**64 - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers, each mixed in with splitmix64: nearby inputs give unrelated seeds (a few microseconds)."""
    x = 0
    for part in parts:
        x = _splitmix64(x ^ (int(part) & _MASK))
    return x >> 1


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded to ``seed``, restoring its state afterwards.

    ``torch.default_generator`` directly: ``torch.manual_seed`` also seeds every other device
    backend (about 1 ms a call) and ``torch.random.fork_rng`` copies more state than needed.
    """
    generator = torch.default_generator
    state = generator.get_state()
    generator.manual_seed(seed)
    try:
        yield
    finally:
        generator.set_state(state)
