"""The `engine-service` process: its settings (declared in `settings`), startup
reconciliation before readiness, polling, and a graceful stop on SIGTERM.

Health: `""` is liveness (SERVING while the process works, a standby included);
`engine_service.v1.EngineService` is readiness (SERVING only on the active engine once its
startup reconciliation committed)."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

import grpc

from engine_service.adapters.db import SchemaNotCurrent
from engine_service.adapters.lease import EngineLease, lease_for
from engine_service.bootstrap import EngineSettings, PollSettings, bootstrap
from engine_service.crash import crash_point
from engine_service.entrypoints.auth import SERVICE_NAME, TokenInterceptor, refusal
from engine_service.entrypoints.console import (
    ConsoleServer,
    load_console,
    open_console,
    serve_console,
)
from engine_service.entrypoints.grpc_servicer import EngineServicer
from engine_service.entrypoints.migrate import main as migrate_main
from engine_service.entrypoints.settings import ENV_PREFIX, Config, parse_args
from engine_service.entrypoints.token_options import token_warnings
from engine_service.service_layer.engine import Engine
from engine_service.v1 import engine_service_pb2_grpc as pb_grpc
from service_common.config import effective
from service_common.grpc_server import GrpcServer, serve_metrics, stop_signal
from service_common.logs import configure_logging
from service_common.secure_default import plaintext_exposed
from service_common.tls import server_credentials
from service_common.tracing import configure_tracing

log = logging.getLogger("engine_service")

__all__ = [  # parse_args, Config and ENV_PREFIX: the settings, for the tests and tools
    "ENV_PREFIX",
    "SERVICE_NAME",
    "Config",
    "DeferredServicer",
    "ReadinessInterceptor",
    "TokenInterceptor",
    "main",
    "parse_args",
    "wait_for_lease",
    "watch_lease",
]


class ReadinessInterceptor(grpc.ServerInterceptor):
    """Engine API calls wait for the startup reconciliation: UNAVAILABLE until then."""

    def __init__(self) -> None:
        self.ready = threading.Event()

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        if self.ready.is_set() or not details.method.startswith(f"/{SERVICE_NAME}/"):
            return continuation(details)

        return refusal(
            continuation(details),
            grpc.StatusCode.UNAVAILABLE,
            "the engine is not serving (standing by, or reconciling at startup); "
            f"retry when its health ({SERVICE_NAME}) is SERVING",
        )


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["migrate"]:  # the one subcommand: `engine-service migrate [...]`
        return migrate_main(args[1:])
    config = parse_args(args)
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
    if not wait_for_lease(lease, stopping):
        server.stop(config.grace_seconds)
        if console is not None:
            console.stop()
        log.info("stopped while standby")
        return
    engine = bootstrapped(config, server, lease, console)
    servicer.engine = engine
    if console is not None:
        load_console(console, config, engine)
    report = engine.start()
    if console is not None:
        serve_console(console, config)
    readiness.ready.set()
    server.set_ready(True)
    log.info("SERVING as the active engine; startup reconciliation: %s", report)
    watch_lease(lease, stopping)
    stopping.wait()
    log.info("stopping: health NOT_SERVING, letting in-flight RPCs finish")
    if console is not None:
        console.stop()
    server.stop(config.grace_seconds)
    engine.stop()
    lease.release()
    log.info("stopped")


def bootstrapped(
    config: Config, server: GrpcServer, lease: EngineLease, console: ConsoleServer | None
) -> Engine:
    """The engine, its database migrated; with --no-migrate and a schema not at the newest
    revision, one line and exit status 2 instead."""
    try:
        return bootstrap(engine_settings(config))
    except SchemaNotCurrent as exc:
        log.critical("%s", exc)
        if console is not None:
            console.stop()
        server.stop(0)
        lease.release()
        raise SystemExit(2) from None


def engine_settings(config: Config) -> EngineSettings:
    """What the engine's core needs of the process's settings."""
    return EngineSettings(
        agent_tls=config.agent_tls,
        plaintext_agents_off_loopback=config.insecure,
        database_url=config.database_url,
        migrate=not config.no_migrate,
        orphans=config.orphans,
        retention=config.retention,
        poll=PollSettings(
            interval=config.poll_interval,
            host_failure_polls=config.host_failure_polls,
            task_timeout=config.task_timeout,
            zombie_grace=config.zombie_grace,
            agent_deadline=config.agent_deadline,
            command_timeout=config.command_timeout,
            sweep_after=config.sweep_after,
        ),
    )


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


def wait_for_lease(lease: EngineLease, stopping: threading.Event, retry: float = 1.0) -> bool:
    """Become the active engine; a standby waits here, live but not ready (its readiness
    NOT_SERVING). False if told to stop."""
    announced = False
    while not stopping.is_set():
        try:
            if lease.try_acquire():
                log.info("this engine holds the lease: it is the active engine")
                return True
            if not announced:
                log.warning("another engine is active on this database: standing by")
                announced = True
        except Exception as exc:  # the database is not up yet, or went away
            log.warning("cannot reach the database for the engine lease yet: %s", exc)
        stopping.wait(retry)
    return False


def watch_lease(lease: EngineLease, stopping: threading.Event, every: float = 2.0) -> None:
    """Fencing: an engine that lost its lease stops at once, so two never work together."""

    def watch() -> None:
        while not stopping.wait(every):
            if not lease.held():
                log.critical(
                    "the engine lease was lost (database session gone): exiting so "
                    "that a standby can take over"
                )
                os._exit(3)

    threading.Thread(target=watch, name="lease-watchdog", daemon=True).start()


if __name__ == "__main__":
    main()
