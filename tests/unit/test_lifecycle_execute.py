"""CommandLifecycle.execute (docs/design.md §4 step 4, §7 step 5): each placeholder's task is
started under the engine's task id, retried on UNAVAILABLE with the same request id, moved off a
host that is no longer UP, and recorded even when it was accepted after its command ended."""

from __future__ import annotations

import grpc

from engine_service.adapters.agent_client import AgentRejected, AgentUnavailable
from engine_service.domain.commands import CommandStatus
from engine_service.domain.hosts import HostStatus
from engine_service.domain.tasks import TaskCleanup
from engine_service.service_layer.commands.add_disk import AddDisk
from engine_service.service_layer.commands.add_vm_template import AddVmTemplate
from tests.unit.world import World


def template_world(disks: int = 2, start_attempts: int = 3) -> tuple[World, str]:
    """A submitted AddVmTemplate of a VM with `disks` disks, on one UP host."""
    w = World(start_attempts=start_attempts)
    w.host()
    sd = w.domain()
    vm = w.vm(*(w.disk(sd, f"d{i}") for i in range(disks)))
    return w, w.add_template(vm, sd)


def test_every_placeholder_gets_its_agent_id_under_the_engine_task_id() -> None:
    w, root = template_world(disks=3)
    agent = w.agent(next(iter(w.store.hosts.values())))
    tasks = w.tasks(root)
    assert len(tasks) == 3
    assert [t.vdsm_task_id for t in tasks] == [agent.by_request[t.task_id] for t in tasks]
    assert all(t.submitted_at is not None for t in tasks)
    sent = agent.called("start_task")
    assert sorted(request_id for _, request_id, _ in sent) == sorted(t.task_id for t in tasks)
    assert {verb for verb, _, _ in sent} == {"CopyImage"}


def test_the_agent_gets_the_childs_arguments() -> None:
    w = World()
    host, sd = w.host(), w.domain()
    root = w.add_disk(sd, "d", 4096)
    [task] = w.tasks(root)
    [(verb, request_id, args)] = w.agent(host).called("start_task")
    assert (verb, request_id) == ("CreateVolume", task.task_id)
    assert args == {"storage_domain_id": sd, "image_id": task.image_id, "size_bytes": 4096}


def test_unavailable_is_retried_with_the_same_request_id() -> None:
    w = World(start_attempts=3)
    host, sd = w.host(), w.domain()
    w.agent(host).fail("start_task", AgentUnavailable("restarting"), times=2)
    root = w.add_disk(sd)
    [task] = w.tasks(root)
    assert [r for _, r, _ in w.agent(host).called("start_task")] == [task.task_id] * 3
    assert w.sleeps == [0.25, 0.5]
    assert w.command(root).status is CommandStatus.ACTIVE and task.vdsm_task_id is not None


def test_unavailable_after_the_last_attempt_fails_the_command_and_keeps_the_debt() -> None:
    w = World(start_attempts=3)
    host, sd = w.host(), w.domain()
    w.agent(host).fail("start_task", AgentUnavailable("down"))
    root = w.add_disk(sd)
    command = w.command(root)
    assert command.status is CommandStatus.FAILED
    assert "did not start task" in command.failure_reason and "down" in command.failure_reason
    [task] = w.tasks(root)
    assert (task.vdsm_task_id, task.cleanup) == (None, TaskCleanup.COMPENSATE)
    assert len(w.agent(host).called("start_task")) == 3 and len(w.sleeps) == 2
    assert w.store.disks == {} and w.store.locks == {}


def test_unavailable_keeps_only_the_task_that_was_tried_the_rest_are_deleted() -> None:
    w = World(start_attempts=2)
    host, sd = w.host(), w.domain()
    w.agent(host).fail("start_task", AgentUnavailable("down"))
    vm = w.vm(w.disk(sd, "a"), w.disk(sd, "b"))
    root = w.add_template(vm, sd)
    [tried] = {r for _, r, _ in w.agent(host).called("start_task")}
    assert [t.task_id for t in w.tasks(root)] == [tried]
    assert w.tasks(root)[0].cleanup is TaskCleanup.COMPENSATE


