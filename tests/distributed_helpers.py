"""Helpers for the tests that start several processes or a server (gloo process groups, the web page) on this machine."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (``init_method=tcp://127.0.0.1:<port>``, a server to start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
