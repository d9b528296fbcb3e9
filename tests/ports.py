"""Loopback ports for test servers, shared by every tier.

A port the kernel hands out for bind(0) is an ephemeral one: between the check and the server's
own bind, any outgoing connection on the machine may take it as its local port (seen on CI: an
operator restarted by a test failed to bind its health port, `address already in use`). So a
server's port is drawn from below the kernel's ephemeral range, where only listeners live.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing holds on `host` (any loopback host is checked on all addresses), below
    the kernel's ephemeral range."""
    low = ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0" if host.startswith("127.") else host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port below {low}")


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default when unreadable)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
