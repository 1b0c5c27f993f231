"""TLS for both services: server and channel credentials, and a development PKI.

As VDSM trusts only the engine's CA, an agent given `--tls-client-ca` accepts only clients whose
certificate that CA signed; the engine verifies each agent's certificate and host name (gRPC
checks the address it dials against the certificate's subject alternative names).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def server_credentials(
    cert: Path, key: Path, client_ca: Path | None = None
) -> grpc.ServerCredentials:
    """TLS with this certificate; with `client_ca`, clients must present a certificate it signed."""
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=read(client_ca),
        require_client_auth=client_ca is not None,
    )


@dataclass(frozen=True)
class ClientTls:
    """How a client reaches a TLS server: the CA to trust and, for mutual TLS, its own pair."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None
    # Check the server's certificate against this name instead of the dialled address.
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=read(self.key),
            certificate_chain=read(self.cert),
        )


def channel(address: str, tls: ClientTls | None = None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(address)
    options = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
    return grpc.secure_channel(address, tls.credentials(), options=options)


# -- a development PKI -------------------------------------------------------------------------

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "durable-virt-tasks dev"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    path.chmod(0o600 if private else 0o644)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _alt_names(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)

# The leaf certificates by role: the engine serves and is a client of the agents.
_ROLE_USAGES = (
    ("engine", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
    ("agent", [ExtendedKeyUsageOID.SERVER_AUTH]),
)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    days: int,
) -> x509.CertificateBuilder:
    """A certificate for `key`, valid from five minutes before `now` for `days` days."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _ca_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_name: str, now: datetime.datetime, days: int
) -> x509.Certificate:
    """A self-signed CA that may sign leaf certificates only."""
    return (
        _builder(_name(ca_name), _name(ca_name), ca_key, now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .sign(ca_key, hashes.SHA256())
    )


def _leaf_certificate(
    role: str,
    usages: list[x509.ObjectIdentifier],
    names: list[str],
    key: ec.EllipticCurvePrivateKey,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    now: datetime.datetime,
    days: int,
) -> x509.Certificate:
    """A certificate for `role`, valid for `names`, that the CA `ca` (certificate, key) signs."""
    ca_cert, ca_key = ca
    return (
        _builder(_name(role), ca_cert.subject, key, now, days)
        .add_extension(_alt_names(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )


def _write_pair(
    files: dict[str, Path],
    out: Path,
    role: str,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    """Write `role`.pem and the private `role`.key into `out`, recording them in `files`."""
    files[role] = out / f"{role}.pem"
    files[f"{role}_key"] = out / f"{role}.key"
    _write(files[role], cert.public_bytes(serialization.Encoding.PEM))
    _write(files[f"{role}_key"], _key_pem(key), private=True)


def init_pki(
    out: Path,
    names: Iterable[str] = (),
    days: int = 825,
    ca_name: str = "engine CA",
    include_local: bool = True,
) -> dict[str, Path]:
    """Create a CA, a certificate for the engine (server and client) and one for the agents
    (server), both valid for `names` plus (unless told otherwise) localhost. Returns the files
    by role."""
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key, ca_name, now, days)
    files: dict[str, Path] = {}
    _write_pair(files, out, "ca", ca_cert, ca_key)
    all_names = list(dict.fromkeys([*(DEFAULT_NAMES if include_local else ()), *names]))
    for role, usages in _ROLE_USAGES:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf_certificate(role, usages, all_names, key, (ca_cert, ca_key), now, days)
        _write_pair(files, out, role, cert, key)
    return files
