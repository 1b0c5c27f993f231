"""The `engine-service` process: its settings (declared in `settings`), its terms as the
active engine (`terms`: startup reconciliation before readiness, polling, stepping down when
the lease is lost), and a graceful stop on SIGTERM.

Health: `""` is liveness (SERVING while the process works, a standby included);
`engine_service.v1.EngineService` is readiness (SERVING only on the active engine once its
startup reconciliation committed)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence

from engine_service.adapters.lease import lease_for
from engine_service.crash import crash_point
from engine_service.entrypoints.auth import SERVICE_NAME, TokenInterceptor
from engine_service.entrypoints.console import open_console
from engine_service.entrypoints.grpc_servicer import EngineServicer
from engine_service.entrypoints.migrate import main as migrate_main
from engine_service.entrypoints.settings import ENV_PREFIX, Config, parse_args
from engine_service.entrypoints.terms import (
    RETRY_SECONDS,
    ReadinessInterceptor,
    Term,
    engine_settings,
    hold_lease,
    wait_for_lease,
)
from engine_service.entrypoints.token_options import token_warnings
from engine_service.v1 import engine_service_pb2_grpc as pb_grpc
from service_common.config import effective
from service_common.grpc_server import GrpcServer, serve_metrics, stop_signal
from service_common.logs import configure_logging
from service_common.memory import cap_malloc_arenas
from service_common.secure_default import plaintext_exposed
from service_common.tls import server_credentials
from service_common.tracing import configure_tracing

log = logging.getLogger("engine_service")

# Threads for the unary calls; each open WatchCommand stream has one more (--max-watchers).
UNARY_WORKERS = 16

__all__ = [  # parse_args, Config and ENV_PREFIX: the settings, for the tests and tools
    "ENV_PREFIX",
    "SERVICE_NAME",
    "Config",
    "DeferredServicer",
    "ReadinessInterceptor",
    "TokenInterceptor",
    "engine_settings",
    "hold_lease",
    "main",
    "parse_args",
    "wait_for_lease",
]


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["migrate"]:  # the one subcommand: `engine-service migrate [...]`
        return migrate_main(args[1:])
    config = parse_args(args)
    cap_malloc_arenas()  # before any thread: the RSS stays level (service_common/memory.py)
    configure_logging(config.log_format, config.log_level)
    configure_tracing("engine-service")
    crash_at = crash_point.check_configured()
    if crash_at:
        log.warning("ENGINE_CRASH_AT=%s: this process will die at that point", crash_at)
    log.info("effective configuration: %s", effective(config))
    stopping = stop_signal(log)
    readiness = ReadinessInterceptor()
    credentials = (
        server_credentials(config.tls_cert, config.tls_key)
        if config.tls_cert and config.tls_key
        else None
    )
    server = GrpcServer(
        config.listen,
        [SERVICE_NAME],
        credentials=credentials,
        # A WatchCommand stream holds a thread for as long as it is open: the watchers get
        # threads of their own, so that open streams never take the unary calls' threads.
        max_workers=UNARY_WORKERS + config.max_watchers,
        # Readiness first: a call refused as UNAVAILABLE is neither checked nor logged as done.
        interceptors=[readiness, TokenInterceptor(config.tokens)],
    )
    serve_metrics(config.metrics_listen, log)
    servicer = DeferredServicer(config.max_watchers)
    pb_grpc.add_EngineServiceServicer_to_server(servicer, server.server)
    server.set_live(True)  # liveness ("") from the start, a standby included; readiness later
    server.start(config.bound_address_file)
    log_security(config, server.address)
    console = open_console(config)  # bound now; served once this engine is the active one
    lease = lease_for(config.database_url)
    term = Term(config, server, servicer, readiness, console, lease)
    # Each pass is one term as the active engine; a lost lease ends it, and the next begins
    # when this engine holds the lease again (docs/design.md §10).
    while wait_for_lease(lease, stopping):
        if not term.begin():
            stopping.wait(RETRY_SECONDS)
            continue
        if not hold_lease(lease, term.fence, stopping):
            log.info("stopping: health NOT_SERVING, letting in-flight RPCs finish")
            term.console_stop()
            server.stop(config.grace_seconds)
            term.end()
            lease.release()
            log.info("stopped")
            return
        term.step_down()
    server.stop(config.grace_seconds)
    term.console_stop()
    log.info("stopped while standby")


def log_security(config: Config, address: str) -> None:
    api = "TLS" if config.tls_cert else "PLAINTEXT (no --tls-cert; local development only)"
    tokens = config.tokens
    names = ", ".join(sorted({f"{t.name} ({t.role})" for t in tokens}))
    auth = f"{len(tokens)} bearer token(s): {names}" if tokens else "NO token (open)"
    for warning in token_warnings(config.api_tokens, config.api_token_file):
        log.warning("%s", warning)
    if config.agent_tls is None and config.insecure:
        agents = "PLAINTEXT (no --agent-tls-ca), non-loopback agents too, as --insecure allows"
    elif config.agent_tls is None:
        agents = "PLAINTEXT (no --agent-tls-ca; agents at loopback addresses only)"
    elif config.agent_tls.cert is None:
        agents = "TLS trusting the agent CA, without a client certificate"
    else:
        agents = "mutual TLS"
    level = logging.INFO if config.tls_cert and tokens and config.agent_tls else logging.WARNING
    log.log(
        level,
        'API on %s: %s, %s; to agents: %s. Liveness ("") SERVING; readiness (%s) '
        "NOT_SERVING until this engine is the active one and its startup reconciliation "
        "committed",
        address,
        api,
        auth,
        agents,
        SERVICE_NAME,
    )
    if plaintext_exposed(address, tls=config.tls_cert is not None):
        log.warning(
            "the engine API is PLAINTEXT on %s, a non-loopback address, as --insecure allows: "
            "anyone who reaches it may read it and, without a token, drive the engine",
            address,
        )


class DeferredServicer(EngineServicer):
    """The servicer is registered before the engine exists (a standby serves health only);
    the readiness interceptor keeps calls away until `engine` is set."""

    def __init__(self, max_watchers: int) -> None:
        self.watchers = threading.BoundedSemaphore(max_watchers)
        self.max_watchers = max_watchers


if __name__ == "__main__":
    main()
