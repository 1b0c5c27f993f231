"""Database faults as statuses (docs/design.md §10, "A database outage"): which driver errors
mean the database is unavailable (UNAVAILABLE) or its disk full (RESOURCE_EXHAUSTED), how a
unit of work and the servicer report them, that no command pays for them, and the fence an
engine closes when it loses its lease. No database here: the drivers' exception objects are
made by hand, as the drivers raise them."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any, cast

import grpc
import psycopg
import pytest
from psycopg import errors as pg_errors
from sqlalchemy import exc as sa_exc

from engine_service.adapters.agent_client import AgentClient
from engine_service.adapters.db_faults import DatabaseFull, DatabaseUnavailable, database_fault
from engine_service.adapters.lease import Fence, LeaseLost
from engine_service.domain.commands import CommandStatus, Outcome
from engine_service.domain.requests import Conflict
from engine_service.entrypoints.grpc_servicer import EngineServicer
from engine_service.entrypoints.terms import LEASE_LOST, ReadinessInterceptor, hold_lease
from engine_service.service_layer.engine import Engine
from engine_service.service_layer.isolation import CommandEnder
from engine_service.service_layer.lifecycle import CommandLifecycle
from engine_service.service_layer.unit_of_work import UnitOfWork
from engine_service.v1 import engine_service_pb2 as pb
from service_common.errors import ResourceExhausted, Unavailable


def wrapped(orig: BaseException, invalidated: bool = False) -> sa_exc.DBAPIError:
    """What SQLAlchemy raises for a driver's error (OperationalError for these)."""
    return cast(
        sa_exc.DBAPIError,
        sa_exc.DBAPIError.instance(
            "SELECT 1", {}, orig, Exception, connection_invalidated=invalidated
        ),
    )


def sqlite_error(message: str, name: str | None = None) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(message)
    if name is not None:  # as sqlite3 sets it (3.11+)
        exc.sqlite_errorname = name
    return exc


REFUSED = psycopg.OperationalError(
    'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
    "Connection refused\n\tIs the server running on that host?"
)
UNAVAILABLE_ERRORS = {
    "connection refused": wrapped(REFUSED),
    "server closed the connection": wrapped(
        psycopg.OperationalError("consuming input failed: server closed the connection"), True
    ),
    "admin shutdown": wrapped(pg_errors.AdminShutdown("terminating connection")),
    "cannot connect now": wrapped(pg_errors.CannotConnectNow("the database system is starting")),
    "too many connections": wrapped(pg_errors.TooManyConnections("too many clients")),
    "read-only replica": wrapped(pg_errors.ReadOnlySqlTransaction("read-only transaction")),
    "invalidated, any driver error": wrapped(
        psycopg.InterfaceError("the connection is lost"), True
    ),
    "psycopg, unwrapped": REFUSED,
    "pool exhausted": sa_exc.TimeoutError("QueuePool limit of size 10 overflow 20 reached"),
    "sqlite busy": wrapped(sqlite_error("database is locked")),
    "sqlite busy, by code": wrapped(sqlite_error("locked", "SQLITE_BUSY")),
    "sqlite I/O": wrapped(sqlite_error("disk I/O error", "SQLITE_IOERR_WRITE")),
    "sqlite cannot open": wrapped(sqlite_error("unable to open database file")),
    "sqlite read-only": wrapped(sqlite_error("attempt to write a readonly database")),
}
FULL_ERRORS = {
    "postgresql disk full": wrapped(pg_errors.DiskFull("could not extend file")),
    "sqlite full": wrapped(sqlite_error("database or disk is full")),
    "sqlite full, by code": wrapped(sqlite_error("full", "SQLITE_FULL")),
}
NOT_FAULTS = {
    "unique violation": sa_exc.IntegrityError("INSERT", {}, pg_errors.UniqueViolation("dup")),
    "serialization failure": wrapped(pg_errors.SerializationFailure("could not serialize")),
    "statement timeout": wrapped(pg_errors.QueryCanceled("canceling statement")),
    "lock not available": wrapped(pg_errors.LockNotAvailable("could not obtain lock")),
    "sqlite no such table": wrapped(sqlite_error("no such table: hosts", "SQLITE_ERROR")),
    "a bug": ValueError("not a database error"),
    "already a service error": Unavailable("an agent does not answer"),
}


@pytest.mark.parametrize("exc", UNAVAILABLE_ERRORS.values(), ids=list(UNAVAILABLE_ERRORS))
def test_a_database_that_cannot_serve_is_unavailable(exc: BaseException) -> None:
    fault = database_fault(exc)
    assert isinstance(fault, DatabaseUnavailable) and isinstance(fault, Unavailable)
    assert str(fault).startswith("the database is unavailable: ")
    assert "\n" not in str(fault) and "SELECT" not in str(fault)  # one line, no statement


