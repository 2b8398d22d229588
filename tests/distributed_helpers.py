"""Helpers for the tests that start several processes or a server (gloo process groups, the web page) on this machine."""

from __future__ import annotations

import socket
from typing import Any, Callable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (``init_method=tcp://127.0.0.1:<port>``, a server to start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gloo_entry(worker: Callable[[int], Any], rank: int, world: int, port: int, queue: Any) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        queue.put((rank, worker(rank)))
    finally:
        dist.destroy_process_group()


def run_gloo(worker: Callable[[int], Any], world: int = 2, timeout: float = 180) -> list[Any]:
    """``worker(rank)`` in ``world`` spawned processes joined in one gloo group; their results, in rank order.

    ``worker`` must be a module-level function; return numpy arrays and plain data (tensors would be shared
    memory that dies with the process).
    """
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_gloo_entry, args=(worker, rank, world, port, queue)) for rank in range(world)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=timeout) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0, f"a rank exited with {p.exitcode}"
    return [results[rank] for rank in range(world)]
