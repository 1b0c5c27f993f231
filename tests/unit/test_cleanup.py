"""Cleaner (docs/design.md §4 step 7, §7 step 5, invariant I4): after a terminal commit, the
tasks of a failed command are stopped, their images deleted and cleared; those of a succeeded
command only cleared; debt from an unreachable host is looked up by request id."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine_service.adapters.agent_client import AgentUnavailable
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus, Outcome
from engine_service.domain.hosts import Host
from engine_service.domain.tasks import AsyncTask, TaskCleanup
from engine_service.service_layer.cleanup import Cleaner
from engine_service.service_layer.commands.add_disk import AddDisk
from engine_service.service_layer.polling import PollResult
from service_common.vdsm_tasks import TaskResult, TaskState
from tests.unit.world import World

FAILED = Outcome(CommandStatus.FAILED, "boom")


def ended_disk(
    outcome: Outcome, state: TaskState = TaskState.FINISHED
) -> tuple[World, Host, AsyncTask]:
    """An AddDisk that ended with `outcome`, its agent task in `state`."""
    w = World()
    host = w.host()
    root = w.add_disk(w.domain())
    [task] = w.tasks(root)
    result = TaskResult.SUCCESS if state is TaskState.FINISHED else TaskResult.NONE
    w.agent(host).report(str(task.vdsm_task_id), state, result)
    w.lifecycle.finish(root, outcome)
    return w, host, w.tasks(root)[0]


def clean(
    w: World, *hosts: Host, executing: set[str] | None = None, asked_at: datetime | None = None
) -> int:
    """One cleanup cycle on the agents' answers as they are now, asked at `asked_at` (now)."""
    result = PollResult(
        statuses={h.host_id: dict(w.agent(h).statuses) for h in hosts},
        asked_at={h.host_id: asked_at or utcnow() for h in hosts},
    )
    return Cleaner(w.uow, w.pool, w.settings).clean_up(result, executing or set())


def test_a_succeeded_commands_task_is_cleared_and_forgotten_without_deleting() -> None:
    w, host, task = ended_disk(Outcome(CommandStatus.SUCCEEDED))
    assert task.cleanup is TaskCleanup.CLEAR
    assert clean(w, host) == 1
    assert w.agent(host).cleared() == [task.vdsm_task_id]
    assert w.agent(host).deleted_images == [] and w.store.tasks == {}


def test_a_failed_commands_finished_task_is_compensated_then_cleared() -> None:
    w, host, task = ended_disk(FAILED)
    assert clean(w, host) == 1
    assert w.agent(host).deleted_images == [(task.storage_domain_id, task.image_id)]
    assert w.agent(host).cleared() == [task.vdsm_task_id] and w.store.tasks == {}


def test_a_failed_commands_running_task_is_stopped_first() -> None:
    w, host, task = ended_disk(FAILED, TaskState.RUNNING)
    assert clean(w, host) == 0
    assert w.agent(host).called("stop_task") == [(task.vdsm_task_id,)]
    assert w.agent(host).deleted_images == [] and list(w.store.tasks) == [task.task_id]


def test_tasks_on_a_host_that_did_not_answer_wait() -> None:
    w, host, task = ended_disk(FAILED)
    assert clean(w) == 0
    assert w.agent(host).cleared() == [] and w.agent(host).deleted_images == []
    assert list(w.store.tasks) == [task.task_id]


def test_tasks_of_a_command_still_being_submitted_wait() -> None:
    w, host, task = ended_disk(FAILED)
    assert clean(w, host, executing={task.root_command_id}) == 0
    assert w.agent(host).cleared() == [] and list(w.store.tasks) == [task.task_id]


def test_the_image_a_disk_owns_is_never_deleted() -> None:
    w, host, task = ended_disk(FAILED)
    disk = w.disk(task.storage_domain_id)
    w.store.disks[disk.disk_id].image_id = task.image_id
    assert clean(w, host) == 1
    assert w.agent(host).deleted_images == []


def test_a_task_the_agent_no_longer_has_is_compensated_and_forgotten() -> None:
    w, host, task = ended_disk(FAILED)
    w.agent(host).statuses.clear()
    assert clean(w, host) == 1
    assert w.agent(host).deleted_images == [(task.storage_domain_id, task.image_id)]
    assert w.agent(host).cleared() == [] and w.store.tasks == {}


def test_a_task_missing_from_an_answer_asked_before_it_was_accepted_is_kept() -> None:
    """A late accept: the agent took the task after the poll's call was sent (it was paused,
    the call in flight), and its id was stored since. The answer cannot say the agent no
    longer has it: nothing is deleted or forgotten until an answer asked later."""
    w, host, task = ended_disk(FAILED, TaskState.RUNNING)
    assert task.submitted_at is not None
    in_flight = dict(w.agent(host).statuses)
    w.agent(host).statuses.clear()  # the answer, asked before the accept, does not hold it
    assert clean(w, host, asked_at=task.submitted_at - timedelta(milliseconds=1)) == 0
    assert list(w.store.tasks) == [task.task_id] and w.agent(host).deleted_images == []
    w.agent(host).statuses.update(in_flight)  # the next poll's answer holds it
    assert clean(w, host) == 0
    assert w.agent(host).called("stop_task") == [(task.vdsm_task_id,)]


