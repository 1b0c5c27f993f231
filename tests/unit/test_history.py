"""A command's history (issue 17; docs/design.md §8): each event is written by the transaction
that makes the change it records, so a failed commit leaves neither; the history tells which
host, which task, what the agent said, the end, the compensation and the clearing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus, Outcome
from engine_service.domain.history import CommandEvent, EventKind
from engine_service.domain.hosts import Host, HostStatus
from engine_service.service_layer.commands.add_disk import AddDisk
from engine_service.service_layer.engine import Engine
from engine_service.service_layer.fencing import confirm_host_rebooted
from harness.invariants import disagreements_of
from service_common.errors import InvalidArgument, NotFound
from service_common.vdsm_tasks import TaskResult, TaskState
from tests.unit.world import World, status


def kinds(w: World, root: str) -> list[EventKind]:
    return [e.kind for e in events(w, root)]


def events(w: World, root: str) -> list[CommandEvent]:
    return [e for e in w.store.events if e.command_id == root]


def template_on_two_hosts(w: World) -> tuple[Host, Host, str]:
    first, second, sd = w.host("host1"), w.host("host2"), w.domain()
    vm = w.vm(w.disk(sd, "a"), w.disk(sd, "b"))
    return first, second, w.add_template(vm, sd)


def test_a_submitted_command_records_its_acceptance_and_each_task_its_host_accepted() -> None:
    w = World()
    first, second, root = template_on_two_hosts(w)
    recorded = events(w, root)
    assert [e.kind for e in recorded] == [
        EventKind.ACCEPTED,
        EventKind.PLACEHOLDER,
        EventKind.PLACEHOLDER,
        EventKind.TASK_ACCEPTED,
        EventKind.TASK_ACCEPTED,
    ]
    assert recorded[0].message == "AddVmTemplate accepted with 2 task placeholder(s)"
    tasks = {t.task_id: t for t in w.tasks(root)}
    for event in recorded[3:]:
        task = tasks[event.task_id or ""]
        assert event.host_id == task.host_id and event.message == f"agent task {task.vdsm_task_id}"
    assert {e.host_id for e in recorded[1:3]} == {first.host_id, second.host_id}


def test_a_failed_copy_tells_the_host_the_task_the_agents_message_the_end_and_the_cleanup() -> None:
    w = World()
    first, second, root = template_on_two_hosts(w)
    broken, running = w.tasks(root)
    host = w.store.hosts[broken.host_id]
    assert broken.vdsm_task_id is not None and running.vdsm_task_id is not None
    other = w.store.hosts[running.host_id]
    w.agent(other).report(running.vdsm_task_id, TaskState.RUNNING, progress=60)
    w.finish_on_agent(broken, TaskResult.FAILURE, "No space left on device")
    result = w.record_poll(first, second)
    manager = w.manager()
    manager.end_decided_commands()
    manager.clean_up(result)  # stops the running copy, compensates and clears the broken one
    w.agent(other).report(running.vdsm_task_id, TaskState.FINISHED, TaskResult.CLEAN_SUCCESS)
    manager.clean_up(w.record_poll(first, second))
    recorded = events(w, root)
    tail = [(e.kind, e.task_id, e.host_id) for e in recorded[5:]]
    assert set(tail[:2]) == {  # one poll, both hosts
        (EventKind.PROGRESS, running.task_id, other.host_id),
        (EventKind.TASK_FINISHED, broken.task_id, host.host_id),
    }
    assert tail[2:] == [
        (EventKind.ENDED, None, None),
        (EventKind.TASK_CLEARED, broken.task_id, host.host_id),
        (EventKind.TASK_FINISHED, running.task_id, other.host_id),  # stopped by the cleanup
        (EventKind.TASK_CLEARED, running.task_id, other.host_id),
    ]
    [finished] = [e for e in recorded[5:7] if e.kind is EventKind.TASK_FINISHED]
    assert finished.message == "failure: No space left on device"
    assert recorded[7].message == (
        f"FAILED: task {broken.task_id} ended failure: No space left on device"
    )
    assert "its image deleted (compensation)" in recorded[8].message
    assert w.command(root).status is CommandStatus.FAILED


def test_the_history_says_who_asked_for_a_command_and_for_its_retry() -> None:
    w = World()
    w.host()
    sd = w.domain()
    root = w.lifecycle.submit(
        lambda: AddDisk.create("d", sd, 1), None, by="token ops from ipv4:10.0.0.1:1"
    ).command_id
    assert events(w, root)[0].message.endswith("asked by token ops from ipv4:10.0.0.1:1")
    assert w.lifecycle.finish(root, Outcome(CommandStatus.FAILED, "x"))
    again = w.lifecycle.submit(
        lambda: AddDisk.create("d", sd, 1), None, retry_of=root, by="token ops"
    ).command_id
    assert events(w, root)[-1].message == f"retried as command {again}, asked by token ops"


def test_an_event_never_outlives_a_commit_that_failed() -> None:
    w = World()
    w.host()
    sd = w.domain()
    w.uow.conflict_next_commit()
    w.uow.conflict_next_commit()
    w.uow.conflict_next_commit()
    with pytest.raises(Exception, match="conflicting"):
        w.add_disk(sd)
    assert w.store.events == [] and w.store.commands == {}


def test_a_cancel_records_who_asked_with_the_end_in_one_commit() -> None:
    w = World()
    w.host()
    root = w.add_disk(w.domain())
    commits = w.uow.commits
    w.lifecycle.cancel(root, "token ops from ipv4:10.1.2.3:5000")
    assert w.uow.commits == commits + 1
    assert kinds(w, root)[-2:] == [EventKind.CANCEL_REQUESTED, EventKind.ENDED]
    asked, end = events(w, root)[-2:]
    assert asked.message == "by token ops from ipv4:10.1.2.3:5000"
    assert end.message == "CANCELLED: cancelled by a client"


def test_reconciliation_records_adoptions_and_failed_orphans() -> None:
    w = World()
    host = w.host()
    sd = w.domain()
    adopted = w.commit_only(AddDisk.create("a", sd, 1), host)
    orphaned = w.commit_only(AddDisk.create("b", sd, 1), host)
    [placeholder] = w.tasks(adopted)
    vdsm_id = w.agent(host).add_task(
        placeholder.task_id, placeholder.verb, (placeholder.storage_domain_id, placeholder.image_id)
    )
    w.reconciler().reconcile()
    [adoption] = [e for e in events(w, adopted) if e.kind is EventKind.TASK_ADOPTED]
    assert adoption.message == f"found on its host by request id: agent task {vdsm_id}"
    assert adoption.task_id == placeholder.task_id and adoption.host_id == host.host_id
    assert kinds(w, orphaned) == [EventKind.ACCEPTED, EventKind.PLACEHOLDER, EventKind.ENDED]
    assert events(w, orphaned)[-1].message.startswith("FAILED: engine restarted")


def test_a_fenced_hosts_tasks_are_written_off_in_their_commands_histories() -> None:
    w = World()
    host = w.host()
    root = w.add_disk(w.domain())
    stored = w.store.hosts[host.host_id]
    stored.status, stored.unreachable_since = HostStatus.NON_RESPONSIVE, utcnow()
    confirm_host_rebooted(w.uow, w.pool, host.host_id, "PDU off", "ops")
    assert kinds(w, root)[-2:] == [EventKind.ENDED, EventKind.TASK_WRITTEN_OFF]
    assert "confirmed rebooted by ops: PDU off" in events(w, root)[-1].message


def test_a_dead_hosts_commands_record_their_end_set_based() -> None:
    w = World(task_timeout=10)
    host = w.host()
    sd = w.domain()
    roots = [w.add_disk(sd, f"d{i}") for i in range(3)]
    stored = w.store.hosts[host.host_id]
    stored.status = HostStatus.NON_RESPONSIVE
    stored.unreachable_since = utcnow() - timedelta(seconds=11)
    w.manager().fail_commands_on_dead_hosts()
    for root in roots:
        assert kinds(w, root)[-1] is EventKind.ENDED
        assert events(w, root)[-1].message.startswith("FAILED: host host1 ")


def test_the_history_is_read_a_page_at_a_time_and_refuses_bad_input() -> None:
    w = World()
    first, second, root = template_on_two_hosts(w)
    engine = Engine(w.uow, w.pool, w.lifecycle, w.manager(), w.reconciler(), None)  # type: ignore[arg-type]
    page, token = engine.command_events(root, 2, "")
    assert [e.kind for e in page] == [EventKind.ACCEPTED, EventKind.PLACEHOLDER] and token
    rest, end = engine.command_events(root, 50, token)
    assert len(rest) == 3 and end == ""
    with pytest.raises(NotFound, match="command_id"):
        engine.command_events("0f2b6c7e-3d4a-4e5f-8a9b-1c2d3e4f5a6b", 10, "")
    with pytest.raises(InvalidArgument, match="page_token"):
        engine.command_events(root, 10, "garbage")
    child = next(c.command_id for c in w.children(root))
    with pytest.raises(InvalidArgument, match="child of"):
        engine.command_events(child, 10, "")


def test_a_task_reaching_half_way_is_a_milestone_once() -> None:
    w = World()
    host = w.host()
    root = w.add_disk(w.domain())
    [task] = w.tasks(root)
    assert task.vdsm_task_id is not None
    for progress in (30, 55, 70, 80):
        w.agent(host).statuses[task.vdsm_task_id] = status(task.vdsm_task_id, progress=progress)
        w.record_poll(host)
    assert kinds(w, root).count(EventKind.PROGRESS) == 1
    assert [e.message for e in events(w, root) if e.kind is EventKind.PROGRESS] == ["55%"]


def test_the_crash_tests_history_check_finds_each_kind_of_disagreement() -> None:
    """harness/invariants.py checks every history after every crash test; it must be able to
    fail (it runs over rows, so it is tested here over plain tuples)."""
    ok = [
        ("accepted", "", None),
        ("task_accepted", "agent task v", "t1"),
        ("ended", "FAILED: x", None),
    ]
    assert disagreements_of("c", "FAILED", ok) == []
    assert disagreements_of("c", "ACTIVE", ok[:2]) == []
    assert disagreements_of("c", "SUCCEEDED", ok) == [
        "c: SUCCEEDED, but its history's ends are ['FAILED: x']"
    ]
    assert disagreements_of("c", "ACTIVE", ok) == [
        "c: ACTIVE, but its history says it ended (['FAILED: x'])"
    ]
    assert disagreements_of("c", "FAILED", ok[1:]) == ["c: accepted 0 times"]
    twice = [*ok, ("task_accepted", "agent task v", "t1")]
    assert disagreements_of("c", "FAILED", twice) == ["c: a task task_accepted twice"]
