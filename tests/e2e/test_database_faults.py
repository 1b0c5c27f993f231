"""Database faults (docs/design.md §10, "A database outage"), with real processes: the engine's
PostgreSQL is the tests' own (harness.pg_server), stopped, restarted and killed -9 under a
running engine; SQLite's disk fills up (a small tmpfs).

- An outage: every API call answers UNAVAILABLE saying the database is unavailable (never
  INTERNAL or UNKNOWN), the engine turns not ready but stays live, and once the database is
  back it is ready again by itself, the same process, every invariant holding.
- kill -9 of the database in the middle of a submission, of the reconciliation that follows,
  of a poll, of an on-demand ReconcileOrphans and of a command's end: nothing is lost or
  ended twice; every command is terminal once the database is back.
- Two engines on one database that restarts: the active one loses its lease, one of them
  wins, and the two are never ready (working) at the same time.
- SQLite's disk full: writes answer RESOURCE_EXHAUSTED naming the full disk, reads go on,
  and once space is freed writes go on, without a restart.

Where a fault must hit a precise moment, the test holds the engine there first: an agent
stopped with SIGSTOP holds a submission in its agent call, and a row lock taken by the test
holds a transaction in its statement (seen waiting in pg_stat_activity).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest

from engine_service.service_layer.reconciliation import ORPHAN_REASON
from engine_service.v1 import engine_service_pb2 as pb
from harness import tmpfs
from harness.engine_client import wait_command
from harness.invariants import database_state
from harness.pg_server import PostgresServer
from harness.processes import AgentProcess, EngineProcess
from harness.scenario import DataCenter

MiB = 1 << 20
T = 30
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """This module's engines: a fresh database in the tests' own PostgreSQL, or SQLite on the
    small disk of a test that asks for `small_disk`."""
    if "small_disk" in request.fixturenames:
        disk: Path = request.getfixturevalue("small_disk")
        return f"sqlite:///{disk / 'engine.db'}"
    server: PostgresServer = request.getfixturevalue("own_postgres")
    return server.create_database()


# -- helpers -------------------------------------------------------------------------------------


def failure(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """The status code and message of a call that must fail."""
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    raise AssertionError("the call succeeded during a database fault")


def assert_unavailable(name: str, call: Callable[[], object]) -> None:
    code, details = failure(call)
    assert code == UNAVAILABLE, f"{name}: {code} {details}"
    assert "database" in details and "unavailable" in details, f"{name}: {details}"


def wait_until(what: str, check: Callable[[], bool], timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not {what} after {timeout}s"
        time.sleep(0.05)


@contextmanager
def paused(agent: AgentProcess) -> Iterator[None]:
    """The agent stopped (SIGSTOP): calls to it hang until it continues (SIGCONT)."""
    assert agent.proc is not None
    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)


@contextmanager
def paused_engine(engine: EngineProcess) -> Iterator[None]:
    assert engine.proc is not None
    os.kill(engine.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(engine.proc.pid, signal.SIGCONT)


class RowLock:
    """Rows of `table` locked FOR NO KEY UPDATE by the test's own transaction: an engine
    statement that updates them waits (inserts that refer to them do not). A killed database
    drops it; `take` takes it again."""

    def __init__(self, url: str, table: str, where: str, params: tuple[Any, ...] = ()) -> None:
        self.url, self.table, self.where, self.params = url, table, where, params
        self.connection: psycopg.Connection[Any] | None = None

    def take(self) -> None:
        self.connection = psycopg.connect(self.url)
        rows = self.connection.execute(
            f"SELECT 1 FROM {self.table} WHERE {self.where} FOR NO KEY UPDATE", self.params
        ).fetchall()
        assert rows, f"nothing in {self.table} where {self.where} {self.params}"

    def release(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(psycopg.Error):  # the database may be dead
                self.connection.close()
            self.connection = None


@contextmanager
def row_locked(url: str, table: str, where: str, params: tuple[Any, ...] = ()) -> Iterator[None]:
    lock = RowLock(url, table, where, params)
    lock.take()
    try:
        yield
    finally:
        lock.release()


def wait_blocked(url: str, statement: str, timeout: float = T, containing: str = "") -> None:
    """Until an engine session waits on a lock in a statement starting with `statement` (and
    holding `containing`)."""

    def blocked() -> bool:
        with psycopg.connect(url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            ).fetchall()
        return any(
            str(q).lstrip().upper().startswith(statement.upper())
            and containing.upper() in str(q).upper()
            for (q,) in rows
        )

    wait_until(f"blocked in {statement}", blocked, timeout)


def lease_losses(engine: EngineProcess) -> int:
    """How many times the engine lost its lease while active (and stepped down)."""
    return engine.log_path.read_text().count("stopped all work and is NOT READY")


def terms(engine: EngineProcess) -> int:
    """How many times the engine took the lease (began a term as the active engine)."""
    return engine.log_path.read_text().count("this engine holds the lease")


def template_commands(dc: DataCenter) -> list[pb.Command]:
    return [c for c in dc.commands() if c.action_type == "AddVmTemplate"]


def servings(engine: EngineProcess) -> int:
    """How many times the engine turned ready (a term's startup reconciliation committed)."""
    return engine.log_path.read_text().count("SERVING as the active engine")


def healed(dc: DataCenter, pid: int, served: int) -> None:
    """The engine is ready again by itself in a new term (it had served `served` times
    before the fault): the same process, never restarted."""
    engine = dc.engine

    def serving_again() -> bool:
        assert engine.running, f"the engine exited:\n{engine.log_tail()}"
        return servings(engine) > served

    wait_until("ready in a new term", serving_again)
    engine.wait_serving(timeout=T)
    assert engine.proc is not None and engine.proc.pid == pid and engine.running


# -- an outage -----------------------------------------------------------------------------------


def test_an_outage_answers_unavailable_and_the_engine_heals_by_itself(
    make_dc: Any, own_postgres: PostgresServer
) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB, disks=1)
    engine = dc.engine
    assert engine.proc is not None
    pid = engine.proc.pid
    command_id = dc.start_template(vm, "through-an-outage", dst).command.command_id
    wait_command(dc.stub, command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks))

    served = servings(engine)
    own_postgres.stop()
    stub = dc.stub
    calls: dict[str, Callable[[], object]] = {
        "ListHosts": lambda: stub.ListHosts(pb.ListHostsRequest(), timeout=T),
        "GetCommand": lambda: stub.GetCommand(
            pb.GetCommandRequest(command_id=command_id), timeout=T
        ),
        "AddStorageDomain": lambda: stub.AddStorageDomain(
            pb.AddStorageDomainRequest(name="refused"), timeout=T
        ),
        "AddVmTemplate": lambda: dc.start_template(vm, "refused", dst),
        "ReconcileOrphans": lambda: stub.ReconcileOrphans(pb.ReconcileOrphansRequest(), timeout=T),
        "WatchCommand": lambda: next(
            iter(stub.WatchCommand(pb.WatchCommandRequest(command_id=command_id), timeout=T))
        ),
    }
    for name, call in calls.items():  # at once, before the engine noticed its lease went
        assert_unavailable(name, call)
    wait_until("not ready", lambda: engine.health() == "NOT_SERVING", timeout=10)
    assert engine.health("") == "SERVING"  # live: a liveness probe leaves it alone
    for name, call in calls.items():  # and while it is not ready
        assert_unavailable(name, call)
    assert engine.running

    own_postgres.start()
    healed(dc, pid, served)
    command = wait_command(dc.stub, command_id)
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    assert [c.command_id for c in template_commands(dc)] == [command_id]  # nothing half-made
    dc.check_invariants()
    assert lease_losses(engine) == 1


