"""Commands' histories over a real database, SQLite and PostgreSQL (docs/design.md §8): events
one by one and set-based (INSERT ... SELECT), read back in order a page at a time, and gone
with their command when retention removes it."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine_service.domain.commands import (
    CommandBatch,
    CommandRecord,
    CommandStatus,
    OnHosts,
    Outcome,
)
from engine_service.domain.history import CommandEvent, EventKind
from engine_service.domain.hosts import Host
from engine_service.domain.tasks import AsyncTask, TaskPlan, Verb, new_id
from engine_service.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import Sessions

AT = datetime(2030, 1, 1, 12, 0, 0, 123456)


def seed(sessions: Sessions, commands: int) -> tuple[str, list[str], list[AsyncTask]]:
    """A host, `commands` AddDisk commands with one task each (agent ids set)."""
    host = Host(new_id(), f"h-{new_id()[:8]}", f"{new_id()[:8]}:1")
    roots, tasks = [], []
    with UnitOfWork(sessions) as uow:
        uow.repo.add_host(host)
        for _ in range(commands):
            root = CommandRecord(new_id(), "AddDisk", {}, created_at=AT)
            uow.repo.add_commands([root])
            plan = TaskPlan(
                Verb.CREATE_VOLUME, {"storage_domain_id": new_id(), "image_id": new_id()}
            )
            task = AsyncTask.placeholder(plan, root.command_id, root.command_id, host.host_id, AT)
            task.vdsm_task_id = new_id()
            uow.repo.add_tasks([task])
            roots.append(root.command_id)
            tasks.append(task)
        uow.commit()
    return host.host_id, roots, tasks


def history(
    sessions: Sessions, command_id: str, after: int = 0, limit: int = 100
) -> list[CommandEvent]:
    with UnitOfWork(sessions, read_only=True) as uow:
        return uow.repo.events_of(command_id, after, limit)


def test_events_are_read_back_in_order_a_page_at_a_time(sessions: Sessions) -> None:
    _, [root], [task] = seed(sessions, 1)
    with UnitOfWork(sessions) as uow:
        uow.repo.add_events(
            [
                CommandEvent(root, AT, EventKind.ACCEPTED, "AddDisk accepted"),
                CommandEvent(
                    root, AT, EventKind.TASK_ACCEPTED, "agent task x", task.task_id, task.host_id
                ),
                CommandEvent(root, AT + timedelta(seconds=1), EventKind.ENDED, "SUCCEEDED"),
            ]
        )
        uow.commit()
    found = history(sessions, root)
    assert [(e.kind, e.message, e.time) for e in found] == [
        (EventKind.ACCEPTED, "AddDisk accepted", AT),
        (EventKind.TASK_ACCEPTED, "agent task x", AT),
        (EventKind.ENDED, "SUCCEEDED", AT + timedelta(seconds=1)),
    ]
    assert found[1].task_id == task.task_id and found[0].task_id is None
    assert [e.event_id for e in found] == sorted(e.event_id for e in found)
    assert history(sessions, root, found[0].event_id, 1) == [found[1]]


def test_an_event_rolled_back_with_its_change_is_gone(sessions: Sessions) -> None:
    _, [root], _ = seed(sessions, 1)
    with UnitOfWork(sessions) as uow:
        uow.repo.add_events([CommandEvent(root, AT, EventKind.ENDED, "FAILED")])
        # no commit: the change it recorded did not happen
    assert history(sessions, root) == []


def test_set_based_events_for_a_batch_and_for_tasks(sessions: Sessions) -> None:
    host_id, roots, tasks = seed(sessions, 3)
    outcome = Outcome(CommandStatus.FAILED, "host gone")
    with UnitOfWork(sessions) as uow:
        batch = uow.repo.end_active_commands(OnHosts((host_id,)), outcome, AT)
        uow.repo.add_batch_event(batch, EventKind.ENDED, "FAILED: host gone", AT)
        uow.repo.add_events_for_tasks(
            [t.task_id for t in tasks[:2]], EventKind.TASK_ADOPTED, "agent task ", AT
        )
        uow.repo.add_events_for_tasks_on_host(host_id, EventKind.TASK_WRITTEN_OFF, "gone", AT)
        uow.commit()
    for i, (root, task) in enumerate(zip(roots, tasks, strict=True)):
        found = [(e.kind, e.message, e.task_id, e.host_id) for e in history(sessions, root)]
        expected: list[tuple[EventKind, str, str | None, str | None]] = [
            (EventKind.ENDED, "FAILED: host gone", None, None)
        ]
        if i < 2:
            expected.append(
                (EventKind.TASK_ADOPTED, f"agent task {task.vdsm_task_id}", task.task_id, host_id)
            )
        expected.append((EventKind.TASK_WRITTEN_OFF, "gone", task.task_id, host_id))
        assert found == expected
    assert isinstance(batch, CommandBatch)


def test_retention_removes_a_commands_history_with_it(sessions: Sessions) -> None:
    _, [root], _ = seed(sessions, 1)
    with UnitOfWork(sessions) as uow:
        uow.repo.end_command_tree(root, Outcome(CommandStatus.SUCCEEDED), AT)
        uow.repo.add_events([CommandEvent(root, AT, EventKind.ENDED, "SUCCEEDED")])
        uow.repo.delete_tasks([t.task_id for t in uow.repo.tasks_of(root)])
        uow.commit()
    with UnitOfWork(sessions) as uow:
        pruned = uow.repo.prune_commands_ended_before(AT + timedelta(days=1), 10)
        uow.commit()
    assert pruned["commands"] == 1
    assert history(sessions, root) == []
