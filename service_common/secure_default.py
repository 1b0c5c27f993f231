"""Secure by default: no plaintext off loopback unless asked.

A server without a certificate (`--tls-cert`) may listen on a loopback address only (127.0.0.0/8,
::1, `localhost`): on any other address, `0.0.0.0` and `[::]` included, it refuses to start with
one line saying how to get certificates, unless `--insecure` accepts the risk. The engine applies
the same rule to the agents it reaches in plaintext (no `--agent-tls-ca`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service_common.addresses import is_loopback_address
from service_common.config import Policy

PKI_INIT = "enginectl pki init --out DIR --name HOST"


@dataclass(frozen=True)
class PlaintextOffLoopback(Policy):
    """Refuse plaintext on a non-loopback `listen` address unless `insecure` is set. `role`
    names the certificate files that `enginectl pki init` writes for this program."""

    role: str
    listen: str = "listen"
    cert: str = "tls_cert"
    key: str = "tls_key"
    insecure: str = "insecure"

    def problem(self, values: Mapping[str, Any], flag: Callable[[str], str]) -> str | None:
        address = values[self.listen]
        if address is None or values[self.cert] is not None or values[self.insecure]:
            return None  # not listening (an optional address), TLS, or the risk accepted
        if is_loopback_address(address):
            return None
        which = "" if self.listen == "listen" else f" ({flag(self.listen)})"
        return (
            f"refusing plaintext on {address}{which}, which is not a loopback address: make "
            f"certificates with `{PKI_INIT}` and pass {flag(self.cert)} DIR/{self.role}.pem "
            f"{flag(self.key)} DIR/{self.role}.key, or pass {flag(self.insecure)} to accept "
            "plaintext there"
        )


def no_plaintext_off_loopback(role: str, listen: str = "listen") -> PlaintextOffLoopback:
    """The rule for a program whose `enginectl pki init` files are `ROLE.pem` and `ROLE.key`,
    on its setting `listen` (another one: the engine's console, `ui_listen`)."""
    return PlaintextOffLoopback(role, listen)


def plaintext_exposed(address: str, tls: bool) -> bool:
    """Whether a server at `address` serves plaintext beyond this machine (`--insecure`)."""
    return not tls and not is_loopback_address(address)
