"""Which engine is active: exactly one engine-service per database does the work.

PostgreSQL: a session-level advisory lock held on a dedicated connection; it is released by
the server the moment that session ends (the process died, the network broke), so a standby
takes over within its retry interval. SQLite: an exclusive lock on a file beside the database,
released by the kernel when the process dies. No home-made consensus.

An engine that loses its lease (the database restarted, the session broke) keeps running: it
closes its `Fence` at once, so that nothing of that engine touches the database or an agent
again (every unit of work and every agent call raises `LeaseLost`), turns not ready, and
competes for the lease again (docs/design.md §10). On PostgreSQL `guard_connections` also
checks the lease each time the pool opens a connection: a database that restarted has closed
every session, the lease's too, so the first new connection after a restart finds the lease
gone and fences the engine before it writes anything, without waiting for the watchdog.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import psycopg
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from service_common.errors import Unavailable

log = logging.getLogger(__name__)

LOCK_KEY = 0x656E67696E65  # "engine"


class EngineLease(Protocol):
    """Who is the active engine: at most one holds the lease at a time."""

    def try_acquire(self) -> bool:
        """Become the active engine if no other is; True once held."""

    def held(self) -> bool:
        """Whether the lease is still ours (False once lost: stop working at once)."""

    def release(self) -> None: ...


class PostgresLease:
    """The lease as a PostgreSQL advisory lock held by one open session."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url).set(drivername="postgresql")
        self.dsn = parsed.render_as_string(hide_password=False)
        self.connection: psycopg.Connection[tuple[object, ...]] | None = None

    def try_acquire(self) -> bool:
        if self.connection is None or self.connection.closed:
            self.connection = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=5,
                application_name="engine-service lease",
                # A dead peer is noticed in seconds, not after the kernel's two hours.
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=2,
                tcp_user_timeout=10000,  # milliseconds
            )
        row = self.connection.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        return bool(row and row[0])

    def held(self) -> bool:
        if self.connection is None or self.connection.closed:
            return False
        try:
            # A session-level advisory lock lives as long as its session: alive means held.
            self.connection.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def release(self) -> None:
        if self.connection is not None and not self.connection.closed:
            self.connection.close()
        self.connection = None


class FileLease:
    """The lease as an exclusive lock on a file beside the SQLite database."""

    def __init__(self, database_path: Path) -> None:
        self.path = database_path.with_name(database_path.name + ".lease")
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        if self.fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return True

    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def lease_for(database_url: str) -> EngineLease:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return PostgresLease(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return FileLease(Path(url.database))
    raise ValueError(f"no engine lease for {url.get_backend_name()} databases")


class LeaseLost(Unavailable):
    """This engine lost its lease: it does no more work (UNAVAILABLE to a caller)."""


class Fence:
    """Whether one engine instance may still work: open while it holds the lease, closed for
    good once the lease is lost (a later term builds a new engine with a new fence)."""

    def __init__(self) -> None:
        self._closed = threading.Event()
        self.reason = ""

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self, reason: str) -> None:
        if not self._closed.is_set():
            self.reason = reason
            self._closed.set()

    def check(self) -> None:
        """Raise LeaseLost once closed: called before every unit of work and agent call."""
        if self._closed.is_set():
            raise LeaseLost(
                f"the database is unavailable to this engine: {self.reason}; it stopped all "
                "work and competes for the lease again"
            )


def guard_connections(db: Engine, lease: EngineLease, fence: Fence) -> None:
    """Each new connection of `db`'s pool first checks that `lease` is still held; if not, the
    fence closes and the connection is refused (LeaseLost)."""

    @event.listens_for(db, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        if not fence.closed and not lease.held():
            log.critical("the engine lease was lost (found opening a database connection)")
            fence.close("the engine lease was lost (its database session ended)")
        if fence.closed:
            dbapi_connection.close()
            fence.check()
