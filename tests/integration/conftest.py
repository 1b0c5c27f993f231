"""Fixtures of the integration tier: a migrated database (SQLite or PostgreSQL, from the
`database_url` fixture of tests/conftest.py) and sessions over it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine_service.adapters.db import make_engine, migrate, session_factory
from engine_service.service_layer.engine import Engine

Sessions = sessionmaker[Session]


@pytest.fixture
def sessions(database_url: str) -> Iterator[Sessions]:
    """Sessions over a freshly migrated database."""
    db = make_engine(database_url)
    migrate(db)
    yield session_factory(db)
    db.dispose()


def settle(engine: Engine, rounds: int = 200) -> None:
    """Poll until nothing is active and nothing is left to clean."""
    for _ in range(rounds):
        engine.manager.poll_once()
        with engine.uow() as uow:
            if not uow.repo.active_root_ids() and not uow.repo.tasks_to_clean():
                return
        threading.Event().wait(0.05)
    raise AssertionError("commands did not settle")
