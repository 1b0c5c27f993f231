"""Fixtures of the integration tier: a migrated database (SQLite or PostgreSQL, from the
`database_url` fixture of tests/conftest.py) and sessions over it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine_service.adapters.db import make_engine, migrate, session_factory

Sessions = sessionmaker[Session]


@pytest.fixture
def sessions(database_url: str) -> Iterator[Sessions]:
    """Sessions over a freshly migrated database."""
    db = make_engine(database_url)
    migrate(db)
    yield session_factory(db)
    db.dispose()
