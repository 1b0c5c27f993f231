"""The engine's read-only web console: `engine-service --ui-listen HOST:PORT` (off by default).

Hosts, commands with live progress, one command's children, tasks and history, and the
reconciliation reports, each page polling its JSON twin every second. It is an entrypoint like
the gRPC servicer: it calls the same `Engine` use cases (`views.py`), renders them with the
templates and static files of this package, and changes nothing. It serves HTTPS with the API's
`--tls-cert`/`--tls-key` when those are set, and asks for one of the API's tokens when there
are any (`access.py`). docs/design.md §14.
"""

from __future__ import annotations

import logging

from engine_service.entrypoints.console.access import ConsoleAccess
from engine_service.entrypoints.console.app import console_app
from engine_service.entrypoints.console.server import ConsoleServer
from engine_service.entrypoints.settings import Config
from engine_service.service_layer.engine import Engine
from service_common.secure_default import plaintext_exposed

log = logging.getLogger("engine_service.console")

__all__ = [
    "ConsoleAccess",
    "ConsoleServer",
    "console_app",
    "load_console",
    "open_console",
    "serve_console",
]


def open_console(config: Config) -> ConsoleServer | None:
    """The console's address, bound at startup (a taken port stops the engine there); None
    without `--ui-listen`."""
    if not config.ui_listen:
        return None
    tls = (config.tls_cert, config.tls_key) if config.tls_cert and config.tls_key else None
    return ConsoleServer(config.ui_listen, tls, config.ui_bound_address_file)


def load_console(console: ConsoleServer, config: Config, engine: Engine) -> None:
    """Prepare the console over the active engine (before it starts its work: a TLS file that
    cannot be read stops it there)."""
    access = ConsoleAccess(config.tokens)
    console.load(console_app(engine, access, secure_cookie=console.tls is not None))


def serve_console(console: ConsoleServer, config: Config) -> None:
    """Serve the console, once the engine's startup reconciliation committed."""
    if not console.start():
        return
    tokens = bool(config.tokens)
    who = "any API token (read is enough)" if tokens else "open: no API token configured"
    transport = "HTTPS" if console.tls else "plaintext HTTP"
    log.info("console at %s (read-only, %s; %s)", console.url, transport, who)
    if plaintext_exposed(console.address, tls=console.tls is not None):
        log.warning(
            "the console is PLAINTEXT on %s, a non-loopback address, as --insecure allows: "
            "anyone who reaches it may read it%s",
            console.address,
            ", and the tokens people log in with" if tokens else "",
        )