@pytest.mark.parametrize("exc", FULL_ERRORS.values(), ids=list(FULL_ERRORS))
def test_a_full_disk_is_resource_exhausted_and_says_so(exc: BaseException) -> None:
    fault = database_fault(exc)
    assert isinstance(fault, DatabaseFull) and isinstance(fault, ResourceExhausted)
    assert "disk is full" in str(fault) and "reads go on" in str(fault)


@pytest.mark.parametrize("exc", NOT_FAULTS.values(), ids=list(NOT_FAULTS))
def test_other_errors_are_not_database_faults(exc: BaseException) -> None:
    assert database_fault(exc) is None


def test_a_long_driver_message_is_cut() -> None:
    fault = database_fault(psycopg.OperationalError("x" * 5000))
    assert fault is not None and len(str(fault)) < 300


# -- the servicer: every method answers UNAVAILABLE, never INTERNAL ---------------------------


class FailingEngine:
    """Any use case raises `exc` (whatever attribute path the servicer takes)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __getattr__(self, name: str) -> Any:
        if name in ("inventory", "reconciler"):
            return self

        def fail(*args: Any, **kwargs: Any) -> Any:
            raise self.exc

        return fail


class FakeContext:
    """What the servicer and error_mapper use of a grpc.ServicerContext."""

    def __init__(self) -> None:
        self.status: grpc.Status | None = None
        self._code: grpc.StatusCode | None = None

    def abort_with_status(self, status: grpc.Status) -> None:
        self.status, self._code = status, status.code
        raise RuntimeError("aborted")

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self._code = code
        raise RuntimeError("aborted")

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def peer(self) -> str:
        return "ipv4:127.0.0.1:40000"


def answer(servicer: EngineServicer, method: str, request: Any) -> tuple[Any, str]:
    context = FakeContext()
    with pytest.raises(RuntimeError, match="aborted"):
        getattr(servicer, method)(request, context)
    status = context.status
    if status is None:  # context.abort (INTERNAL): no rich status
        return context.code(), ""
    return status.code, status.details


METHODS = {
    "ListHosts": pb.ListHostsRequest(),
    "GetCommand": pb.GetCommandRequest(command_id="0" * 32),
    "AddStorageDomain": pb.AddStorageDomainRequest(name="d"),
    "AddVmTemplate": pb.AddVmTemplateRequest(),
    "CancelCommand": pb.CancelCommandRequest(),
    "ReconcileOrphans": pb.ReconcileOrphansRequest(),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_the_servicer_answers_a_driver_error_unavailable(method: str) -> None:
    """A driver's error that escaped the unit of work (it would be INTERNAL before)."""
    servicer = EngineServicer(cast(Engine, FailingEngine(wrapped(REFUSED))))
    code, details = answer(servicer, method, METHODS[method])
    assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
    assert details.startswith("the database is unavailable: connection failed")


def test_the_servicer_answers_a_full_disk_resource_exhausted() -> None:
    servicer = EngineServicer(cast(Engine, FailingEngine(FULL_ERRORS["sqlite full"])))
    code, details = answer(servicer, "AddStorageDomain", METHODS["AddStorageDomain"])
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "disk is full" in details


def test_the_servicer_answers_a_lost_lease_unavailable() -> None:
    fence = Fence()
    fence.close("the engine lease was lost")
    with pytest.raises(LeaseLost) as lost:
        fence.check()
    servicer = EngineServicer(cast(Engine, FailingEngine(lost.value)))
    code, details = answer(servicer, "ListHosts", METHODS["ListHosts"])
    assert code == grpc.StatusCode.UNAVAILABLE and "database is unavailable" in details


def test_any_other_error_stays_internal() -> None:
    servicer = EngineServicer(cast(Engine, FailingEngine(ValueError("a bug"))))
    code, _ = answer(servicer, "ListHosts", METHODS["ListHosts"])
    assert code == grpc.StatusCode.INTERNAL


# -- the unit of work --------------------------------------------------------------------------


class FakeSession:
    """What UnitOfWork uses of a SQLAlchemy session; `fail_at` names the step that raises."""

    def __init__(self, fail_at: str, exc: BaseException) -> None:
        self.fail_at, self.exc, self.closed = fail_at, exc, False

    def _step(self, name: str) -> None:
        if self.fail_at == name:
            raise self.exc

    def begin(self) -> None:
        self._step("begin")

    def connection(self, **kwargs: Any) -> None:
        self._step("connection")

    def commit(self) -> None:
        self._step("commit")

    def close(self) -> None:
        self.closed = True
        self._step("close")