# -- kill -9 at precise moments ------------------------------------------------------------------


def only_template_id(url: str) -> str:
    """The one AddVmTemplate command, read from the database (the API is down meanwhile)."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT command_id FROM commands WHERE parent_id IS NULL "
            "AND action_type = 'AddVmTemplate'"
        ).fetchall()
    assert len(rows) == 1, rows
    return str(rows[0][0])


def test_kill_9_mid_submission_then_mid_the_reconciliation_after_it(
    make_dc: Any, own_postgres: PostgresServer
) -> None:
    dc, vm, src, dst = make_dc(disks=2)
    engine, host = dc.engine, dc.agents[0]
    assert engine.proc is not None
    pid, url = engine.proc.pid, engine.database_url
    answers: list[tuple[grpc.StatusCode, str]] = []
    served = servings(engine)

    # 1. The submission: its placeholders committed, its first CopyImage (sent alone) held by
    # a stopped agent, the database killed; the agent then accepts the copy, and the check of
    # the second copy's host fails: the agent was held for longer than the submission trusts
    # its read of the hosts (HOST_SNAPSHOT_SECONDS), so that host is read again, from the dead
    # database. The second copy is never sent; the first's id is never stored.
    with paused(host):
        submit = threading.Thread(
            target=lambda: answers.append(failure(lambda: dc.start_template(vm, "tpl", dst)))
        )
        submit.start()
        wait_until("placeholders committed", lambda: database_state(url).placeholders == 2)
        time.sleep(0.2)  # the first CopyImage is on its way to the stopped agent
        own_postgres.kill9()
        time.sleep(1.2)  # past HOST_SNAPSHOT_SECONDS
    submit.join(T)
    ((code, details),) = answers
    assert code == UNAVAILABLE and "database" in details, (code, details)

    # 2. The reconciliation of the engine's next term: held by a row lock in its one
    # transaction (the adopted copy recorded, the command being failed), the database killed.
    with paused_engine(engine):  # it does not compete before the lock is taken
        own_postgres.start()
        command_id = only_template_id(url)
    with row_locked(url, "commands", "command_id = %s", (command_id,)):
        wait_blocked(url, "UPDATE commands")
        own_postgres.kill9()
    own_postgres.start()

    healed(dc, pid, served)
    (command,) = template_commands(dc)
    assert command.command_id == command_id
    assert command.status == pb.COMMAND_STATUS_FAILED
    assert command.failure_reason == ORPHAN_REASON  # failed by the startup reconciliation
    dc.check_invariants()  # the adopted copy stopped, its image deleted, ended once
    assert dc.stub.ListVmTemplates(pb.ListVmTemplatesRequest(), timeout=T).templates == []
    log = engine.log_path.read_text()
    assert log.count("could not become the active engine") == 1  # the reconciliation killed
    assert lease_losses(engine) == 1 and terms(engine) == 3


def test_kill_9_mid_poll_mid_reconcile_orphans_and_mid_an_end(
    make_dc: Any, own_postgres: PostgresServer
) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB, disks=1, disk_bytes=8 * MiB)  # an 8 s copy
    engine, host = dc.engine, dc.agents[0]
    assert engine.proc is not None
    pid, url = engine.proc.pid, engine.database_url
    command_id = dc.start_template(vm, "tpl", dst).command.command_id
    wait_command(dc.stub, command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks))
    # Held from now on (taken again after each restart, before the engine competes): the copy
    # may finish at any time, but the command's end waits for the last part of the test.
    end = RowLock(url, "commands", "command_id = %s", (command_id,))
    end.take()

    def restart() -> None:
        with paused_engine(engine):
            own_postgres.start()
            end.take()

    # A poll: the hosts asked, their answers being recorded (held by a lock on the task it
    # updates: the copy's progress moves at every poll; a poll that changes nothing writes
    # nothing, and a host's row only when its state changes).
    served = servings(engine)
    with row_locked(url, "async_tasks", "true"):
        wait_blocked(url, "UPDATE async_tasks")
        own_postgres.kill9()
    restart()
    healed(dc, pid, served)

    # An on-demand reconciliation: held in its lookup by a stopped agent.
    answers: list[tuple[grpc.StatusCode, str]] = []
    served = servings(engine)
    with paused(host):
        reconcile = threading.Thread(
            target=lambda: answers.append(
                failure(lambda: dc.stub.ReconcileOrphans(pb.ReconcileOrphansRequest(), timeout=T))
            )
        )
        reconcile.start()
        time.sleep(0.5)
        own_postgres.kill9()
    reconcile.join(T)
    ((code, details),) = answers
    assert code == UNAVAILABLE and "database" in details, (code, details)
    restart()
    healed(dc, pid, served)

    # The command's end: the copy done, the end's read of the commands it ends, which locks
    # their rows (SELECT ... FOR UPDATE), held by the lock on the command.
    served = servings(engine)
    wait_blocked(url, "SELECT commands.", containing="FOR UPDATE")
    own_postgres.kill9()
    end.release()
    own_postgres.start()
    healed(dc, pid, served)

    command = wait_command(dc.stub, command_id)
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    dc.check_invariants()  # ended exactly once, nothing left anywhere
    (template,) = dc.stub.ListVmTemplates(pb.ListVmTemplatesRequest(), timeout=T).templates
    assert template.status == pb.TEMPLATE_STATUS_OK
    assert lease_losses(engine) == 3


# -- two engines ---------------------------------------------------------------------------------


class ReadinessWatch:
    """Samples both engines' readiness every few milliseconds on a thread; `overlaps` lists
    the instants both were ready (working) at once."""

    def __init__(self, engines: list[EngineProcess]) -> None:
        self.engines = engines
        self.samples = 0
        self.overlaps: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            states = [e.health(timeout=0.5) for e in self.engines]
            self.samples += 1
            if states.count("SERVING") > 1:
                self.overlaps.append((time.monotonic(), states))
            time.sleep(0.01)

    def __enter__(self) -> ReadinessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def worked_while_fenced(engine: EngineProcess) -> list[str]:
    """Lines of work (a command accepted or ended, a task accepted or cleared) that the engine
    logged between losing its lease and its next term: there must be none."""
    fenced, found = False, []
    for line in engine.log_path.read_text().splitlines():
        if "stopped all work and is NOT READY" in line:
            fenced = True
        elif "this engine holds the lease" in line:
            fenced = False
        elif fenced and any(w in line for w in (" accepted ", ") ended ", " cleared on ")):
            found.append(line)
    return found


def test_two_engines_on_a_database_that_restarts_never_work_at_once(
    make_dc: Any, engine_factory: Any, own_postgres: PostgresServer
) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB, disks=1)
    first = dc.engine
    second = engine_factory("second", database_url=first.database_url, start=False)
    second.start(wait=False)
    wait_until(
        "standing by", lambda: "standing by" in second.log_path.read_text() and second.learn_port()
    )
    assert second.health() == "NOT_SERVING" and second.health("") == "SERVING"
    command_id = dc.start_template(vm, "tpl", dst).command.command_id
    wait_command(dc.stub, command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks))

    with ReadinessWatch([first, second]) as watch:
        served = servings(first) + servings(second)
        own_postgres.restart()  # every session ends: the active engine's lease with them
        wait_until("a lost lease", lambda: lease_losses(first) == 1)
        wait_until(
            "one of them ready again",
            lambda: (
                servings(first) + servings(second) > served
                and "SERVING" in (first.health(), second.health())
            ),
        )
        winner, loser = (first, second) if first.health() == "SERVING" else (second, first)
        time.sleep(1.0)  # the loser keeps competing, and stays a standby
        assert loser.health() == "NOT_SERVING" and loser.health("") == "SERVING"
        assert winner.health() == "SERVING"
    assert watch.samples > 20 and watch.overlaps == [], watch.overlaps

    # The winner frozen (SIGSTOP) through a restart: the other one takes over; the frozen one,
    # once it runs again, finds its lease gone before it writes anything, and stands by.
    losses = lease_losses(winner)
    served = servings(loser)
    with paused_engine(winner):
        own_postgres.restart()
        wait_until("the other one ready", lambda: servings(loser) > served)
        loser.wait_serving(timeout=T)
    wait_until("the frozen one stepped down", lambda: lease_losses(winner) > losses)
    wait_until("the frozen one not ready", lambda: winner.health() == "NOT_SERVING")
    dc.engine = loser
    command = wait_command(dc.stub, command_id)
    assert first.running and second.running  # neither exited
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    dc.check_invariants()  # the command ended exactly once
    assert worked_while_fenced(first) == [] and worked_while_fenced(second) == []
    with psycopg.connect(first.database_url, autocommit=True) as connection:
        holders = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    assert holders == (1,)  # one lease, held by one engine
    assert loser.health() == "SERVING" and winner.health() == "NOT_SERVING"


# -- SQLite: the disk full -----------------------------------------------------------------------

SMALL_DISK = 16 << 20  # room for the database and its WAL (checkpointed at about 4 MiB)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A size-limited tmpfs for the engine's SQLite database (harness.tmpfs), unmounted
    afterwards: after the engine is killed, as the engines are made later and so torn down
    first. Skipped with the reason where mounting is not permitted."""
    disk = tmp_path / "small-disk"
    try:
        tmpfs.mount(disk, SMALL_DISK)
    except tmpfs.TmpfsUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield disk
    finally:
        tmpfs.unmount(disk)