def test_a_rejection_fails_the_command_at_once_and_deletes_its_unsent_placeholders() -> None:
    w = World(start_attempts=3)
    host, sd = w.host(), w.domain()
    w.agent(host).fail("start_task", AgentRejected(grpc.StatusCode.RESOURCE_EXHAUSTED, "full"))
    root = w.add_disk(sd)
    command = w.command(root)
    assert command.status is CommandStatus.FAILED and "RESOURCE_EXHAUSTED" in command.failure_reason
    assert len(w.agent(host).called("start_task")) == 1 and w.sleeps == []
    assert w.tasks(root) == [] and w.store.disks == {}
    assert {c.status for c in w.children(root)} == {CommandStatus.FAILED}


def test_a_placeholder_whose_host_left_moves_to_the_least_busy_up_host() -> None:
    w = World()
    gone, busy, idle = w.host("a"), w.host("b"), w.host("c")
    sd = w.domain()
    w.commit_only(AddDisk.create("x", sd, 1), busy)
    root = w.commit_only(AddDisk.create("y", sd, 1), gone)
    w.store.hosts[gone.host_id].status = HostStatus.MAINTENANCE
    seen: list[str] = []
    w.agent(idle).on_start = lambda rid: seen.append(w.store.tasks[rid].host_id)
    w.lifecycle.execute(root)
    [task] = w.tasks(root)
    assert task.host_id == idle.host_id and seen == [idle.host_id]  # moved, committed, sent
    assert w.agent(gone).called("start_task") == [] and task.vdsm_task_id is not None


def test_with_no_host_up_left_an_unsent_command_fails() -> None:
    w = World()
    host, sd = w.host(), w.domain()
    root = w.commit_only(AddDisk.create("y", sd, 1), host)
    w.store.hosts[host.host_id].status = HostStatus.NON_RESPONSIVE
    w.lifecycle.execute(root)
    command = w.command(root)
    assert command.status is CommandStatus.FAILED
    assert "no host is UP to run task" in command.failure_reason
    assert w.tasks(root) == [] and w.agents.calls == []


def test_execute_read_back_sends_only_the_placeholders_without_an_agent_id() -> None:
    w = World()
    host, sd = w.host(), w.domain()
    vm = w.vm(w.disk(sd, "a"), w.disk(sd, "b"))
    root = w.commit_only(AddVmTemplate.create(vm.vm_id, "t", sd), host)
    sent, unsent = w.tasks(root)
    w.store.tasks[sent.task_id].vdsm_task_id = "already-there"
    w.lifecycle.execute(root)
    assert [r for _, r, _ in w.agent(host).called("start_task")] == [unsent.task_id]
    assert w.store.tasks[sent.task_id].vdsm_task_id == "already-there"


def test_a_command_is_executing_while_its_tasks_are_sent_and_not_after() -> None:
    w = World()
    host, sd = w.host(), w.domain()
    during: list[set[str]] = []
    w.agent(host).on_start = lambda rid: during.append(w.lifecycle.executing())
    root = w.add_disk(sd)
    assert during == [{root}] and w.lifecycle.executing() == set()


def test_a_task_accepted_after_its_command_ended_is_kept_to_be_compensated() -> None:
    w = World()
    host, sd = w.host(), w.domain()
    vm = w.vm(w.disk(sd, "a"), w.disk(sd, "b"))
    agent = w.agent(host)
    agent.on_start = lambda rid: w.lifecycle.cancel(w.store.tasks[rid].root_command_id)
    root = w.add_template(vm, sd)
    [(_, request_id, _)] = agent.called("start_task")  # the second one was never sent
    [task] = w.tasks(root)
    assert (task.task_id, task.vdsm_task_id) == (request_id, agent.by_request[request_id])
    assert task.cleanup is TaskCleanup.COMPENSATE and task.submitted_at is not None
    assert w.command(root).status is CommandStatus.CANCELLED


def test_a_task_accepted_after_its_command_ended_still_names_its_child_command() -> None:
    w = World()
    host, sd = w.host(), w.domain()
    agent = w.agent(host)
    agent.on_start = lambda rid: w.lifecycle.cancel(w.store.tasks[rid].root_command_id)
    root = w.add_disk(sd)
    [child] = w.children(root)
    [task] = w.tasks(root)
    assert task.command_id == child.command_id
