"""The console's web server: uvicorn on a thread of the engine process.

The address is bound when the process starts, like the API's, so a port already taken stops it
at once; nothing answers there (connections are refused) until the engine is the active one:
`load` prepares uvicorn over the engine (reading the TLS files) before its startup
reconciliation, `start` serves on that socket once it committed, and the console's address is
written to `--ui-bound-address-file`. A standby does not serve the console. `stop` (SIGTERM,
or a lost lease) lets requests under way finish, briefly; after a lost lease `reopen` binds the
same address again for the engine's next term.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from service_common.grpc_server import host_port

log = logging.getLogger("engine_service.console")

START_SECONDS = 10.0
STOP_SECONDS = 3  # requests under way get this long after SIGTERM; the console only reads


def bind(listen: str) -> socket.socket:
    """A TCP socket bound to `listen` (HOST:PORT; port 0 picks one), not yet listening.
    SystemExit, naming the setting, if the address cannot be had."""
    host, port = host_port(listen)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise SystemExit(f"--ui-listen: cannot listen on {listen}: {exc}") from None
    return sock


class ConsoleServer:
    """The console's uvicorn server, on a thread, over a socket bound beforehand."""

    def __init__(
        self, listen: str, tls: tuple[Path, Path] | None = None, address_file: Path | None = None
    ) -> None:
        self.sock = bind(listen)
        self.tls = tls  # (certificate, key): HTTPS
        self.address_file = address_file
        host, port = self.sock.getsockname()[:2]
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}/"

    def load(self, app: ASGIApp) -> None:
        """Prepare to serve `app`: the TLS files are read here, so a bad one stops the engine
        before it starts any work."""
        cert, key = self.tls if self.tls else (None, None)
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,  # the engine's logging, as configured
            log_level="warning",
            access_log=False,  # one line per poll per browser would drown the engine's log
            proxy_headers=False,  # the peer is who connected: no proxy is trusted
            server_header=False,
            ssl_certfile=cert,
            ssl_keyfile=key,
            timeout_graceful_shutdown=STOP_SECONDS,
        )
        try:
            config.load()
        except OSError as exc:  # ssl.SSLError is one
            message = f"--ui-listen: cannot serve HTTPS with {cert} and {key}: {exc}"
            raise SystemExit(message) from None
        self.server = uvicorn.Server(config)

    def start(self, timeout: float = START_SECONDS) -> bool:
        """Serve on a thread; True once uvicorn accepts connections. A console that does not
        start is logged, and the engine goes on without it: it only reads."""
        server = self.server
        assert server is not None, "load() first"
        self.thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self.sock]}, name="console", daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                log.error(
                    "the console did not start on %s; the engine goes on without it", self.address
                )
                return False
            time.sleep(0.01)
        if self.address_file is not None:
            tmp = self.address_file.with_suffix(".tmp")
            tmp.write_text(self.address)
            tmp.replace(self.address_file)
        return True

    def stop(self) -> None:
        """Stop serving (requests under way get STOP_SECONDS) and release the address."""
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(STOP_SECONDS + 2)
        self.server = self.thread = None
        self.sock.close()

    def reopen(self) -> None:
        """Bind the same address again after `stop`, for the engine's next term as the active
        engine (a lost lease stopped the console: docs/design.md §10). SystemExit if taken."""
        self.sock = bind(self.address)
