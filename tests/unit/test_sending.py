"""Starting a command's tasks (sending.py; docs/design.md §4 step 4, §6): the first alone, then
the others at once, each host's in StartTasks calls of at most STARTS_PER_CALL, at most
`starts_per_host` calls in flight per host, and every agent id stored in ONE commit after the
starts. A start that fails stops the calls not sent yet; the ones accepted are stored and
compensated with the command. The lanes run one after the other here (World)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from engine_service.adapters.agent_client import AgentRejected, AgentUnavailable
from engine_service.domain.commands import CommandStatus
from engine_service.domain.history import EventKind
from engine_service.domain.tasks import TaskCleanup
from engine_service.service_layer import sending
from engine_service.service_layer.commands.move_disk import MoveDisk
from tests.unit.fakes import FakeAgentClient
from tests.unit.world import World


def template(w: World, disks: int, hosts: int = 1) -> tuple[str, list[FakeAgentClient]]:
    """Hosts, and an AddVmTemplate of a VM of `disks` disks: (command id, the hosts' agents)."""
    agents = [w.agent(w.host(f"host{i}")) for i in range(1, hosts + 1)]
    sd = w.domain()
    vm = w.vm(*(w.disk(sd, f"d{i}") for i in range(disks)))
    return w.add_template(vm, sd), agents


def fail_start(agent: FakeAgentClient, number: int, error: Exception, cancel: Any = None) -> None:
    """The agent's `number`-th start (from 1) raises `error`, every time it is tried."""
    seen: list[str] = []

    def on_start(request_id: str) -> None:
        if request_id not in seen:
            seen.append(request_id)
        if seen.index(request_id) + 1 == number:
            if cancel is not None:
                cancel(request_id)
            raise error

    agent.on_start = on_start


def test_the_first_start_goes_alone_then_the_rest_at_once_and_the_ids_in_one_commit() -> None:
    w = World()
    root, [agent] = template(w, disks=4)
    assert w.lanes_run == [1]  # after the first, the other three at once: one call
    [alone, together] = [t for t in w.tasks(root)], agent.called("start_tasks")
    assert [len(c) for c in together] == [3] and len(agent.called("start_task")) == 4
    assert {t.task_id for t in alone} == {r for _, r, _ in agent.called("start_task")}
    # placeholders before any call (I1); ids after all: the first start, a call, its three starts
    assert w.agent_calls_at_commit == [0, 1 + 1 + 3]
    tasks = w.tasks(root)
    assert [t.vdsm_task_id for t in tasks] == [agent.by_request[t.task_id] for t in tasks]
    assert all(t.submitted_at is not None for t in tasks)
    accepted = [e for e in w.store.events if e.kind is EventKind.TASK_ACCEPTED]
    assert sorted(str(e.task_id) for e in accepted) == sorted(t.task_id for t in tasks)
    assert w.command(root).status is CommandStatus.ACTIVE


def test_a_command_of_one_task_needs_no_lane() -> None:
    w = World()
    w.host()
    root = w.add_disk(w.domain())
    assert w.lanes_run == [] and w.agent_calls_at_commit == [0, 1]
    assert w.tasks(root)[0].vdsm_task_id is not None


def test_each_hosts_starts_go_in_calls_of_at_most_starts_per_call() -> None:
    w = World()
    root, agents = template(w, disks=7, hosts=2)  # 4 on host1 (the first of them alone), 3
    assert w.lanes_run == [1 + 1]  # one call per host
    assert [len(a.called("start_tasks")) for a in agents] == [1, 1]
    assert [len(a.called("start_task")) for a in agents] == [4, 3]
    assert all(t.vdsm_task_id for t in w.tasks(root)) and w.uow.commits == 2


def test_at_most_starts_per_host_calls_on_each_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sending, "STARTS_PER_CALL", 1)
    w = World(starts_per_host=2)
    root, agents = template(w, disks=7, hosts=2)  # 3 calls on each host after the first
    assert w.lanes_run == [2 + 2]
    assert [len(a.called("start_tasks")) for a in agents] == [3, 3]
    assert all(t.vdsm_task_id for t in w.tasks(root)) and w.uow.commits == 2


def test_crash_points_keep_their_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    """after_agent_accept: one child accepted, no agent id stored; after_vdsm_id_commit: every
    child's agent id committed."""
    w = World()
    seen: list[tuple[str, int, int, int]] = []

    def point(name: str) -> None:
        calls = len([c for c in w.agents.calls if c[1] == "start_task"])
        stored = sum(t.vdsm_task_id is not None for t in w.store.tasks.values())
        seen.append((name, calls, w.uow.commits, stored))

    monkeypatch.setattr(sending, "crash_point", point)
    template(w, disks=4)
    assert seen == [("after_agent_accept", 1, 1, 0), ("after_vdsm_id_commit", 4, 2, 4)]


def template_with_third_start_refused(w: World) -> tuple[str, FakeAgentClient]:
    """A template of 4 disks on one host whose third start is refused, failing the command:
    (its id, the host's agent)."""
    agent = w.agent(w.host())
    fail_start(agent, 3, AgentRejected(grpc.StatusCode.RESOURCE_EXHAUSTED, "full"))
    sd = w.domain()
    root = w.add_template(w.vm(*(w.disk(sd, f"d{i}") for i in range(4))), sd)
    command = w.command(root)
    assert command.status is CommandStatus.FAILED and "RESOURCE_EXHAUSTED" in command.failure_reason
    return root, agent


