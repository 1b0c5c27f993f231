"""Addresses as the settings and the API spell them, `HOST:PORT`, and which of them stay on this
machine. Standard library only, so that any layer may ask."""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = frozenset({"localhost"})


def host_of(address: str) -> str:
    """The host of `HOST:PORT` (`[::1]:50051` gives `::1`); an address without a port is all
    host."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
        host = address  # no port, or a bare IPv6 address such as ::1
    return host.strip().removeprefix("[").removesuffix("]")


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, brackets allowed) only reaches this machine:
    127.0.0.0/8, ::1 (IPv4-mapped too) or `localhost`. `0.0.0.0` and `::` listen on every
    interface, so they are not; no name other than `localhost` is resolved."""
    host = host.strip().removeprefix("[").removesuffix("]").rstrip(".").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # without an IPv6 zone
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def is_loopback_address(address: str) -> bool:
    """Whether `HOST:PORT` only reaches this machine (`is_loopback` of its host)."""
    return is_loopback(host_of(address))
