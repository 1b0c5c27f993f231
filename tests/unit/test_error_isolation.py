"""Error isolation in the poll loop (docs/design.md §4, steps 5 and 6): an unreadable task
status, a host whose reply cannot be read, a poll that cannot be recorded in one transaction and
a command whose end raises each stop nothing else; what keeps failing ends FAILED with a reason.
The agent's wire messages are real protobuf ones; everything else is the in-memory fakes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY

from engine_service.adapters import agent_client
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus, Outcome
from engine_service.domain.hosts import Host, HostStatus
from engine_service.domain.tasks import AsyncTask, new_id
from engine_service.service_layer.async_task_manager import AsyncTaskManager
from engine_service.service_layer.cleanup import Cleaner
from engine_service.service_layer.commands.add_disk import AddDisk
from engine_service.service_layer.isolation import CommandEnder
from engine_service.service_layer.polling import PollResult
from service_common.vdsm_tasks import TaskResult, TaskState
from tests.unit.fake_repository import FakeRepository
from tests.unit.world import World
from vdsm_agent.v1 import agent_service_pb2 as pb

LIMIT = 5


def errors(stage: str) -> float:
    """engine_poll_errors_total{stage} so far (the registry is global: compare differences)."""
    return REGISTRY.get_sample_value("engine_poll_errors_total", {"stage": stage}) or 0.0


def vdsm(task: AsyncTask) -> str:
    assert task.vdsm_task_id is not None
    return task.vdsm_task_id


def wire(task_id: str, state: int, result: int = 0, progress: int = 0) -> Any:
    """A TaskStatus as an agent sends it; `state` and `result` may be numbers no enum names."""
    status = pb.TaskStatus(task_id=task_id, progress_percent=progress)
    status.state = state  # type: ignore[assignment]  # an open enum keeps unknown numbers
    status.result = result  # type: ignore[assignment]
    return status


def two_hosts() -> tuple[World, Host, Host, list[str]]:
    """host1 runs two AddDisk tasks, host2 one; every agent reports them finished with success."""
    w = World()
    host1, sd = w.host("host1"), w.domain()
    roots = [w.add_disk(sd, "a"), w.add_disk(sd, "b")]
    host2 = w.host("host2")
    roots.append(w.add_disk(sd, "c"))
    assert [w.tasks(r)[0].host_id for r in roots] == [host1.host_id] * 2 + [host2.host_id]
    for root in roots:
        w.finish_on_agent(w.tasks(root)[0])
    return w, host1, host2, roots


def record(manager: AsyncTaskManager, w: World, *hosts: Host) -> PollResult:
    """One poll of these hosts' agents, recorded by the manager's poller (no thread)."""
    result = PollResult()
    for host in hosts:
        result.asked_at[host.host_id] = utcnow()
        result.statuses[host.host_id] = w.agent(host).all_statuses()
    manager.poller.record([h.host_id for h in hosts], result)
    return result


# -- reading the agent's reply (agent_client) -----------------------------------------------


def test_each_status_of_a_reply_is_read_on_its_own() -> None:
    reply = pb.GetAllTasksStatusesResponse(
        statuses=[
            wire("good", pb.TASK_STATE_FINISHED, pb.TASK_RESULT_SUCCESS, 100),
            wire("bad-state", 99),
            wire("bad-result", pb.TASK_STATE_FINISHED, 42),
            wire("no-state", pb.TASK_STATE_UNSPECIFIED),
            wire("", pb.TASK_STATE_RUNNING),
        ]
    )
    statuses = agent_client.statuses_of(reply)
    good = statuses["good"]
    assert good.readable and (good.state, good.result, good.progress_percent) == (
        TaskState.FINISHED,
        TaskResult.SUCCESS,
        100,
    )
    problems = {k: (s.state, s.problem) for k, s in statuses.items() if not s.readable}
    assert problems == {
        "bad-state": (None, "unknown state 99"),
        "bad-result": (None, "unknown result 42"),
        "no-state": (None, "unknown state TASK_STATE_UNSPECIFIED"),
        "": (None, "a status without a task id"),
    }


def test_a_readable_status_says_no_problem() -> None:
    status = agent_client.status_of(wire("t", pb.TASK_STATE_RUNNING, progress=40))
    assert (status.state, status.result, status.progress_percent, status.problem) == (
        TaskState.RUNNING,
        TaskResult.NONE,
        40,
        "",
    )


# -- recording a poll -----------------------------------------------------------------------


def test_an_unreadable_status_stops_no_other_task_and_fails_its_command_at_the_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w, host1, host2, (bad, good, other) = two_hosts()
    [bad_task] = w.tasks(bad)
    w.agent(host1).statuses[vdsm(bad_task)] = agent_client.status_of(wire(vdsm(bad_task), 99))
    manager = w.manager()
    before = errors("reply")
    with caplog.at_level(logging.WARNING):
        record(manager, w, host1, host2)
    # The same cycle: the other task of host1 and host2's are recorded and end.
    assert sorted(manager.end_decided_commands()) == sorted([good, other])
    assert w.store.tasks[bad_task.task_id].state is None
    assert w.command(bad).status is CommandStatus.ACTIVE
    assert errors("reply") == before + 1
    [warning] = [r for r in caplog.records if "unreadably" in r.getMessage()]
    for word in (bad_task.task_id, vdsm(bad_task), "host1", bad, "unknown state 99"):
        assert word in warning.getMessage()
    for _ in range(LIMIT - 2):
        record(manager, w, host1, host2)
        assert manager.end_decided_commands() == []
    record(manager, w, host1, host2)  # the limit
    assert manager.end_decided_commands() == [bad]
    reason = w.command(bad).failure_reason
    assert w.command(bad).status is CommandStatus.FAILED
    assert reason == (
        f"task {bad_task.task_id} ended failure: host host1 reported task {vdsm(bad_task)} "
        f"unreadably {LIMIT} polls in a row: unknown state 99"
    )
    assert errors("reply") == before + LIMIT


def test_a_readable_status_starts_the_count_again() -> None:
    w, host1, _, (bad, *_) = two_hosts()
    [task] = w.tasks(bad)
    agent = w.agent(host1)
    manager = w.manager()
    for _ in range(3):
        for _ in range(LIMIT - 1):
            agent.statuses[vdsm(task)] = agent_client.status_of(wire(vdsm(task), 99))
            record(manager, w, host1)
        w.agent(host1).report(vdsm(task), TaskState.RUNNING)
        record(manager, w, host1)
    assert w.store.tasks[task.task_id].state is TaskState.RUNNING
    assert bad not in manager.end_decided_commands()
    assert w.command(bad).status is CommandStatus.ACTIVE


def test_a_status_without_a_task_id_keeps_the_missing_tasks_from_being_lost() -> None:
    w, host1, _, (first, second, _other) = two_hosts()
    agent = w.agent(host1)
    [lost] = w.tasks(first)
    del agent.statuses[vdsm(lost)]
    agent.statuses[""] = agent_client.status_of(wire("", pb.TASK_STATE_RUNNING))
    manager = w.manager()
    for _ in range(LIMIT - 1):
        record(manager, w, host1)
        assert w.store.tasks[lost.task_id].state is None  # not lost: it may be that status
    assert manager.end_decided_commands() == [second]
    record(manager, w, host1)
    assert manager.end_decided_commands() == [first]
    assert w.command(first).failure_reason.endswith(": a status without a task id")


def test_a_host_whose_reply_cannot_be_read_is_skipped_and_the_others_are_recorded() -> None:
    w, host1, host2, (a, b, other) = two_hosts()
    w.agent(host1).fail("all_statuses", ValueError("garbled reply"))
    poller = w.poller()
    before = errors("reply")
    try:
        result = poller.poll()
    finally:
        poller.close()
    assert set(result.statuses) == {host2.host_id} and result.unreachable == {}
    assert w.tasks(other)[0].state is TaskState.FINISHED
    assert [w.tasks(r)[0].state for r in (a, b)] == [None, None]
    stored = w.store.hosts[host1.host_id]
    assert (stored.status, stored.failed_polls) == (HostStatus.UP, 0)  # not a failed poll
    assert errors("reply") == before + 1


def test_a_peek_treats_a_reply_that_cannot_be_read_as_no_answer() -> None:
    w, host1, host2, _ = two_hosts()
    w.agent(host1).fail("all_statuses", ValueError("garbled reply"))
    poller = w.poller()
    try:
        result = poller.peek()
    finally:
        poller.close()
    assert set(result.statuses) == {host2.host_id}
    assert result.unreachable == {host1.host_id: "ValueError: garbled reply"}


def test_a_poll_that_cannot_be_recorded_at_once_is_recorded_host_by_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w, host1, host2, (poisoned, beside, other) = two_hosts()
    [bad_task] = w.tasks(poisoned)
    update_tasks = FakeRepository.update_tasks

    def refuse(repo: FakeRepository, updates: Any) -> None:
        if any(u.task_id == bad_task.task_id for u in updates):
            raise RuntimeError("value out of range")
        update_tasks(repo, updates)

    monkeypatch.setattr(FakeRepository, "update_tasks", refuse)
    manager = w.manager()
    before = errors("record")
    record(manager, w, host1, host2)
    assert w.tasks(other)[0].state is TaskState.FINISHED
    assert w.store.hosts[host2.host_id].last_seen_at is not None
    # host1's transaction failed as a whole: its tasks wait for the next poll.
    assert [w.tasks(r)[0].state for r in (poisoned, beside)] == [None, None]
    assert errors("record") == before + 2  # the whole poll, then host1 alone
    assert manager.end_decided_commands() == [other]


# -- an unreadable status is never taken for a finished task ---------------------------------


def test_an_unreadable_zombie_is_stopped_never_cleared() -> None:
    w = World(zombie_grace=0.0)
    host, sd = w.host(), w.domain()
    agent = w.agent(host)
    zombie = agent.add_task(new_id(), "CreateVolume", (sd, new_id()), TaskState.FINISHED)
    agent.statuses[zombie] = agent_client.status_of(wire(zombie, 99))
    manager = w.manager()
    result = PollResult(statuses={host.host_id: agent.all_statuses()})
    assert manager.zombies.handle(result) == 0
    assert agent.called("stop_task") == [(zombie,)]
    assert agent.cleared() == [] and agent.deleted_images == []


def test_a_task_to_compensate_reported_unreadably_is_neither_deleted_nor_forgotten() -> None:
    w, host1, _, (root, *_) = two_hosts()
    [task] = w.tasks(root)
    w.lifecycle.finish(root, Outcome(CommandStatus.FAILED, "boom"))
    agent = w.agent(host1)
    agent.statuses[vdsm(task)] = agent_client.status_of(wire(vdsm(task), 99))
    result = PollResult(statuses={host1.host_id: agent.all_statuses()})
    assert Cleaner(w.uow, w.pool, w.settings).clean_up(result, set()) == 0
    assert agent.called("stop_task") == [(vdsm(task),)]
    assert agent.deleted_images == [] and agent.cleared() == []
    assert task.task_id in w.store.tasks


# -- ending the decided commands ------------------------------------------------------------


def failing_end(monkeypatch: pytest.MonkeyPatch, root_id: str, calls: list[int]) -> None:
    """AddDisk.succeed_many raises when the commands it settles hold `root_id` (noting each
    such call in `calls`)."""
    succeed_many = AddDisk.succeed_many

    def settle(repo: Any, commands: Sequence[AddDisk]) -> None:
        if any(c.command_id == root_id for c in commands):
            calls.append(1)
            raise RuntimeError("the disk row is locked elsewhere")
        succeed_many(repo, commands)

    monkeypatch.setattr(AddDisk, "succeed_many", settle)


def test_a_command_whose_end_raises_stops_no_other_and_fails_after_backoff(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    w, host1, host2, (bad, good, other) = two_hosts()
    calls: list[int] = []
    failing_end(monkeypatch, bad, calls)
    manager = w.manager()
    record(manager, w, host1, host2)
    before = errors("end")
    with caplog.at_level(logging.WARNING):
        assert sorted(manager.end_decided_commands()) == sorted([good, other])
    assert w.command(bad).status is CommandStatus.ACTIVE
    assert errors("end") == before + 2  # the batch, then the command alone
    assert any(
        bad in r.getMessage() and "locked elsewhere" in r.getMessage() for r in caplog.records
    )
    attempts_at = [1]  # the cycles in which its end was tried
    for cycle in range(2, 40):
        tried = len(calls)
        ended = manager.end_decided_commands()
        if len(calls) > tried:
            attempts_at.append(cycle)
        if ended:
            break
    assert ended == [bad] and attempts_at == [1, 2, 4, 8, 16]  # backoff 1, 2, 4, 8 cycles
    command = w.command(bad)
    assert command.status is CommandStatus.FAILED
    assert command.failure_reason == (
        f"ending it failed {LIMIT} times: RuntimeError: the disk row is locked elsewhere"
    )
    assert w.locks(bad) == set() and all(d.name != "a" for d in w.store.disks.values())
    assert manager.end_decided_commands() == []


def test_a_command_that_cannot_even_end_failed_is_tried_again_at_the_capped_interval(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    w, host1, host2, (bad, *_) = two_hosts()
    end_command_trees = FakeRepository.end_command_trees
    broken = [True]

    def end_trees(repo: FakeRepository, root_ids: Sequence[str], *args: Any) -> int:
        if bad in root_ids and broken[0]:
            raise RuntimeError("constraint violated")
        return end_command_trees(repo, root_ids, *args)

    monkeypatch.setattr(FakeRepository, "end_command_trees", end_trees)
    manager = w.manager()
    record(manager, w, host1, host2)
    with caplog.at_level(logging.ERROR):
        for _ in range(16):
            manager.end_decided_commands()
    assert w.command(bad).status is CommandStatus.ACTIVE
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert bad in error.getMessage() and "cannot even be ended FAILED" in error.getMessage()
    broken[0] = False
    for _ in range(31):
        assert manager.end_decided_commands() == []  # waiting the capped 32 cycles
    assert manager.end_decided_commands() == [bad]
    assert w.command(bad).failure_reason == (
        f"ending it failed {LIMIT} times: RuntimeError: constraint violated"
    )


def test_a_failed_poll_cycle_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    manager = w.manager()

    def broken_cycle() -> PollResult:
        manager._stop.set()
        raise RuntimeError("database gone")

    monkeypatch.setattr(manager, "poll_once", broken_cycle)
    before = errors("cycle")
    manager._run()
    assert errors("cycle") == before + 1


class _Lifecycle:
    """finish_many recorded; a batch holding `bad` raises, as a command's end might."""

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.batches: list[list[str]] = []

    def finish_many(self, outcomes: dict[str, Outcome]) -> list[str]:
        self.batches.append(list(outcomes))
        if self.bad in outcomes:
            raise RuntimeError("the disk row is locked elsewhere")
        return list(outcomes)


def test_decided_commands_end_a_batch_per_transaction_and_a_failing_batch_alone() -> None:
    """The writer is given back between batches (SQLite's waiting submissions go in between);
    a batch that raises ends its other commands one by one, the other batches untouched."""
    roots = [f"c{i:02}" for i in range(20)]
    lifecycle = _Lifecycle(bad="c09")
    ender = CommandEnder(lifecycle, limit=LIMIT, batch=8)  # type: ignore[arg-type]
    ended = ender.end({r: Outcome(CommandStatus.SUCCEEDED) for r in roots})
    assert [len(b) for b in lifecycle.batches[:3]] == [8, 8, 4]
    assert lifecycle.batches[3:] == [[r] for r in roots[8:16]]  # the failing batch, alone
    assert sorted(ended) == sorted(r for r in roots if r != "c09")
