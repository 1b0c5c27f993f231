"""Every setting of `vdsm-agent`, each declared once: its flag, variable (VDSM_AGENT_ + the
flag), config-file key (the flag without its leading dashes), default, type and help."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from service_common.config import (
    NON_NEGATIVE_INT,
    PATH,
    POSITIVE_INT,
    CommandLine,
    ServerSettings,
    needs,
    setting,
    settings,
    together,
)
from service_common.secure_default import no_plaintext_off_loopback

ENV_PREFIX = "VDSM_AGENT_"


@settings
class Config(ServerSettings):
    """The agent's settings, from defaults, the --config file, VDSM_AGENT_* variables, flags."""

    listen: str = setting(
        "HOST:PORT to serve gRPC on; port 0 picks a free one", default="127.0.0.1:54321"
    )
    storage_root: Path = setting(
        "the directory holding the storage domains, shared by every agent of a data center",
        type=PATH,
        default=Path("/var/lib/vdsm-agent/storage"),
    )
    state_dir: Path = setting(
        "where this agent keeps its task records",
        type=PATH,
        default=Path("/var/lib/vdsm-agent/state"),
    )
    throttle: int = setting(
        "limit each task's writing speed, bytes per second; 0 = no limit",
        type=NON_NEGATIVE_INT,
        default=0,
    )
    workers: int = setting(
        "tasks that move bytes at once; more wait in state init", type=POSITIVE_INT, default=8
    )
    bound_address_file: Path | None = setting(
        "write the HOST:PORT actually bound here once serving (for --listen HOST:0)", type=PATH
    )
    tls_cert: Path | None = setting(
        "this agent's certificate (PEM): serve TLS instead of plaintext", type=PATH
    )
    tls_key: Path | None = setting("the certificate's private key", type=PATH, secret=True)
    tls_client_ca: Path | None = setting(
        "accept only clients with a certificate this CA signed (mutual TLS)", type=PATH
    )


COMMAND_LINE = CommandLine(
    Config,
    prog="vdsm-agent",
    prefix=ENV_PREFIX,
    description="A fake VDSM host agent: storage domains are directories under the storage "
    "root, images are files, and CreateVolume / CopyImage are asynchronous tasks. Settings "
    "come from the defaults, then the --config file, then VDSM_AGENT_<FLAG> variables, then "
    "flags.",
    rules=(
        together("tls_cert", "tls_key"),
        needs("tls_client_ca", "tls_cert", "tls_key"),
        no_plaintext_off_loopback("agent"),
    ),
)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """The agent's settings from `argv` (default: the process's), the environment and file."""
    return COMMAND_LINE.parse(argv)