def debt(w: World, accepted: bool) -> tuple[Host, AsyncTask, str | None]:
    """A failed AddDisk whose start went unanswered (cleanup debt, no agent id); `accepted`:
    its agent took it all the same (its agent task id is returned)."""
    host = w.host()
    root = w.commit_only(AddDisk.create("d", w.domain(), 1), host)
    [task] = w.tasks(root)
    w.lifecycle.finish(root, FAILED, unresolved=[task.task_id])
    where = (task.storage_domain_id, task.image_id)
    vdsm_id = w.agent(host).add_task(task.task_id, task.verb, where) if accepted else None
    return host, task, vdsm_id


def test_debt_found_by_request_id_but_missing_from_the_answer_is_kept() -> None:
    """The agent lists the request (all_info, asked now) but the poll's answer, asked before,
    did not hold its task: the task is adopted and looked at again next cycle, not forgotten."""
    w = World()
    host, debt_task, vdsm_id = debt(w, accepted=True)
    earlier = PollResult(statuses={host.host_id: {}}, asked_at={host.host_id: utcnow()})
    assert Cleaner(w.uow, w.pool, w.settings).clean_up(earlier, set()) == 0
    assert w.store.tasks[debt_task.task_id].vdsm_task_id == vdsm_id
    assert w.agent(host).deleted_images == [] and w.agent(host).cleared() == []


def test_debt_the_agent_accepted_is_adopted_by_request_id_and_stopped() -> None:
    w = World()
    host, debt_task, vdsm_id = debt(w, accepted=True)
    assert clean(w, host) == 0
    assert w.store.tasks[debt_task.task_id].vdsm_task_id == vdsm_id
    assert w.agent(host).called("stop_task") == [(vdsm_id,)]


def test_debt_the_agent_never_had_is_forgotten() -> None:
    w = World()
    host, _, _ = debt(w, accepted=False)
    assert clean(w, host) == 1
    assert w.store.tasks == {} and w.agent(host).called("all_info") == [()]


def test_an_agent_that_stops_answering_mid_cleanup_is_tried_again_next_cycle() -> None:
    w, host, task = ended_disk(FAILED)
    w.agent(host).fail("delete_image", AgentUnavailable("gone"), times=1)
    assert clean(w, host) == 0 and list(w.store.tasks) == [task.task_id]
    assert clean(w, host) == 1 and w.store.tasks == {}


def two_ended_disks(w: World, host: Host) -> list[AsyncTask]:
    tasks = []
    for _ in range(2):
        root = w.add_disk(w.domain())
        [task] = w.tasks(root)
        w.agent(host).report(str(task.vdsm_task_id), TaskState.FINISHED, TaskResult.SUCCESS)
        w.lifecycle.finish(root, Outcome(CommandStatus.SUCCEEDED))
        tasks.append(w.tasks(root)[0])
    return tasks


def test_the_finished_tasks_of_one_host_are_cleared_in_one_call() -> None:
    w = World()
    host = w.host()
    tasks = two_ended_disks(w, host)
    assert clean(w, host) == 2
    assert w.agent(host).called("clear_tasks") == [tuple(t.vdsm_task_id for t in tasks)]
    assert w.agent(host).called("clear_task") == [] and w.store.tasks == {}


def test_a_task_the_agent_says_is_not_finished_is_kept_and_the_others_forgotten() -> None:
    w = World()
    host = w.host()
    kept, cleared = two_ended_disks(w, host)
    clean_result = PollResult(
        statuses={host.host_id: dict(w.agent(host).statuses)}, asked_at={host.host_id: utcnow()}
    )
    # Between the poll and the clear, the agent reports the first as running again (a report
    # the cleaner did not see): it refuses to clear it.
    w.agent(host).report(str(kept.vdsm_task_id), TaskState.RUNNING, TaskResult.NONE)
    assert Cleaner(w.uow, w.pool, w.settings).clean_up(clean_result, set()) == 1
    assert list(w.store.tasks) == [kept.task_id]
    assert cleared.task_id not in w.store.tasks


def test_an_agent_gone_at_the_clear_keeps_every_task_for_the_next_cycle() -> None:
    w = World()
    host = w.host()
    tasks = two_ended_disks(w, host)
    w.agent(host).fail("clear_tasks", AgentUnavailable("gone"), times=1)
    assert clean(w, host) == 0 and sorted(w.store.tasks) == sorted(t.task_id for t in tasks)
    assert clean(w, host) == 2 and w.store.tasks == {}
