"""Connecting to the database and migrating it (at startup, or by `engine-service migrate`).

SQLite (the embedded default) runs in WAL mode with synchronous=FULL, so a committed placeholder
survives a power cut before any agent is called, and every transaction starts with BEGIN
IMMEDIATE, so concurrent writers queue up instead of failing to upgrade a read lock.
Units of work that only read start with a plain BEGIN instead. PostgreSQL keeps
synchronous_commit=on. A plain postgresql:// URL uses psycopg 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

Database = Engine  # what bootstrap is given or makes: a connection pool to one database
MIGRATIONS = Path(__file__).with_name("migrations")
ALEMBIC_INI = MIGRATIONS / "alembic.ini"  # shipped in the package, for a DBA's `alembic -c`
# The connection execution option of a unit of work that only reads: a plain BEGIN on SQLite.
READ_ONLY = "engine_read_only"
CONNECT_TIMEOUT = 10  # seconds to open a PostgreSQL connection


def normalize_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 60, "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def on_begin(connection: Any) -> None:
            if connection.get_execution_options().get(READ_ONLY):
                connection.exec_driver_sql("BEGIN")
            else:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # A connection lent by the pool is pinged first: after the server comes back, the next unit
    # of work reconnects by itself. A server that does not answer is given up on after
    # CONNECT_TIMEOUT (UNAVAILABLE to the caller, docs/design.md §10), not the kernel's minutes.
    kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT})
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)

    @event.listens_for(engine, "connect")
    def on_pg_connect(dbapi_connection: Any, record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = on")
        dbapi_connection.commit()

    return engine


def alembic_config(engine: Engine | None = None, output: TextIO | None = None) -> Config:
    """Alembic over the engine's migrations: online over `engine`, or offline (SQL printed
    to `output`) for the URL that `offline_sql` passes."""
    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, to: str = "head") -> None:
    """Bring the schema up to revision `to` (the newest by default; run at every start
    unless --no-migrate)."""
    command.upgrade(alembic_config(engine), to)


def downgrade(engine: Engine, to: str) -> None:
    """Take the schema down to revision `to` (`base`: no tables at all)."""
    command.downgrade(alembic_config(engine), to)


def offline_sql(url: str, output: TextIO, revisions: str = "head", down: bool = False) -> None:
    """Print the SQL of an upgrade (or `down`grade) for `url`'s dialect without connecting:
    `revisions` is a target (`head`: from an empty database) or a range `FROM:TO`."""
    config = alembic_config(output=output)
    config.attributes["url"] = url
    if down:
        command.downgrade(config, revisions, sql=True)
    else:
        command.upgrade(config, revisions, sql=True)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; None for a database never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class SchemaNotCurrent(Exception):
    """The database's schema is not at the newest revision, and it is not to be migrated."""


def require_head(engine: Engine) -> None:
    """--no-migrate: refuse a database whose schema is not at the newest revision."""
    at, head = current_revision(engine), head_revision()
    if at != head:
        url = engine.url.render_as_string(hide_password=True)
        raise SchemaNotCurrent(
            f"--no-migrate: the database ({url}) is at schema revision {at or 'none (empty)'}, "
            f"not {head}: run `engine-service migrate` (or its --sql for a DBA) first"
        )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
