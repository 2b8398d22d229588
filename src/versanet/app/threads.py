"""One CPU thread for small latency-bound work (one query's scan, a t-SNE map of a thousand points).

Splitting such work across OpenMP threads saves little when the machine is idle and costs a lot when
it is not: each step waits at a barrier for the slowest thread, and on a busy machine that thread is
descheduled. Measured on 2 cores under load 9-11: a 1M x 256-d exact FAISS query took 117 ms on one
thread and 783 ms on two; a 1200-point t-SNE 14 s on one and 117 s on two.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """torch (and FAISS, when loaded) on one thread inside the block; both thread counts restored after.

    FAISS's and torch's OpenMP settings are not independent (setting one can change the other), so both are saved.
    """
    faiss = sys.modules.get("faiss")
    torch_threads = torch.get_num_threads()
    faiss_threads = faiss.omp_get_max_threads() if faiss is not None else None
    torch.set_num_threads(1)
    if faiss is not None:
        faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        if faiss is not None:
            faiss.omp_set_num_threads(faiss_threads)
        torch.set_num_threads(torch_threads)
