"""One database transaction: rolled back unless the caller commits.

A unit opened with `read_only=True` promises not to write. On SQLite it then starts with a
plain (deferred) BEGIN instead of BEGIN IMMEDIATE, so that reads (views, a poll's scans) run
on their WAL snapshot beside the one writer instead of queueing behind it."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from engine_service.adapters.db import READ_ONLY
from engine_service.adapters.repository import Repository


class UnitOfWork:
    def __init__(self, sessions: sessionmaker[Session], read_only: bool = False) -> None:
        self._sessions = sessions
        self.read_only = read_only

    def __enter__(self) -> UnitOfWork:
        self.session = self._sessions()
        self.session.begin()
        if self.read_only:
            self.session.connection(execution_options={READ_ONLY: True})
        self.repo = Repository(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() rolls back what was not committed, and leaves the rows read in this unit
        # usable (detached, not expired) by the caller.
        self.session.close()

    def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        self.session.commit()

    def flush(self) -> None:
        self.session.flush()


class UnitOfWorkFactory(Protocol):
    def __call__(self, read_only: bool = False) -> UnitOfWork: ...
