"""Every database-facing test runs once per backend: SQLite (the embedded default) and
PostgreSQL (production), with the same test body. On a machine without PostgreSQL the
PostgreSQL variants are skipped with the reason, unless REQUIRE_POSTGRES=1 (CI), where they
fail instead."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.databases import fresh_postgres_database, postgres_unavailable

_POSTGRES_PROBLEM: list[str | None] = []


def _postgres_problem() -> str | None:
    if not _POSTGRES_PROBLEM:
        _POSTGRES_PROBLEM.append(postgres_unavailable())
    return _POSTGRES_PROBLEM[0]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'engine.db'}"
        return
    problem = _postgres_problem()
    if problem is not None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def engine_factory(engine_factory: Any, database_url: str) -> Any:
    """The harness's engine_factory, on this test's database by default."""

    def make(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("database_url", database_url)
        return engine_factory(*args, **kwargs)

    return make
