"""An idle engine writes nothing (issue 16): a poll cycle in which nothing changed commits
nothing, and on SQLite does not even open a writing transaction (BEGIN IMMEDIATE, the one
writer that submissions queue for). A host's last answer is kept in memory and stored only
with a change of its state or every `last_seen_every` seconds (service_layer/liveness.py)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine as Database
from sqlalchemy import event
from sqlalchemy.engine import make_url

from engine_service.adapters.db import READ_ONLY, make_engine
from engine_service.bootstrap import EngineSettings, bootstrap
from engine_service.domain.hosts import HostStatus
from engine_service.service_layer.engine import Engine
from engine_service.service_layer.polling import PollSettings


class Transactions:
    """Counts a database's transactions: writing ones begun, commits."""

    def __init__(self, db: Database) -> None:
        self.seen = Counter[str]()
        event.listen(db, "begin", self._begin)
        event.listen(db, "commit", lambda conn: self.seen.update(["commit"]))

    def _begin(self, conn: Any) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        self.seen.update(["read" if read_only else "write"])


def files_of(url: str) -> dict[str, tuple[int, int]]:
    """(size, mtime in ns) of a SQLite database's files: the database, its WAL, its index."""
    path = Path(str(make_url(url).database))
    found = {}
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        if (path.parent / name).exists():
            stat = os.stat(path.parent / name)
            found[name] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture
def idle(database_url: str, agent_factory: Any) -> Iterator[tuple[Engine, Database, list[Any]]]:
    """An engine with 3 hosts and a storage domain, nothing in flight, polled by hand."""
    db = make_engine(database_url)
    poll = PollSettings(interval=3600, host_failure_polls=2)
    engine = bootstrap(EngineSettings(database_url, poll=poll), db=db)
    agents = [agent_factory(name) for name in ("host1", "host2", "host3")]
    for agent in agents:
        engine.inventory.add_host(agent.workdir.name, agent.address)
    engine.inventory.add_storage_domain("data1")
    engine.manager.poll_once()  # the first answers are stored: last_seen_at was never set
    yield engine, db, agents
    engine.manager.poller.close()
    engine.agents.close()
    db.dispose()


def test_an_idle_poll_cycle_writes_nothing(idle: Any, database_url: str) -> None:
    engine, db, _ = idle
    stored = {h.host.name: h.host.last_seen_at for h in engine.inventory.hosts()}
    before = files_of(database_url) if database_url.startswith("sqlite") else {}
    counted = Transactions(db)
    for _ in range(3):
        result = engine.manager.poll_once()
        assert len(result.statuses) == 3  # every host answered
    assert counted.seen["commit"] == 0 and counted.seen["write"] == 0, counted.seen
    assert counted.seen["read"] > 0  # it did read (the check is not vacuous)
    if before:
        assert files_of(database_url) == before  # not a byte written, not even the WAL index
    shown = {h.host.name: h.host.last_seen_at for h in engine.inventory.hosts()}
    assert all(shown[name] > seen for name, seen in stored.items())
    with engine.uow(read_only=True) as uow:  # ListHosts shows the newest; the rows keep theirs
        assert {h.name: h.last_seen_at for h in uow.repo.hosts()} == stored


def test_changes_are_written_and_a_last_seen_when_due(idle: Any) -> None:
    engine, db, agents = idle
    counted = Transactions(db)
    agents[2].kill()  # host3 stops answering: each failed poll up to the threshold is written
    for commits in (1, 2, 2):
        engine.manager.poll_once()
        assert counted.seen["commit"] == commits
    with engine.uow(read_only=True) as uow:
        rows = {h.name: h for h in uow.repo.hosts()}
    assert rows["host3"].status is HostStatus.NON_RESPONSIVE and rows["host3"].failed_polls == 2
    host1 = rows["host1"]
    engine.inventory.set_host_maintenance(host1.host_id, True)  # an operator's change: 1 commit
    engine.manager.poll_once()  # the poll itself changes nothing
    assert counted.seen["commit"] == 3
    engine.manager.poller.last_seen.every = timedelta(0)  # every stored last answer is due
    engine.manager.poll_once()
    assert counted.seen["commit"] == 4  # one transaction for the two answering hosts
    with engine.uow(read_only=True) as uow:
        rows = {h.name: h for h in uow.repo.hosts()}
    assert rows["host1"].status is HostStatus.MAINTENANCE  # the operator's change is kept
    shown = {h.host.name: h.host.last_seen_at for h in engine.inventory.hosts()}
    assert shown == {name: row.last_seen_at for name, row in rows.items()}
