"""The engine's terms as the active engine (docs/design.md §10, "Losing the lease").

A process competes for the lease (`wait_for_lease`), then serves one term: a new engine (its
own connection pool, agent clients and `Fence`) migrates, reconciles and turns ready. The term
lasts until the process is told to stop, or until the lease is lost (`hold_lease`): the
database restarted or the lease's session broke. Then the fence closes at once, so that no unit
of work and no agent call of that engine goes out again; readiness turns NOT_SERVING (API calls
answer UNAVAILABLE, saying the database is unavailable); the workers stop, the pool is
disposed, the lease released; and the process competes again, live all along. Whichever engine
wins starts a new term. The process never exits for a lost lease.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import grpc

from engine_service.adapters.db import Database, SchemaNotCurrent, make_engine
from engine_service.adapters.db_faults import DatabaseFull, DatabaseUnavailable, database_fault
from engine_service.adapters.lease import EngineLease, Fence, LeaseLost, guard_connections
from engine_service.bootstrap import EngineSettings, PollSettings, bootstrap
from engine_service.entrypoints.auth import SERVICE_NAME, refusal
from engine_service.entrypoints.console import ConsoleServer, load_console, serve_console
from engine_service.entrypoints.grpc_servicer import EngineServicer
from engine_service.entrypoints.settings import Config
from engine_service.service_layer.engine import Engine
from service_common.grpc_server import GrpcServer
from service_common.memory import freeze_startup_objects

log = logging.getLogger("engine_service")

RETRY_SECONDS = 1.0  # between two attempts at the lease, or at starting a term
# What makes a term that did not start compete again rather than stop the process.
DATABASE_FAULTS = (DatabaseUnavailable, DatabaseFull, LeaseLost)
LEASE_CHECK_SECONDS = 1.0  # the watchdog's period (a new pool connection checks at once)
NOT_ACTIVE = "the engine is not serving (standing by, or reconciling at startup)"
LEASE_LOST = (
    "the database is unavailable to this engine: it lost its lease (its database session) "
    "and competes for it again"
)


class ReadinessInterceptor(grpc.ServerInterceptor):
    """Engine API calls wait for the startup reconciliation: UNAVAILABLE until then, and
    again from the moment the engine loses its lease until a new term is ready (`why` says
    which)."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.why = NOT_ACTIVE

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        if self.ready.is_set() or not details.method.startswith(f"/{SERVICE_NAME}/"):
            return continuation(details)

        return refusal(
            continuation(details),
            grpc.StatusCode.UNAVAILABLE,
            f"{self.why}; retry when its health ({SERVICE_NAME}) is SERVING",
        )


def wait_for_lease(
    lease: EngineLease, stopping: threading.Event, retry: float = RETRY_SECONDS
) -> bool:
    """Become the active engine; a standby waits here, live but not ready (its readiness
    NOT_SERVING). False if told to stop."""
    announced = False
    last_problem = ""
    while not stopping.is_set():
        try:
            if lease.try_acquire():
                log.info("this engine holds the lease: it is the active engine")
                return True
            if not announced:
                log.warning("another engine is active on this database: standing by")
                announced = True
        except Exception as exc:  # the database is not up yet, or went away
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            if problem != last_problem:  # once per problem, not once a second
                log.warning("cannot reach the database for the engine lease yet: %s", problem)
                last_problem = problem
        stopping.wait(retry)
    return False


def hold_lease(
    lease: EngineLease,
    fence: Fence,
    stopping: threading.Event,
    every: float = LEASE_CHECK_SECONDS,
) -> bool:
    """While active: True once the lease is lost (found by this watchdog, or by a new database
    connection: the fence is closed either way), False if told to stop first."""
    checked = time.monotonic()
    while True:
        if fence.closed:
            return True
        if time.monotonic() - checked >= every:
            checked = time.monotonic()
            if not lease.held():
                fence.close("the engine lease was lost (its database session ended)")
                return True
        if stopping.wait(0.1):
            return False


class Term:
    """This process's terms as the active engine, one at a time: `begin` builds a new engine
    over the database, migrates, reconciles and serves; `step_down` ends a term whose lease
    was lost; `end` stops the engine (also at SIGTERM)."""

    def __init__(
        self,
        config: Config,
        server: GrpcServer,
        servicer: EngineServicer,
        readiness: ReadinessInterceptor,
        console: ConsoleServer | None,
        lease: EngineLease,
    ) -> None:
        self.config = config
        self.server = server
        self.servicer = servicer
        self.readiness = readiness
        self.console = console
        self.lease = lease
        self.fence = Fence()
        self.engine: Engine | None = None
        self.db: Database | None = None
        self.console_bound = console is not None  # bound at startup; closed by a step-down

    def begin(self) -> bool:
        """Build, migrate and reconcile, then turn ready. False if the database failed
        meanwhile (nothing is left running and the lease is released: compete again); any
        other error stops the process, as it would at its first start."""
        self.fence = Fence()
        self.db = make_engine(self.config.database_url)
        guard_connections(self.db, self.lease, self.fence)
        try:
            self.engine = self.bootstrapped(self.db)
            self.servicer.engine = self.engine
            console = self.reopened_console()
            if console is not None:
                load_console(console, self.config, self.engine)
            log.info("reconciling at startup")
            report = self.engine.start()
        except Exception as exc:
            self.fence.close("its term did not start")
            self.end()
            self.lease.release()
            fault = exc if isinstance(exc, DATABASE_FAULTS) else database_fault(exc)
            if fault is None:
                raise  # not the database's doing: a bug, or a setting; the process stops
            log.error(
                "could not become the active engine (%s); released the lease, trying again", fault
            )
            return False
        if console is not None:
            serve_console(console, self.config)
        frozen = freeze_startup_objects()  # full collections then skip them (memory.py)
        log.debug("%d objects made before serving left out of full collections", frozen)
        self.readiness.ready.set()
        self.server.set_ready(True)
        log.info("SERVING as the active engine; startup reconciliation: %s", report)
        return True

    def bootstrapped(self, db: Database) -> Engine:
        """The engine, its database migrated; with --no-migrate and a schema not at the newest
        revision, one line and exit status 2 instead."""
        try:
            return bootstrap(engine_settings(self.config), db=db, fence=self.fence)
        except SchemaNotCurrent as exc:
            log.critical("%s", exc)
            self.console_stop()
            self.server.stop(0)
            self.lease.release()
            raise SystemExit(2) from None

    def reopened_console(self) -> ConsoleServer | None:
        """The console, bound again if a step-down closed it; None if that fails (the engine
        goes on without it: it only reads)."""
        if self.console is not None and not self.console_bound:
            try:
                self.console.reopen()
            except SystemExit as exc:
                log.error("the console cannot be served again: %s", exc)
                return None
            self.console_bound = True
        return self.console if self.console_bound else None

    def step_down(self) -> None:
        """The lease is lost and the fence closed: not ready at once, then every worker
        stopped, the console closed, the pool disposed and the lease released."""
        self.readiness.why = LEASE_LOST
        self.readiness.ready.clear()
        self.server.set_ready(False)
        log.critical(
            "%s: this engine stopped all work and is NOT READY; competing for the lease again",
            self.fence.reason,
        )
        self.console_stop()
        self.end()
        self.lease.release()
        log.warning("stepped down: every worker of the lost term has stopped")

    def console_stop(self) -> None:
        if self.console is not None and self.console_bound:
            self.console.stop()
            self.console_bound = False

    def end(self) -> None:
        """Stop the engine's workers (at their next step) and close its pool."""
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        if self.db is not None:
            self.db.dispose()
            self.db = None


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
