"""pytest fixtures over `harness.processes`; every process a test starts is killed after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.processes import AgentProcess

AgentFactory = Callable[..., AgentProcess]


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
