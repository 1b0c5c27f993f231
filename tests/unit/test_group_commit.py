"""SQLite's group commit (engine_service/adapters/group_commit.py) over a fake gate and a fake
connection: when a group is handed on, committed, or failed, and what each unit whose part was
released is told. No thread, no database: the gate's side is `hand_to_client`'s answer."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from engine_service.adapters.db_faults import DatabaseFull, DatabaseUnavailable
from engine_service.adapters.group_commit import GroupCommit, Member
from engine_service.adapters.writers import WriterGate
from engine_service.service_layer.unit_of_work import UnitOfWork


class _Gate(WriterGate):
    """The gate as the group sees it: whether a client waits, and the releases."""

    def __init__(self) -> None:
        super().__init__()
        self.client_waiting = False
        self.handed = 0
        self.released = 0

    def hand_to_client(self) -> bool:
        if self.client_waiting:
            self.handed += 1
        return self.client_waiting

    def release(self) -> None:
        self.released += 1


class _Dbapi:
    """The driver's connection: the group runs its SAVEPOINT statements on it."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.in_transaction = True
        self.error: Exception | None = None

    def execute(self, statement: str) -> None:
        if self.error is not None:
            raise self.error
        self.log.append(statement)


class _Transaction:
    def __init__(self, connection: _Connection) -> None:
        self.connection = connection

    def commit(self) -> None:
        if self.connection.commit_error is not None:
            raise self.connection.commit_error
        self.connection.log.append("COMMIT")

    def rollback(self) -> None:
        self.connection.log.append("ROLLBACK")


class _Connection:
    def __init__(self, log: list[str], begin_error: Exception | None = None) -> None:
        self.log = log
        self.begin_error = begin_error
        self.commit_error: Exception | None = None
        self.dbapi = _Dbapi(log)

    @property
    def connection(self) -> Any:
        return self

    @property
    def dbapi_connection(self) -> _Dbapi:
        return self.dbapi

    def begin(self) -> _Transaction:
        if self.begin_error is not None:
            raise self.begin_error
        self.log.append("BEGIN")
        return _Transaction(self)

    def close(self) -> None:
        self.log.append("close")

    def invalidate(self) -> None:
        self.log.append("invalidate")


class _Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


class _World:
    def __init__(self, max_members: int = 8, max_seconds: float = 0.025) -> None:
        self.gate = _Gate()
        self.log: list[str] = []
        self.connections: list[_Connection] = []
        self.clock = _Clock()
        self.committed: list[int] = []
        self.begin_error: Exception | None = None
        self.groups = GroupCommit(
            self.gate,
            self._connect,
            max_members=max_members,
            max_seconds=max_seconds,
            clock=self.clock,
            on_commit=self.committed.append,
        )

    def _connect(self) -> _Connection:
        connection = _Connection(self.log, self.begin_error)
        self.connections.append(connection)
        return connection

    def unit(self, failure: BaseException | None = None, kept: bool = True) -> Member:
        """One unit's turn: it joins, then releases its part (or fails with `failure`, or
        keeps nothing); its member waits for the group's end either way."""
        self.groups.join()
        member = Member()
        self.groups.end_turn(member, kept and failure is None, failure)
        return member


def _resolved(member: Member | None) -> bool:
    assert member is not None
    return member._done.is_set()


def test_a_unit_with_no_client_waiting_commits_its_part_at_once() -> None:
    world = _World()
    member = world.unit()
    assert world.log == ["BEGIN", "COMMIT", "close"]
    assert member is not None
    member.wait(timeout=0)  # durable: no error
    assert world.committed == [1]
    assert world.gate.released == 1 and not world.groups.open


def test_with_a_client_waiting_the_open_transaction_is_handed_on_and_the_last_commits_all() -> None:
    world = _World()
    world.gate.client_waiting = True
    first = world.unit()
    second = world.unit()
    # one transaction, not committed yet; the second unit in a savepoint of its own
    assert world.log == ["BEGIN", "SAVEPOINT unit", "RELEASE unit"]
    assert not _resolved(first) and not _resolved(second)
    assert world.gate.handed == 2 and world.gate.released == 0  # the gate went to the next
    world.gate.client_waiting = False
    third = world.unit()
    assert world.log == ["BEGIN"] + ["SAVEPOINT unit", "RELEASE unit"] * 2 + ["COMMIT", "close"]
    assert len(world.connections) == 1  # each unit joined the same connection
    for member in (first, second, third):
        assert member is not None
        member.wait(timeout=0)
    assert world.committed == [3]
    assert world.gate.released == 1


def test_a_full_group_commits_even_with_clients_waiting() -> None:
    world = _World(max_members=3)
    world.gate.client_waiting = True
    members = [world.unit() for _ in range(4)]
    assert world.committed == [3]
    assert all(_resolved(m) for m in members[:3]) and not _resolved(members[3])
    assert world.log[-3:] == ["COMMIT", "close", "BEGIN"]


def test_an_old_group_commits_even_with_clients_waiting() -> None:
    world = _World(max_seconds=0.025)
    world.gate.client_waiting = True
    first = world.unit()
    world.clock.now += 0.030  # the second unit's work took long
    second = world.unit()
    assert world.committed == [2]
    assert _resolved(first) and _resolved(second)


