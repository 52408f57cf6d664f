"""Free loopback ports for tests that must name a port."""

from __future__ import annotations

import socket


def free_port_pair() -> int:
    """A port P with P+1 also free at the time of asking."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port pair")
