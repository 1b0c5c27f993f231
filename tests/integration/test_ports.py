"""The harness's ports (harness/ports.py): drawn below the kernel's ephemeral range, so that no
socket the kernel numbers by itself can take one between the draw and the service's bind."""

from __future__ import annotations

import socket

from harness import ports


def test_a_port_is_free_and_outside_the_range_the_kernel_hands_out() -> None:
    start = ports._ephemeral_start()
    drawn = {ports.free_port() for _ in range(20)}
    assert all(ports.LOWEST <= port < start for port in drawn), (drawn, start)
    assert len(drawn) > 1  # drawn at random, not one fixed port
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", drawn.pop()))  # free indeed