def test_a_unit_failing_by_its_own_rules_leaves_the_others_parts_to_commit() -> None:
    world = _World()
    world.gate.client_waiting = True
    first = world.unit()
    world.unit(ValueError("vm_id: no such VM"))  # rolled back to its savepoint by its session
    world.unit(IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")))  # a name taken
    world.gate.client_waiting = False
    last = world.unit()
    undone = ["SAVEPOINT unit", "ROLLBACK TO unit", "RELEASE unit"]
    kept = ["SAVEPOINT unit", "RELEASE unit"]
    assert world.log == ["BEGIN", *undone, *undone, *kept, "COMMIT", "close"]
    assert world.committed == [2]  # the two that released their parts
    for member in (first, last):
        assert member is not None
        member.wait(timeout=0)


def test_a_database_failure_in_one_unit_fails_the_group_and_every_part_released() -> None:
    world = _World()
    world.gate.client_waiting = True
    first = world.unit()
    second = world.unit()
    disk_io = OperationalError("INSERT", {}, sqlite3.OperationalError("disk I/O error"))
    world.unit(disk_io)
    assert world.log[-4:] == ["SAVEPOINT unit", "ROLLBACK", "invalidate", "close"]
    assert world.committed == []
    for member in (first, second):
        assert member is not None
        with pytest.raises(DatabaseUnavailable, match="disk I/O error"):
            member.wait(timeout=0)
    assert world.gate.released == 1 and not world.groups.open


def test_a_transaction_sqlite_rolled_back_by_itself_fails_the_group() -> None:
    world = _World()
    world.gate.client_waiting = True
    first = world.unit()
    world.groups.join()
    world.connections[0].dbapi.in_transaction = False  # a failed statement ended it
    second = Member()
    world.groups.end_turn(second, True)
    assert "COMMIT" not in world.log
    for member in (first, second):
        assert member is not None
        with pytest.raises(DatabaseUnavailable, match="rolled back"):
            member.wait(timeout=0)


def test_a_failed_commit_is_every_members_failure() -> None:
    world = _World()
    world.gate.client_waiting = True
    first = world.unit()
    world.connections[0].commit_error = OperationalError(
        "COMMIT", {}, sqlite3.OperationalError("database or disk is full")
    )
    world.gate.client_waiting = False
    second = world.unit()
    for member in (first, second):
        assert member is not None
        with pytest.raises(DatabaseFull):
            member.wait(timeout=0)
    assert world.committed == [] and world.gate.released == 1
    assert world.log[-3:] == ["ROLLBACK", "invalidate", "close"]


def test_a_begin_that_fails_opens_no_group_and_the_gate_is_given_back() -> None:
    world = _World()
    world.begin_error = OperationalError("BEGIN", {}, sqlite3.OperationalError("locked"))
    with pytest.raises(OperationalError):
        world.groups.join()
    assert world.log == ["close"] and not world.groups.open
    world.groups.end_turn(None, False, world.begin_error)
    assert world.gate.released == 1


def test_a_unit_that_kept_nothing_still_waits_for_the_groups_end_and_fails_with_it() -> None:
    """It read others' rows not yet committed (a request id answered, a name taken): its answer
    goes out only once they are durable, and not at all if they never were."""
    world = _World()
    world.gate.client_waiting = True
    first = world.unit()
    reader = world.unit(kept=False)
    assert world.log[-3:] == ["SAVEPOINT unit", "ROLLBACK TO unit", "RELEASE unit"]
    assert not _resolved(reader)  # the group is still open: what it read is not durable
    world.connections[0].commit_error = OperationalError(
        "COMMIT", {}, sqlite3.OperationalError("database or disk is full")
    )
    world.gate.client_waiting = False
    world.unit()
    for member in (first, reader):
        with pytest.raises(DatabaseFull):
            member.wait(timeout=0)
    assert world.committed == []


def test_a_first_unit_that_fails_rolls_the_transaction_back_and_needs_no_savepoint() -> None:
    world = _World()
    world.gate.client_waiting = True
    world.unit(ValueError("name: taken"))
    assert world.log == ["BEGIN", "ROLLBACK", "close"]  # nothing else was in it
    assert not world.groups.open and world.gate.released == 1
    member = world.unit()  # the next unit opens a group of its own
    assert world.log[-1] == "BEGIN" and not _resolved(member)


def test_a_savepoint_that_cannot_end_fails_the_group() -> None:
    world = _World()
    world.gate.client_waiting = True
    first = world.unit()
    world.groups.join()
    world.connections[0].dbapi.error = OperationalError(
        "RELEASE", {}, sqlite3.OperationalError("disk I/O error")
    )
    second = Member()
    world.groups.end_turn(second, True)
    for member in (first, second):
        assert member is not None
        with pytest.raises(DatabaseUnavailable, match="disk I/O error"):
            member.wait(timeout=0)
    assert "COMMIT" not in world.log and world.gate.released == 1


def test_a_member_that_waits_too_long_is_told_the_outcome_is_unknown() -> None:
    with pytest.raises(DatabaseUnavailable, match="may or may not"):
        Member().wait(timeout=0)


def test_a_unit_of_work_refuses_a_group_commit_of_another_gate() -> None:
    """Miswired, the group's turns and the units' would be two locks: refused, not ignored."""
    world = _World()
    sessions: Any = object  # never called: a unit opens its session on entering
    with pytest.raises(ValueError, match="writer gate"):
        UnitOfWork(sessions, False, WriterGate(), world.groups)
    UnitOfWork(sessions, False, world.gate, world.groups)  # the same gate: accepted