def test_a_refusal_in_a_call_fails_the_command_and_its_accepted_starts_are_compensated() -> None:
    w = World()
    root, agent = template_with_third_start_refused(w)
    assert len(agent.called("start_task")) == 4  # the second call had three starts
    tasks = w.tasks(root)  # the three accepted, to compensate; the refused one deleted
    assert {t.vdsm_task_id for t in tasks} == set(agent.by_request.values())
    assert len(tasks) == 3 and {t.cleanup for t in tasks} == {TaskCleanup.COMPENSATE}
    assert w.uow.commits == 3  # placeholders, the three ids, the end
    assert w.store.locks == {} and w.store.templates == {}


def test_a_refusal_stops_the_calls_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sending, "STARTS_PER_CALL", 1)
    w = World(starts_per_host=1)
    root, agent = template_with_third_start_refused(w)
    assert len(agent.called("start_task")) == 3  # the fourth was never sent
    tasks = w.tasks(root)  # the two accepted, to compensate; the refused and unsent deleted
    assert {t.vdsm_task_id for t in tasks} == set(agent.by_request.values())
    assert len(tasks) == 2 and {t.cleanup for t in tasks} == {TaskCleanup.COMPENSATE}
    assert w.uow.commits == 3  # placeholders, the two ids, the end
    assert w.store.locks == {} and w.store.templates == {}


def test_a_host_that_does_not_answer_leaves_debt_and_the_others_are_not_sent() -> None:
    w = World(start_attempts=3)
    good, silent = w.agent(w.host("host1")), w.agent(w.host("host2"))
    silent.fail("start_task", AgentUnavailable("down"))
    sd = w.domain()  # the four tasks go to host1, host2, host1, host2; host2's lanes run first
    root = w.add_template(w.vm(*(w.disk(sd, f"d{i}") for i in range(4))), sd)
    command = w.command(root)
    assert command.status is CommandStatus.FAILED and "did not start task" in command.failure_reason
    assert len(silent.called("start_tasks")) == 3 and w.sleeps == [0.25, 0.5]  # one call, retried
    [sent] = {args for args in silent.called("start_tasks")}
    tasks = {t.task_id: t for t in w.tasks(root)}  # the first (stored) and the debt; no other
    assert len(good.called("start_task")) == 1 and len(tasks) == 3  # host1's second: not sent
    assert all(tasks[t].vdsm_task_id is None for t in sent)  # host2 may have them: debt
    [first] = [t for t in tasks.values() if t.task_id not in sent]
    assert first.vdsm_task_id == next(iter(good.by_request.values()))
    assert {t.cleanup for t in tasks.values()} == {TaskCleanup.COMPENSATE}


def test_a_cancel_while_a_start_is_retried_stops_the_retries_and_the_rest() -> None:
    w = World(start_attempts=5)
    agent = w.agent(w.host())
    cancel = lambda rid: w.lifecycle.cancel(w.store.tasks[rid].root_command_id)  # noqa: E731
    fail_start(agent, 2, AgentUnavailable("restarting"), cancel=cancel)
    sd = w.domain()
    root = w.add_template(w.vm(*(w.disk(sd, f"d{i}") for i in range(3))), sd)
    assert w.command(root).status is CommandStatus.CANCELLED
    assert len(agent.called("start_tasks")) == 1 and w.sleeps == []  # no retry
    *tried, first = sorted(w.tasks(root), key=lambda t: t.vdsm_task_id is not None)
    # the first, accepted before the cancel: kept, to be compensated; and
    assert first.vdsm_task_id is not None and first.cleanup is TaskCleanup.COMPENSATE
    # the two of the call the agent may have accepted: debt, looked up when it answers
    assert len(tried) == 2
    assert all(t.vdsm_task_id is None and t.cleanup is TaskCleanup.COMPENSATE for t in tried)


def test_tasks_accepted_after_their_command_ended_are_all_kept() -> None:
    w = World()
    agent = w.agent(w.host())
    ended: list[str] = []

    def cancel_at_the_third(request_id: str) -> None:
        if len(agent.called("start_task")) == 3 and not ended:
            ended.append(request_id)
            w.lifecycle.cancel(w.store.tasks[request_id].root_command_id)

    agent.on_start = cancel_at_the_third
    sd = w.domain()
    root = w.add_template(w.vm(*(w.disk(sd, f"d{i}") for i in range(4))), sd)
    assert w.command(root).status is CommandStatus.CANCELLED
    assert len(agent.called("start_task")) == 4  # the fourth was in the cancelled one's call
    tasks = w.tasks(root)
    assert {t.vdsm_task_id for t in tasks} == set(agent.by_request.values())
    assert len(tasks) == 4 and {t.cleanup for t in tasks} == {TaskCleanup.COMPENSATE}
    late = [e for e in w.store.events if e.kind is EventKind.TASK_ACCEPTED_LATE]
    assert len(late) == 4  # no id was stored before the cancel: every placeholder went with it


def test_a_phase_after_the_first_is_sent_the_same_way() -> None:
    w = World()
    host = w.host()
    src, dst = w.domain("src"), w.domain("dst")
    disk = w.disk(src)
    root = w.lifecycle.submit(lambda: MoveDisk.create(disk.disk_id, dst), None).command_id
    [copy] = w.tasks(root)
    w.finish_on_agent(copy)
    w.record_poll(host)
    w.manager().end_decided_commands()  # the copy is done: the removal phase starts
    [removal] = [t for t in w.tasks(root) if t.verb == "RemoveImage"]
    assert removal.vdsm_task_id is not None and w.lanes_run == []
