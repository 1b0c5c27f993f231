"""Channels to the engine: TLS (and mutual TLS) with the token as call credentials, or
plaintext, which only a loopback address may use unless the caller says it is insecure on
purpose (as the servers refuse to listen in plaintext elsewhere)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import grpc


def is_loopback(target: str) -> bool:
    host = target.rsplit(":", 1)[0].strip("[]") if ":" in target else target
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read(source: bytes | Path | None) -> bytes | None:
    return source.read_bytes() if isinstance(source, Path) else source


def open_channels(
    target: str,
    ca: bytes | Path | None,
    cert: bytes | Path | None,
    key: bytes | Path | None,
    server_name: str | None,
    token: str | None,
    insecure: bool,
) -> tuple[list[grpc.Channel], list[tuple[str, str]]]:
    """A channel per address of `target` ("host:port", or several separated by commas), and
    the metadata every call sends (the token, on plaintext channels)."""
    addresses = [a.strip() for a in target.split(",") if a.strip()]
    if not addresses:
        raise ValueError("target: no address given")
    channels: list[grpc.Channel] = []
    for address in addresses:
        if ca is not None:
            credentials = grpc.ssl_channel_credentials(_read(ca), _read(key), _read(cert))
            if token:
                credentials = grpc.composite_channel_credentials(
                    credentials, grpc.access_token_call_credentials(token)
                )
            options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
            channels.append(grpc.secure_channel(address, credentials, options=options))
        else:
            if not insecure and not is_loopback(address):
                raise ValueError(
                    f"target: {address} is not a loopback address; give ca= for TLS, "
                    "or insecure=True to send calls (and a token) in plaintext"
                )
            channels.append(grpc.insecure_channel(address))
    metadata = [("authorization", f"Bearer {token}")] if token and ca is None else []
    return channels, metadata
