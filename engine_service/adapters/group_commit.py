"""SQLite: client write units that queue for the one writer share one transaction and one commit.

On SQLite a write unit holds the one writer (writers.py) from its BEGIN IMMEDIATE to its COMMIT,
and the COMMIT (an fsync of the WAL, synchronous=FULL) is about a third of that time: at
concurrency 16 the units held the writer 79 % of the time, 30 % of it in COMMIT. When a client
unit ends and another client thread is already waiting at the gate, the open transaction is
handed over instead of committed: the next unit does its work inside it, in a SAVEPOINT of its
own (the first unit needs none: if it fails, nothing else is in the transaction), and so on.
The unit that finds no client waiting (or the group full, or old) commits them all with one
COMMIT. Each unit's `commit()` returns only once that COMMIT is durable, so a client is answered
only after the commit that holds its rows, and a command's placeholders are still committed
before any of its agent calls (invariant I1): nothing a unit promises changes, only how many
fsyncs the promises cost.

A unit sees the rows of the units before it in its group, not yet committed (a name taken, a
request id already answered), so every unit of a group, whether it committed or not, returns only
once the group has ended: an answer read from others' rows goes out only once they are durable,
and if the group failed, the unit fails with it (UNAVAILABLE) whatever it was going to answer.
A unit that fails (a rule broken, a name taken) rolls back to its savepoint and the others' work
stays. A failure of the database itself (its disk full, an I/O error; SQLite may then have rolled
the whole transaction back) fails the group: every unit of it whose part was released is told
its commit failed (DatabaseUnavailable / DatabaseFull), none of its rows having been written.
The group commits at the latest once MAX_MEMBERS units have taken part or MAX_SECONDS have passed
since its BEGIN, so the first unit of a group waits for at most a few others' work.

The engine's own units (its poll cycle, its retention passes: `background()`) never join a
group: an open group is committed before the gate goes to one, and they run alone as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.exc import DBAPIError, IntegrityError

from engine_service.adapters.db_faults import DatabaseUnavailable, database_fault
from engine_service.adapters.writers import WriterGate

# A group commits once this many units took part in it, or this long after its BEGIN.
MAX_MEMBERS = 8
MAX_SECONDS = 0.025
# A unit whose part was released waits at most this long for the group's COMMIT.
WAIT_SECONDS = 120.0


class Transaction(Protocol):
    """The group's transaction (a SQLAlchemy RootTransaction)."""

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class Connection(Protocol):
    """What a group needs of its connection (a SQLAlchemy Connection)."""

    def begin(self) -> Any: ...

    def close(self) -> None: ...

    def invalidate(self) -> None: ...


class Member:
    """A unit that took its turn in a group: it waits for the group's end (its COMMIT, or its
    failure), whether the unit released its part into the transaction or not."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._error: BaseException | None = None

    def resolve(self, error: BaseException | None) -> None:
        self._error = error
        self._done.set()

    def wait(self, timeout: float = WAIT_SECONDS) -> None:
        """Returns once the group has ended well (its COMMIT durable, or nothing to commit);
        raises the caller's error (UNAVAILABLE, RESOURCE_EXHAUSTED) if it failed."""
        if not self._done.wait(timeout):
            raise DatabaseUnavailable(
                f"the commit of this transaction did not end in {timeout:g}s: it may or may "
                "not have been written"
            )
        if self._error is not None:
            fault = database_fault(self._error)
            if fault is None:
                fault = DatabaseUnavailable(
                    f"the transaction was not written: {type(self._error).__name__}: "
                    f"{str(self._error).splitlines()[0] if str(self._error) else ''}"
                )
            raise fault from self._error


@dataclass
class _Group:
    connection: Connection
    transaction: Transaction
    began: float
    turns: int = 0  # units that took part, committed or not
    kept: int = 0  # units whose part was released into the transaction
    members: list[Member] = field(default_factory=list)  # every unit's, waiting for the end
    savepoint: bool = False  # the unit taking its turn runs in a SAVEPOINT (not the first)


