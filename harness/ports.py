"""A TCP port for a process the harness starts and tells which port to listen on.

Asking the kernel for a free one (bind to port 0, close, pass the number on) races with every
socket opened meanwhile: the kernel hands out the same ephemeral range to other bind-to-0 calls
and to every outgoing connection, and on a busy test machine one took an engine's metrics port
in the second between the probe and the engine's own bind ("Address already in use"). So the
port is drawn at random below the ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`),
where the kernel never hands one out by itself, and checked to be free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000  # below this, well-known services of the machine


def _ephemeral_start() -> int:
    try:
        return int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port(host: str = "127.0.0.1", attempts: int = 200) -> int:
    """A port on `host` nobody listens on, outside the kernel's ephemeral range."""
    top = _ephemeral_start()
    if top - LOWEST < 1_000:  # a machine whose ephemeral range starts low: the kernel's pick
        with socket.socket() as probe:
            probe.bind((host, 0))
            return int(probe.getsockname()[1])
    for _ in range(attempts):
        port = random.randrange(LOWEST, top)
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {host} between {LOWEST} and {top} in {attempts} tries")
