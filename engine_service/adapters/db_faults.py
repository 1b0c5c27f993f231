"""The database failing rather than the caller's request (docs/design.md §10, "A database
outage"): which driver errors mean the database is unavailable or its disk is full, as the
errors a caller can act on.

- `DatabaseUnavailable` (UNAVAILABLE; the caller retries): the server is down, restarting or
  unreachable, a connection broke (SQLAlchemy invalidated it), the pool has no connection to
  give, a read-only replica answered; SQLite's database is locked past its busy timeout, an
  I/O error, a file it cannot open or write.
- `DatabaseFull` (RESOURCE_EXHAUSTED): the disk under the database is full (SQLite's "database
  or disk is full", PostgreSQL's 53100 disk_full). Reads go on; writes fail until space is
  freed, and then work again without a restart.

Anything else (a constraint, a bad statement, a serialization failure) is not a database
fault and is left as it is.
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy import exc as sa_exc

from service_common.errors import ResourceExhausted, ServiceError, Unavailable

# PostgreSQL SQLSTATE classes and codes of a server that cannot serve (connection exceptions,
# operator intervention such as a shutdown, insufficient resources, system errors).
_PG_UNAVAILABLE_CLASSES = ("08", "53", "58")
_PG_UNAVAILABLE_CODES = ("57P01", "57P02", "57P03", "57P04", "57P05", "25006")
_PG_DISK_FULL = "53100"
# SQLite's primary result codes (sqlite3 errors carry them as `sqlite_errorname` since 3.11).
_SQLITE_UNAVAILABLE = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
    "SQLITE_READONLY",
    "SQLITE_PROTOCOL",
    "SQLITE_NOLFS",
)
_SQLITE_UNAVAILABLE_TEXT = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "unable to open database file",
    "attempt to write a readonly database",
)
_SQLITE_FULL_TEXT = "database or disk is full"
MAX_REASON = 200  # characters of the driver's message kept in the caller's message


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached or cannot serve now; retrying later may work."""


class DatabaseFull(ResourceExhausted):
    """The disk under the database is full: nothing can be written until space is freed."""


def database_fault(exc: BaseException) -> ServiceError | None:
    """The caller's error for a database fault (`exc` raised by SQLAlchemy or a driver), or
    None if `exc` is not one."""
    if isinstance(exc, ServiceError):
        return None
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no connection to give in time
        return DatabaseUnavailable(f"the database is unavailable: {_reason(exc)}")
    orig: BaseException = exc
    invalidated = False
    if isinstance(exc, sa_exc.DBAPIError):
        orig = exc.orig if isinstance(exc.orig, BaseException) else exc
        invalidated = exc.connection_invalidated
    if _disk_full(orig):
        return DatabaseFull(
            f"the database's disk is full ({_reason(orig)}): nothing can be written until "
            "space is freed; reads go on"
        )
    if invalidated or _unavailable(orig):
        return DatabaseUnavailable(f"the database is unavailable: {_reason(orig)}")
    return None


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.Error):
        return exc.sqlstate == _PG_DISK_FULL
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", None)
        if name:
            return str(name).startswith("SQLITE_FULL")
        return _SQLITE_FULL_TEXT in str(exc).lower()
    return False


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:  # no server answer at all: refused, reset, closed
            return isinstance(exc, psycopg.OperationalError)
        return state[:2] in _PG_UNAVAILABLE_CLASSES or state in _PG_UNAVAILABLE_CODES
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", None)
        if name:
            return str(name).startswith(_SQLITE_UNAVAILABLE)
        return any(text in str(exc).lower() for text in _SQLITE_UNAVAILABLE_TEXT)
    return False


def _reason(exc: BaseException) -> str:
    """The first line of the driver's message, bounded (no statement, no parameters)."""
    lines = str(exc).strip().splitlines()
    first = lines[0].strip() if lines else type(exc).__name__
    return first if len(first) <= MAX_REASON else first[: MAX_REASON - 3] + "..."