def test_sqlite_disk_full_refuses_writes_keeps_reads_and_recovers(
    make_dc: Any, small_disk: Path
) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB, disks=1)
    engine = dc.engine
    assert engine.proc is not None and str(small_disk) in engine.database_url
    pid = engine.proc.pid
    command_id = dc.start_template(vm, "tpl", dst).command.command_id
    wait_command(dc.stub, command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks))

    filler = tmpfs.fill(small_disk)
    refused = None
    for n in range(200):  # the WAL may have room for a few small transactions first
        try:
            dc.stub.AddStorageDomain(pb.AddStorageDomainRequest(name=f"d{n}" * 60), timeout=T)
        except grpc.RpcError as exc:
            refused = exc
            break
    assert refused is not None, "no write failed on a full disk"
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused
    assert "disk is full" in (refused.details() or ""), refused.details()

    # Reads go on, and the engine stays ready: nothing it holds is wrong, only full.
    assert engine.health() == "SERVING"
    assert dc.stub.ListHosts(pb.ListHostsRequest(), timeout=T).hosts
    time.sleep(2.5)  # the copy ends on the agent meanwhile; the engine can record none of it
    command = dc.stub.GetCommand(pb.GetCommandRequest(command_id=command_id), timeout=T).command
    assert command.status == pb.COMMAND_STATUS_ACTIVE  # not failed for the disk's sake

    filler.unlink()  # space again: writes go on, without a restart
    added = dc.stub.AddStorageDomain(pb.AddStorageDomainRequest(name="after"), timeout=T)
    assert added.storage_domain.name == "after"
    command = wait_command(dc.stub, command_id)
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    dc.check_invariants()
    assert engine.proc.pid == pid and engine.running
