"""pytest fixtures over `harness.processes`; every process a test starts is killed after it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import pg_server
from harness.processes import AgentProcess, EngineProcess

AgentFactory = Callable[..., AgentProcess]
EngineFactory = Callable[..., EngineProcess]


@pytest.fixture
def shared_storage(tmp_path: Path) -> Path:
    """The storage root that every agent of the test's data center sees."""
    root = tmp_path / "storage"
    root.mkdir()
    return root


@pytest.fixture
def agent_factory(tmp_path: Path, shared_storage: Path) -> Iterator[AgentFactory]:
    """Make agents: `agent_factory(name="host1", throttle=None, crash_at=None, start=True)`."""
    made: list[AgentProcess] = []

    def make(
        name: str = "host1",
        throttle: int | None = None,
        crash_at: str | None = None,
        start: bool = True,
        **kwargs: Any,
    ) -> AgentProcess:
        agent = AgentProcess(
            tmp_path / name, storage_root=shared_storage, throttle=throttle, **kwargs
        )
        made.append(agent)
        if start:
            agent.start(crash_at=crash_at)
        return agent

    yield make
    for agent in made:
        agent.close()


@pytest.fixture
def agent(agent_factory: AgentFactory) -> AgentProcess:
    """One running agent with no throttle."""
    return agent_factory()


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[EngineFactory]:
    """Make engines: `engine_factory(name="engine", database_url=None, crash_at=None,
    start=True, poll_interval=0.2, extra_args=[...])`; SQLite in its directory by default."""
    made: list[EngineProcess] = []

    def make(
        name: str = "engine", crash_at: str | None = None, start: bool = True, **kwargs: Any
    ) -> EngineProcess:
        engine = EngineProcess(tmp_path / name, **kwargs)
        made.append(engine)
        if start:
            engine.start(crash_at=crash_at)
        return engine

    yield make
    for engine in made:
        engine.close()


@pytest.fixture(scope="module")
def own_postgres_server() -> Iterator[pg_server.PostgresServer]:
    """A PostgreSQL server of the tests' own (harness.pg_server), shared by a module's tests, to
    stop, restart and kill -9. Skipped with the reason where it cannot run (no server binaries;
    root without a `postgres` user), failed instead under REQUIRE_POSTGRES=1."""
    problem = pg_server.problem()
    if problem is not None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    server = pg_server.PostgresServer.create()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def own_postgres(own_postgres_server: pg_server.PostgresServer) -> pg_server.PostgresServer:
    """The module's own PostgreSQL, running (started again if an earlier test left it down);
    `own_postgres.create_database()` gives a test a fresh database."""
    own_postgres_server.ensure_running()
    return own_postgres_server
