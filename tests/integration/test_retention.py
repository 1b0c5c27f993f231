"""Retention and bounded listings over a real database (SQLite and PostgreSQL): the pruning
SQL deletes children before parents and what names them, in bounded transactions; the pruner
runs on its own thread from Engine.start to Engine.stop; ListCommands' ended and reason
filters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from engine_service.adapters.orm import CLIENT_REQUESTS, COMMANDS, LOCKS, TASKS
from engine_service.bootstrap import EngineSettings, bootstrap
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandFilter, CommandRecord, CommandStatus
from engine_service.domain.hosts import Host, HostStatus
from engine_service.domain.inventory import EntityKind, EntityLock
from engine_service.domain.requests import StoredRequest
from engine_service.domain.tasks import AsyncTask, new_id
from engine_service.service_layer.engine import Engine
from engine_service.service_layer.polling import PollSettings
from engine_service.service_layer.retention import Pruner
from service_common.errors import InvalidArgument

DAY = timedelta(days=1)
RETENTION = 30 * 86400.0
FAILED, SUCCEEDED, ACTIVE = CommandStatus.FAILED, CommandStatus.SUCCEEDED, CommandStatus.ACTIVE


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = bootstrap(
        EngineSettings(database_url, poll=PollSettings(interval=3600), retention=RETENTION)
    )
    yield engine
    engine.stop()


def seed(
    engine: Engine,
    ended_at: datetime | None,
    status: CommandStatus = FAILED,
    children: int = 2,
    reason: str = "",
) -> str:
    """A top-level command with children, a request id and (if ACTIVE) a lock, committed."""
    created = (ended_at or utcnow()) - DAY
    root = CommandRecord(new_id(), "AddVmTemplate", {}, None, None, status, reason, created)
    root.ended_at = ended_at
    kids = [
        CommandRecord(new_id(), "CreateImageTemplate", {}, root.command_id, None, status)
        for _ in range(children)
    ]
    for kid in kids:
        kid.created_at, kid.ended_at = created, ended_at
    with engine.uow() as uow:
        uow.repo.add_commands([root, *kids])
        uow.repo.add_client_request(
            StoredRequest("AddVmTemplate", new_id(), "f", root.command_id, created)
        )
        uow.commit()
    return root.command_id


def owe_cleanup(engine: Engine, root_id: str) -> str:
    """A task row left on the command: its cleanup is still owed."""
    host = Host(new_id(), f"h-{root_id[:8]}", f"{root_id[:8]}.example:54321", HostStatus.UP)
    task = AsyncTask(new_id(), root_id, root_id, host.host_id, "CopyImage", {}, "sd", "img")
    with engine.uow() as uow:
        uow.repo.add_host(host)
        uow.repo.add_tasks([task])
        uow.commit()
    return task.task_id


def rows(engine: Engine, table: object, *where: object) -> int:
    with engine.uow(read_only=True) as uow:
        query = select(func.count()).select_from(table)  # type: ignore[arg-type]
        return int(uow.session.scalar(query.where(*where)) or 0)  # type: ignore[attr-defined,arg-type]


def test_pruning_deletes_children_request_ids_and_locks_before_the_commands(
    engine: Engine,
) -> None:
    now = utcnow()
    old = [seed(engine, now - 31 * DAY - i * DAY) for i in range(5)]
    with engine.uow() as uow:  # a lock left behind would block the delete (foreign key)
        uow.repo.add_locks([EntityLock(EntityKind.DISK, new_id(), old[0])], now)
        uow.commit()
    newer = seed(engine, now - 29 * DAY)
    active = seed(engine, None, ACTIVE)
    owing = seed(engine, now - 60 * DAY)
    task_id = owe_cleanup(engine, owing)
    with engine.uow() as uow:  # an AddHost request id: old, and not a command
        uow.repo.add_client_request(
            StoredRequest("AddHost", new_id(), "f", new_id(), now - 40 * DAY)
        )
        uow.commit()
    report = Pruner(engine.uow, RETENTION, batch=2, clock=lambda: now).prune_once()
    assert report.transactions == 3
    # Request ids: the 5 commands', the AddHost one and the one of the command owing cleanup
    # (old, and its command is not ACTIVE).
    assert (report["commands"], report["child_commands"], report["client_requests"]) == (5, 10, 7)
    kept = {newer, active, owing}
    with engine.uow(read_only=True) as uow:
        assert {r.command_id for r in uow.repo.command_page(CommandFilter(), None, 50)} == kept
        assert all(len(uow.repo.command_family(c)) == 3 for c in kept)
        assert [t.task_id for t in uow.repo.tasks_of(owing)] == [task_id]
    assert rows(engine, CLIENT_REQUESTS) == 2
    assert rows(engine, CLIENT_REQUESTS, CLIENT_REQUESTS.c.result_id.in_(old)) == 0
    assert rows(engine, LOCKS) == 0 and rows(engine, TASKS) == 1
    assert rows(engine, COMMANDS) == 9
    again = Pruner(engine.uow, RETENTION, batch=2, clock=lambda: now).prune_once()
    assert again.transactions == 0


def test_a_request_id_of_an_active_command_is_never_pruned(engine: Engine) -> None:
    active = seed(engine, None, ACTIVE)
    later = utcnow() + 365 * DAY  # a year on, the command is still running
    Pruner(engine.uow, RETENTION, clock=lambda: later).prune_once()
    assert rows(engine, CLIENT_REQUESTS, CLIENT_REQUESTS.c.result_id == active) == 1
    assert rows(engine, COMMANDS) == 3


def test_engine_start_runs_the_pruner_on_its_own_thread_and_stop_stops_it(
    engine: Engine,
) -> None:
    old = seed(engine, utcnow() - 31 * DAY)
    pruner = engine.pruner
    assert pruner is not None
    pruner.first_delay = 0.0
    engine.start()
    deadline = time.monotonic() + 10
    while rows(engine, COMMANDS, COMMANDS.c.command_id == old) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows(engine, COMMANDS) == 0
    thread = pruner._thread
    assert thread is not None and thread.name == "retention-pruner"
    engine.stop()
    assert not thread.is_alive() and pruner._thread is None


def test_list_commands_filters_by_end_instant_and_failure_reason(engine: Engine) -> None:
    at = datetime(2026, 1, 31, 12, 0, 0, 123456)
    orphan = "engine restarted before the task reached the host"
    batch = [seed(engine, at, reason=orphan, children=0) for _ in range(3)]
    before = seed(engine, at - timedelta(microseconds=1), reason=orphan, children=0)
    after = seed(engine, at + timedelta(microseconds=1), reason=orphan, children=0)
    other = seed(engine, at, reason="task t ended failure: 100% full_disk", children=0)
    fine = seed(engine, at, SUCCEEDED, children=0)

    def listed(where: CommandFilter, size: int = 0) -> set[str]:
        found, token = engine.commands(where, size, "")
        while token:
            more, token = engine.commands(where, size, token)
            found += more
        return {v.command_id for v in found}

    at_once = CommandFilter(ended_after=at, ended_before=at + timedelta(microseconds=1))
    assert listed(at_once) == {*batch, other, fine}
    assert listed(CommandFilter(FAILED, at, at + timedelta(microseconds=1), "RESTARTED"), 1) == set(
        batch
    )
    assert listed(CommandFilter(ended_after=at)) == {*batch, after, other, fine}
    assert listed(CommandFilter(ended_before=at)) == {before}
    # LIKE's wildcards are plain text here.
    assert listed(CommandFilter(failure_reason_contains="100% full_disk")) == {other}
    assert listed(CommandFilter(failure_reason_contains="100%_full")) == set()
    with pytest.raises(InvalidArgument, match="ended_after") as refused:
        engine.commands(CommandFilter(ended_after=at, ended_before=at), 0, "")
    assert refused.value.field == "ended_after"
    with pytest.raises(InvalidArgument) as refused:
        engine.commands(CommandFilter(failure_reason_contains="x" * 1001), 0, "")
    assert refused.value.field == "failure_reason_contains"
