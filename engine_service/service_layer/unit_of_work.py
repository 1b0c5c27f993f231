"""One database transaction: rolled back unless the caller commits.

A unit opened with `read_only=True` promises not to write. On SQLite it then starts with a
plain (deferred) BEGIN instead of BEGIN IMMEDIATE, so that reads (views, a poll's scans) run
on their WAL snapshot beside the one writer instead of queueing behind it. A uniqueness rule of
the database broken inside the unit (a concurrent request took a name, a lock or a request id
first) leaves it as the domain's `Conflict`; the database failing (down, unreachable, its disk
full) leaves it as `DatabaseUnavailable` or `DatabaseFull` (adapters/db_faults.py), errors the
caller can act on (UNAVAILABLE, RESOURCE_EXHAUSTED) and never a command's own fault.

A write unit's time, from its BEGIN to its end, is measured (`engine_write_unit_seconds`); on
SQLite that is how long it held the one writer that every other write waits for. One that holds
it longer than SLOW_WRITE_SECONDS is logged with where it was opened.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import suppress
from types import TracebackType
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from engine_service import observability as metrics
from engine_service.adapters.db import READ_ONLY
from engine_service.adapters.db_faults import database_fault
from engine_service.adapters.group_commit import GroupCommit, Member
from engine_service.adapters.repository import Repository
from engine_service.adapters.writers import WriterGate, in_background
from engine_service.domain.requests import Conflict

log = logging.getLogger(__name__)

# A write unit that takes longer than this, from its BEGIN to its end, is logged.
SLOW_WRITE_SECONDS = 0.25
# Its log line (bench/load.py reads it back): milliseconds, where it was opened, client or
# background.
SLOW_WRITE_MESSAGE = "a write transaction took %.0f ms (opened at %s, %s)"
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class AbstractUnitOfWork(Protocol):
    """What the service layer needs of a transaction: its repository and a commit."""

    repo: Repository
    read_only: bool

    def __enter__(self) -> AbstractUnitOfWork: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...


class UnitOfWork:
    """A transaction over SQLAlchemy, with the engine's repository on its session."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        read_only: bool = False,
        writers: WriterGate | None = None,
        groups: GroupCommit | None = None,
    ) -> None:
        self._sessions = sessions
        self.read_only = read_only
        # SQLite: write units take turns (adapters/writers.py); read-only ones never wait.
        self._writers = None if read_only else writers
        self._held: WriterGate | None = None  # the gate, while this unit holds it
        # SQLite: a client's write unit holding the gate runs in the open group's transaction
        # and shares its COMMIT (adapters/group_commit.py); the engine's own units run alone.
        if groups is not None and groups.gate is not writers:
            raise ValueError("a group commit must share the units' writer gate")
        self._groups = None if read_only else groups
        self._grouped: GroupCommit | None = None  # the group, while this unit takes part
        self._began = 0.0  # when a write unit began (monotonic)
        self._opener = ""  # where a write unit was opened: file:line (function)

    def __enter__(self) -> UnitOfWork:
        if self._writers is not None and self._writers.acquire():
            self._held = self._writers
        if not self.read_only:
            caller = sys._getframe(1)
            code = caller.f_code
            where = os.path.relpath(code.co_filename, _ROOT)
            self._opener = f"{where}:{caller.f_lineno} ({code.co_name})"
            self._began = time.monotonic()
        try:
            return self._begin()
        except BaseException:
            self._release()
            raise

    def _timed(self) -> None:
        """A write unit has ended: its time into the histogram; logged if slow."""
        if self.read_only or not self._began:
            return
        seconds, self._began = time.monotonic() - self._began, 0.0
        kind = "background" if in_background() else "client"
        metrics.WRITE_UNIT_SECONDS.labels(kind).observe(seconds)
        if seconds > SLOW_WRITE_SECONDS:
            log.warning(
                SLOW_WRITE_MESSAGE,
                seconds * 1e3,
                self._opener,
                kind,
            )

    def _release(
        self,
        member: Member | None = None,
        kept: bool = False,
        failure: BaseException | None = None,
    ) -> None:
        held, self._held = self._held, None
        grouped, self._grouped = self._grouped, None
        if grouped is not None:
            grouped.end_turn(member, kept, failure)  # hands the group on or commits it; the gate
        elif held is not None:
            held.release()

    def _begin(self) -> UnitOfWork:
        try:
            if self._held is not None and self._groups is not None and not in_background():
                self._grouped = self._groups
                connection = self._groups.join()
                self.session = self._sessions(
                    bind=connection, join_transaction_mode="rollback_only"
                )
            else:
                self.session = self._sessions()
            self.session.begin()
            if self.read_only:
                self.session.connection(execution_options={READ_ONLY: True})
        except Exception as exc:
            with suppress(Exception):
                self.session.close()
            self._release(failure=exc)
            fault = database_fault(exc)
            if fault is not None:
                raise fault from exc
            raise
        self.repo = Repository(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        member = Member() if self._grouped is not None else None
        try:
            failure: BaseException | None = exc
            try:
                self.session.close()  # its part not committed is undone by the group, or here
            except BaseException as closing:
                failure = failure or closing
                raise
            finally:
                self._release(member, kept=False, failure=failure)
                self._timed()
        except Exception as closing:
            if exc is None:  # else the unit's own error says more than the rollback's after it
                fault = database_fault(closing)
                if fault is None:
                    raise
                raise fault from closing
        if member is not None:
            # What it read in the group (others' rows, not yet committed) may be its answer:
            # not before they are durable; and if the group failed, neither is its answer.
            # Raised here, it keeps the database's error as its cause (and the unit's own, if
            # any, as its context).
            member.wait()
        if isinstance(exc, IntegrityError):
            raise Conflict(str(exc.orig)) from exc
        fault = database_fault(exc) if isinstance(exc, Exception) else None
        if fault is not None:
            raise fault from exc

    def commit(self) -> None:
        """Durable once it returns. In a group, the unit's part is released into the group's
        transaction and this waits for the COMMIT that holds it (another unit may make it)."""
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        self.session.commit()
        if self._grouped is not None:
            self.session.close()
            member = Member()
            self._release(member, kept=True)
            self._timed()
            member.wait()


class UnitOfWorkFactory(Protocol):
    """Opens a unit of work; `read_only` ones cannot commit."""

    def __call__(self, read_only: bool = False) -> AbstractUnitOfWork: ...