def unit(fail_at: str, exc: BaseException, read_only: bool = False) -> UnitOfWork:
    session = FakeSession(fail_at, exc)
    return UnitOfWork(cast(Any, lambda: session), read_only)


@pytest.mark.parametrize("step", ["begin", "connection", "commit", "close"])
def test_a_unit_of_work_reports_the_database_down_as_unavailable(step: str) -> None:
    with pytest.raises(DatabaseUnavailable) as raised, unit(step, wrapped(REFUSED), True) as uow:
        if step == "commit":
            uow.read_only = False
            uow.commit()
    assert isinstance(raised.value.__cause__, sa_exc.DBAPIError)


def test_a_unit_of_work_reports_a_full_disk() -> None:
    with pytest.raises(DatabaseFull), unit("commit", FULL_ERRORS["sqlite full"]) as uow:
        uow.commit()


def test_a_unit_of_work_keeps_its_conflicts_and_other_errors() -> None:
    with pytest.raises(Conflict), unit("commit", NOT_FAULTS["unique violation"]) as uow:
        uow.commit()
    with pytest.raises(sa_exc.DBAPIError), unit("commit", NOT_FAULTS["statement timeout"]) as uow:
        uow.commit()


def test_a_failing_rollback_does_not_hide_the_units_own_error() -> None:
    with pytest.raises(KeyError), unit("close", wrapped(REFUSED)):
        raise KeyError("the unit's own error")


# -- no command pays for the database ----------------------------------------------------------


class FailingLifecycle:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.calls = 0

    def finish_many(self, outcomes: dict[str, Outcome]) -> list[str]:
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize(
    "exc",
    [
        DatabaseUnavailable("the database is unavailable: refused"),
        DatabaseFull("the database's disk is full"),
        LeaseLost("lost"),
    ],
    ids=["unavailable", "full", "lease lost"],
)
def test_a_database_fault_while_ending_counts_against_no_command(exc: Exception) -> None:
    """An end that fails for the database's sake is tried again next cycle, as if first: it
    never ends the command FAILED after `limit` tries."""
    lifecycle = FailingLifecycle(exc)
    ender = CommandEnder(cast(CommandLifecycle, lifecycle), limit=2)
    decided = {"c1": Outcome(CommandStatus.SUCCEEDED)}
    for _ in range(5):
        with pytest.raises(type(exc)):
            ender.end(decided)
    assert len(ender.retries) == 0 and lifecycle.calls == 5  # one batch attempt per cycle


# -- the fence and the lease -----------------------------------------------------------------


def test_a_closed_fence_stops_agent_calls_before_they_go_out() -> None:
    fence = Fence()
    client = AgentClient("127.0.0.1:9", timeout=0.1, fence=fence)
    try:
        fence.close("the engine lease was lost")
        with pytest.raises(LeaseLost, match="database is unavailable to this engine"):
            client.create_storage_domain("sd")
        with pytest.raises(LeaseLost):
            client.serving()
    finally:
        client.close()


class FakeLease:
    def __init__(self, held: bool) -> None:
        self._held = held
        self.checks = 0

    def try_acquire(self) -> bool:
        return self._held

    def held(self) -> bool:
        self.checks += 1
        return self._held

    def release(self) -> None:
        self._held = False


def test_hold_lease_ends_when_the_lease_is_lost_and_closes_the_fence() -> None:
    fence, lease = Fence(), FakeLease(held=False)
    assert hold_lease(lease, fence, threading.Event(), every=0.0) is True
    assert fence.closed and "lease was lost" in fence.reason


def test_hold_lease_ends_when_a_connection_found_the_lease_lost() -> None:
    fence, lease = Fence(), FakeLease(held=True)
    fence.close("found opening a connection")
    assert hold_lease(lease, fence, threading.Event(), every=0.0) is True
    assert lease.checks == 0


def test_hold_lease_ends_false_when_told_to_stop() -> None:
    stopping = threading.Event()
    stopping.set()
    fence, lease = Fence(), FakeLease(held=True)
    assert hold_lease(lease, fence, stopping, every=0.0) is False
    assert not fence.closed


class Aborted(Exception):
    pass


class RefusalContext:
    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


def test_not_ready_after_a_lost_lease_says_the_database_is_unavailable() -> None:
    readiness = ReadinessInterceptor()
    readiness.why = LEASE_LOST
    details = type("Details", (), {"method": "/engine_service.v1.EngineService/ListHosts"})()
    handler = readiness.intercept_service(lambda d: None, details)
    with pytest.raises(Aborted) as refused:
        handler.unary_unary(pb.ListHostsRequest(), RefusalContext())
    code, message = refused.value.args
    assert code == grpc.StatusCode.UNAVAILABLE
    assert message.startswith("the database is unavailable to this engine")
    assert "engine_service.v1.EngineService) is SERVING" in message