class GroupCommit:
    """The open group, if any, of one SQLite database's writer (see the module's docstring).
    Every call is made by the thread holding `gate`, so the group needs no lock of its own."""

    def __init__(
        self,
        gate: WriterGate,
        connect: Callable[[], Connection],
        max_members: int = MAX_MEMBERS,
        max_seconds: float = MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.gate = gate
        self._connect = connect
        self.max_members = max(1, max_members)
        self.max_seconds = max_seconds
        self._clock = clock
        self._on_commit = on_commit  # told how many units' parts each COMMIT made durable
        self._group: _Group | None = None

    def join(self) -> Connection:
        """The open group's connection, in its transaction (BEGIN IMMEDIATE if a new group;
        else a SAVEPOINT for this unit). The caller holds the gate, runs its unit on it without
        committing or rolling back, then calls `end_turn`."""
        group = self._group
        if group is None:
            connection = self._connect()
            try:
                transaction = connection.begin()
            except BaseException:
                with suppress(Exception):
                    connection.close()
                raise
            self._group = _Group(connection, transaction, self._clock())
            return connection
        try:
            _execute(group.connection, "SAVEPOINT unit")
        except BaseException as exc:
            self._close(group, exc)
            raise
        group.savepoint = True
        return group.connection

    def end_turn(
        self, member: Member | None, kept: bool, failure: BaseException | None = None
    ) -> None:
        """The gate holder's unit has ended: `kept` if its part was released into the
        transaction, `failure` if the unit failed. Its `member` waits for the group's end
        either way: what the unit read there (others' rows, not yet committed) may have decided
        its answer, which must not go out before those rows are durable. Hands the open group
        to the next client waiting at the gate, or commits it (failing it instead if the
        database failed); the gate is given back either way."""
        group = self._group
        handed = False
        try:
            if group is None:
                if member is not None:
                    member.resolve(None if not kept else RuntimeError("no open group to commit"))
                return
            group.turns += 1
            if member is not None:
                group.members.append(member)
            if _database_failed(failure) or not _in_transaction(group.connection):
                self._close(group, failure or RuntimeError("the transaction was rolled back"))
                return
            try:
                self._end_part(group, kept)
            except Exception as exc:  # its savepoint's end failed: the transaction is unsure
                self._close(group, exc)
                return
            group.kept += kept
            if not group.kept:
                self._close(group, None)  # the first unit kept nothing: nothing to commit
            elif (
                group.turns < self.max_members
                and self._clock() - group.began < self.max_seconds
                and self.gate.hand_to_client()
            ):
                handed = True  # the next client unit joins; the last one commits
            else:
                self._commit(group)
        finally:
            if not handed:
                self.gate.release()

    @property
    def open(self) -> bool:
        return self._group is not None

    @staticmethod
    def _end_part(group: _Group, keep: bool) -> None:
        """The unit's part stays in the transaction, or is undone: to its savepoint, or, for
        the first unit, with the whole transaction (nothing else is in it)."""
        if group.savepoint:
            group.savepoint = False
            if not keep:
                _execute(group.connection, "ROLLBACK TO unit")
            _execute(group.connection, "RELEASE unit")
        elif not keep:
            group.transaction.rollback()

    def _commit(self, group: _Group) -> None:
        try:
            group.transaction.commit()
        except BaseException as exc:
            self._close(group, exc)
            return
        self._close(group, None)
        if self._on_commit is not None:
            self._on_commit(group.kept)

    def _close(self, group: _Group, error: BaseException | None) -> None:
        """The group ends (committed, or nothing in it, if no `error`): rolled back and its
        connection discarded if `error`; every member told how it ended."""
        self._group = None
        try:
            if error is not None:
                with suppress(Exception):
                    group.transaction.rollback()
                with suppress(Exception):
                    group.connection.invalidate()  # its state is unknown: never reused
            with suppress(Exception):
                group.connection.close()
        finally:
            for member in group.members:
                member.resolve(error)


def _database_failed(failure: BaseException | None) -> bool:
    """The unit failed because of the database, not of its own rules: the shared transaction
    may be gone (SQLite rolls it back on some I/O errors and a full disk)."""
    if failure is None or isinstance(failure, IntegrityError):
        return False
    return isinstance(failure, DBAPIError) or database_fault(failure) is not None


def _dbapi(connection: Connection) -> Any:
    return connection.connection.dbapi_connection  # type: ignore[attr-defined]


def _execute(connection: Connection, statement: str) -> None:
    """A SAVEPOINT statement straight on the driver's connection: the group, not SQLAlchemy,
    keeps track of them (there is at most one, the turn's), and it costs no compilation."""
    _dbapi(connection).execute(statement)


def _in_transaction(connection: Connection) -> bool:
    """SQLite's own word on whether the shared transaction is still open (a statement that
    failed may have rolled it back without SQLAlchemy knowing)."""
    return bool(getattr(_dbapi(connection), "in_transaction", True))
