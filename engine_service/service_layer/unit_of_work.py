"""One database transaction: rolled back unless the caller commits.

A unit opened with `read_only=True` promises not to write. On SQLite it then starts with a
plain (deferred) BEGIN instead of BEGIN IMMEDIATE, so that reads (views, a poll's scans) run
on their WAL snapshot beside the one writer instead of queueing behind it. A uniqueness rule of
the database broken inside the unit (a concurrent request took a name, a lock or a request id
first) leaves it as the domain's `Conflict`; the database failing (down, unreachable, its disk
full) leaves it as `DatabaseUnavailable` or `DatabaseFull` (adapters/db_faults.py), errors the
caller can act on (UNAVAILABLE, RESOURCE_EXHAUSTED) and never a command's own fault.
"""

from __future__ import annotations

from contextlib import suppress
from types import TracebackType
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from engine_service.adapters.db import READ_ONLY
from engine_service.adapters.db_faults import database_fault
from engine_service.adapters.repository import Repository
from engine_service.adapters.writers import WriterGate
from engine_service.domain.requests import Conflict


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
    ) -> None:
        self._sessions = sessions
        self.read_only = read_only
        # SQLite: write units take turns (adapters/writers.py); read-only ones never wait.
        self._writers = None if read_only else writers
        self._held: WriterGate | None = None  # the gate, while this unit holds it

    def __enter__(self) -> UnitOfWork:
        if self._writers is not None and self._writers.acquire():
            self._held = self._writers
        try:
            return self._begin()
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.release()

    def _begin(self) -> UnitOfWork:
        self.session = self._sessions()
        try:
            self.session.begin()
            if self.read_only:
                self.session.connection(execution_options={READ_ONLY: True})
        except Exception as exc:
            with suppress(Exception):
                self.session.close()
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
        try:
            try:
                self.session.close()  # rolls back what was not committed
            finally:
                self._release()
        except Exception as closing:
            if exc is None:  # else the unit's own error says more than the rollback's after it
                fault = database_fault(closing)
                if fault is None:
                    raise
                raise fault from closing
        if isinstance(exc, IntegrityError):
            raise Conflict(str(exc.orig)) from exc
        fault = database_fault(exc) if isinstance(exc, Exception) else None
        if fault is not None:
            raise fault from exc

    def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        self.session.commit()


class UnitOfWorkFactory(Protocol):
    """Opens a unit of work; `read_only` ones cannot commit."""

    def __call__(self, read_only: bool = False) -> AbstractUnitOfWork: ...
