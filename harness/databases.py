"""Databases for tests: a fresh SQLite file, or a fresh PostgreSQL database per test.

PostgreSQL is reached at ENGINE_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/
postgres); each test gets `CREATE DATABASE t_<random>`, dropped afterwards, so runs never see
each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

ADMIN_URL = os.environ.get(
    "ENGINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None if it can."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {ADMIN_URL}: {str(exc).strip()}"


@contextmanager
def fresh_postgres_database(template: str | None = None) -> Iterator[str]:
    """A new database, empty or a copy of the database `template` (whose connections are
    closed first, as CREATE DATABASE ... TEMPLATE needs); yields its SQLAlchemy URL and drops
    it afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (template,),
            )
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        admin.execute(create)
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
