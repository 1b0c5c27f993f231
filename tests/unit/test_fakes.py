"""The fakes keep the contracts the service-layer tests rely on: a unit of work commits all or
nothing, the repository's conditional statements, the fake agents' idempotency and failures."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from engine_service.adapters.agent_client import AgentRejected, AgentUnavailable
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import (
    CommandBatch,
    CommandRecord,
    CommandStatus,
    OrphanQuery,
    Outcome,
)
from engine_service.domain.hosts import Host
from engine_service.domain.tasks import AsyncTask, TaskCleanup, TaskPlan, Verb
from tests.unit.fakes import FakeAgentPool, FakeUnitOfWorkFactory

FAILED = Outcome(CommandStatus.FAILED, "boom")
NOW = utcnow()


def placeholder(root: str, host: str = "h1", age: float = 1.0) -> AsyncTask:
    plan = TaskPlan(Verb.CREATE_VOLUME, {"storage_domain_id": "sd", "image_id": "img"})
    return AsyncTask.placeholder(plan, root, root, host, NOW - timedelta(seconds=age))


def seeded(*records: CommandRecord, tasks: tuple[AsyncTask, ...] = ()) -> FakeUnitOfWorkFactory:
    factory = FakeUnitOfWorkFactory()
    with factory() as uow:
        uow.repo.add_commands(records)
        uow.repo.add_tasks(tasks)
        uow.commit()
    return factory


def test_changes_are_visible_only_after_commit() -> None:
    factory = FakeUnitOfWorkFactory()
    with factory() as uow:
        uow.repo.add_host(Host("h1", "host1", "a:1"))
    assert factory.store.hosts == {}
    with factory() as uow:
        uow.repo.add_host(Host("h1", "host1", "a:1"))
        uow.commit()
    assert list(factory.store.hosts) == ["h1"] and factory.commits == 1


def test_a_read_only_unit_refuses_to_commit() -> None:
    factory = FakeUnitOfWorkFactory()
    with factory(read_only=True) as uow, pytest.raises(RuntimeError, match="read-only"):
        uow.commit()
    assert factory.commits == 0


def test_objects_read_back_are_copies() -> None:
    factory = FakeUnitOfWorkFactory()
    factory.store.hosts["h1"] = Host("h1", "host1", "a:1")
    with factory() as uow:
        uow.repo.host("h1").failed_polls = 5
        uow.commit()
    assert factory.store.hosts["h1"].failed_polls == 0


def test_end_command_tree_ends_only_an_active_command_and_its_active_children() -> None:
    factory = seeded(
        CommandRecord("root", "AddDisk", {}),
        CommandRecord("kid", "CreateVolume", {}, parent_id="root"),
        CommandRecord("done", "CreateVolume", {}, parent_id="root", status=CommandStatus.CANCELLED),
    )
    with factory() as uow:
        assert uow.repo.end_command_tree("root", FAILED, NOW) is True
        assert uow.repo.end_command_tree("root", Outcome(CommandStatus.SUCCEEDED), NOW) is False
        uow.commit()
    statuses = {c: r.status for c, r in factory.store.commands.items()}
    assert statuses == {"root": "FAILED", "kid": "FAILED", "done": "CANCELLED"}


def test_settle_tasks_of_keeps_unsent_placeholders_on_kept_hosts_as_debt() -> None:
    sent = placeholder("root", "h1")
    sent.vdsm_task_id = "v1"
    gone, kept = placeholder("root", "h1"), placeholder("root", "h2")
    factory = seeded(CommandRecord("root", "AddDisk", {}), tasks=(sent, gone, kept))
    with factory() as uow:
        removed = uow.repo.settle_tasks_of(
            CommandBatch.of(["root"]), TaskCleanup.COMPENSATE, ["h2"]
        )
        uow.commit()
    assert removed == 1
    cleanups = {t: task.cleanup for t, task in factory.store.tasks.items()}
    assert cleanups == {sent.task_id: "compensate", kept.task_id: "compensate"}


def test_end_active_commands_of_orphans_skips_executing_and_recent_placeholders() -> None:
    old, executing, young = placeholder("old"), placeholder("run"), placeholder("new", age=-5)
    factory = seeded(
        *(CommandRecord(c, "AddDisk", {}) for c in ("old", "run", "new")),
        CommandRecord("kid", "CreateVolume", {}, parent_id="old"),
        tasks=(old, executing, young),
    )
    with factory() as uow:
        query = OrphanQuery(NOW, frozenset({"run"}))
        batch = uow.repo.end_active_commands(query, FAILED, NOW)
        assert uow.repo.command_ids_in(batch) == ["old"]
        uow.commit()
    assert factory.store.commands["kid"].status is CommandStatus.FAILED
    assert factory.store.commands["run"].status is CommandStatus.ACTIVE


def test_the_fake_agent_is_idempotent_by_request_id_and_fails_on_demand() -> None:
    agent = FakeAgentPool().get("a:1")
    args = {"storage_domain_id": "sd", "image_id": "img", "size_bytes": 1}
    first = agent.start_task("CreateVolume", "r1", args)
    assert agent.start_task("CreateVolume", "r1", args) == first
    agent.fail("all_info", AgentRejected(grpc.StatusCode.INTERNAL, "no"), times=1)
    with pytest.raises(AgentRejected):
        agent.all_info()
    assert [i.request_id for i in agent.all_info()] == ["r1"]
    agent.down = True
    with pytest.raises(AgentUnavailable):
        agent.all_statuses()


def test_the_fake_agent_refuses_a_task_whose_placeholder_is_not_committed() -> None:
    agent = FakeAgentPool(committed=dict).get("a:1")
    with pytest.raises(AssertionError, match="I1"):
        agent.start_task("CreateVolume", "r1", {"storage_domain_id": "s", "image_id": "i"})
