"""SQLite's group commit over a real database file (engine_service/adapters/group_commit.py):
client units that wait for the writer while another holds it share its transaction and one
COMMIT; each unit's commit() returns only once its rows are readable from another connection;
a unit that breaks a rule loses only its own rows; the engine's own units run alone."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from engine_service.adapters.db import make_engine, migrate, session_factory
from engine_service.adapters.group_commit import GroupCommit
from engine_service.adapters.writers import WriterGate, background
from engine_service.domain.hosts import Host
from engine_service.domain.requests import Conflict
from engine_service.domain.tasks import new_id
from engine_service.service_layer.unit_of_work import UnitOfWork


@dataclass
class _Db:
    path: Path
    uow: Callable[[], UnitOfWork]
    gate: WriterGate
    commits: list[int] = field(default_factory=list)

    def host_names(self) -> set[str]:
        """What another connection reads: only committed rows."""
        with sqlite3.connect(self.path) as other:
            return {name for (name,) in other.execute("SELECT name FROM hosts")}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[_Db]:
    path = tmp_path / "engine.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    sessions = session_factory(engine)
    gate = WriterGate()
    commits: list[int] = []
    groups = GroupCommit(
        gate, engine.connect, max_members=8, max_seconds=60, on_commit=commits.append
    )
    yield _Db(path, lambda: UnitOfWork(sessions, False, gate, groups), gate, commits)
    engine.dispose()


def _until(condition: Callable[[], bool]) -> None:
    for _ in range(10_000_000):
        if condition():
            return
        threading.Event().wait(0)
    raise AssertionError("the condition never held")


def _add_host(db: _Db, name: str, seen: dict[str, object]) -> None:
    """One client unit: add a host named `name`; record what it saw once commit() returned."""
    try:
        with db.uow() as uow:
            uow.repo.add_host(Host(new_id(), name, f"{name}:1"))
            uow.commit()
        seen[name] = name in db.host_names()  # durable and visible once commit() returned
    except Exception as exc:
        seen[name] = exc


def _queued(gate: WriterGate, count: int) -> bool:
    return gate.queued == count


def _behind_a_holder(db: _Db, units: list[Callable[[], None]]) -> None:
    """The main thread holds the writer in a unit adding host "holder" while each of `units`
    queues behind it in its own thread, in order; then it commits: the queued units take
    turns, in its transaction where they are clients'."""
    threads = []
    with db.uow() as holder:
        holder.repo.add_host(Host(new_id(), "holder", "holder:1"))
        for unit in units:
            thread = threading.Thread(target=unit)
            thread.start()
            threads.append(thread)
            _until(partial(_queued, db.gate, len(threads)))
        holder.commit()
    for thread in threads:
        thread.join(30)
    assert "holder" in db.host_names()


def _run_behind_a_holder(db: _Db, names: list[str]) -> dict[str, object]:
    """A client unit adding a host per name, queued behind the holder; what each saw."""
    seen: dict[str, object] = {}
    _behind_a_holder(db, [partial(_add_host, db, name, seen) for name in names])
    return seen


def test_units_waiting_for_the_writer_share_one_commit_and_each_returns_durable(db: _Db) -> None:
    names = [f"h{i}" for i in range(5)]
    seen = _run_behind_a_holder(db, names)
    assert seen == {name: True for name in names}
    assert db.commits == [6]  # the holder's part and the five queued: one COMMIT
    assert db.host_names() == {"holder", *names}
    assert db.gate.queued == 0 and db.gate.acquire() is True  # given back
    db.gate.release()


def test_a_unit_that_breaks_a_rule_loses_only_its_own_rows(db: _Db) -> None:
    with db.uow() as uow:
        uow.repo.add_host(Host(new_id(), "taken", "taken:1"))
        uow.commit()
    seen = _run_behind_a_holder(db, ["a", "taken", "b"])
    assert seen["a"] is True and seen["b"] is True
    assert isinstance(seen["taken"], Conflict)
    assert db.host_names() == {"holder", "taken", "a", "b"}
    assert db.commits == [1, 3]  # the first alone; then the holder, a and b


def test_a_group_is_capped_and_the_rest_commit_in_the_next(db: _Db) -> None:
    names = [f"h{i}" for i in range(10)]
    seen = _run_behind_a_holder(db, names)
    assert seen == {name: True for name in names}
    assert sum(db.commits) == 11 and max(db.commits) <= 8 and len(db.commits) == 2


def test_a_unit_that_only_read_the_groups_rows_returns_once_they_are_durable(db: _Db) -> None:
    """A duplicate request finds the first one's request id in the group, not yet committed,
    and answers with it: that answer must not go out before the first one's rows are durable."""
    seen: dict[str, object] = {}

    def reader() -> None:
        with db.uow() as uow:
            found = {host.name for host in uow.repo.hosts()}
        seen["read"] = "holder" in found  # it saw the holder's row inside the group
        seen["durable"] = "holder" in db.host_names()  # and returned only once it was durable

    _behind_a_holder(db, [reader, partial(_add_host, db, "later", seen)])
    assert seen == {"read": True, "durable": True, "later": True}
    assert db.commits == [2]  # the holder and "later" kept their parts; the reader nothing


def test_the_engines_own_units_run_alone(db: _Db) -> None:
    """A poll-cycle unit (background) neither joins a group nor is joined: its commit is its
    own, so a client's submission never waits on a long cycle's work to be answered."""
    seen: dict[str, object] = {}

    def poll_unit() -> None:
        with background(), db.uow() as uow:
            uow.repo.add_host(Host(new_id(), "polled", "polled:1"))
            uow.commit()
        seen["polled"] = "polled" in db.host_names()

    _behind_a_holder(db, [poll_unit, partial(_add_host, db, "client", seen)])
    assert seen == {"polled": True, "client": True}
    # the holder's turn is committed before the poll's (the poll's turn was due), then the
    # poll's unit commits alone, then the client's unit starts a group of its own
    assert db.commits == [1, 1]
    assert db.host_names() == {"holder", "polled", "client"}
