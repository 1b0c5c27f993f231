"""Poller.record (docs/design.md §3 and §4 step 5, invariant I5): a hand-made PollResult is
recorded in one transaction: each host's transition and each task's new status, lost task or
unreachable host. No thread is started."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine_service.domain.clock import utcnow
from engine_service.domain.hosts import Host, HostStatus
from engine_service.domain.tasks import AsyncTask, ReportedStatus, TaskView
from engine_service.service_layer.polling import Poller, PollResult, PollSettings, task_updates
from service_common.vdsm_tasks import TaskResult, TaskState
from tests.unit.fake_repository import view
from tests.unit.world import World, status


def setup(threshold: int = 3) -> tuple[World, Host, AsyncTask, Poller]:
    """One UP host running one submitted AddDisk task."""
    w = World(host_failure_polls=threshold)
    host = w.host()
    root = w.add_disk(w.domain())
    [task] = w.tasks(root)
    return w, host, task, w.poller()


def answer(host: Host, *statuses: ReportedStatus, asked_at: datetime | None = None) -> PollResult:
    return PollResult(
        statuses={host.host_id: {s.vdsm_task_id: s for s in statuses}},
        asked_at={host.host_id: asked_at or utcnow()},
    )


def silence(host: Host) -> PollResult:
    return PollResult(asked_at={host.host_id: utcnow()}, unreachable={host.host_id: "timeout"})


def vdsm(task: AsyncTask) -> str:
    assert task.vdsm_task_id is not None
    return task.vdsm_task_id


def test_failed_polls_are_counted_and_the_host_stays_up_below_the_threshold() -> None:
    w, host, _, poller = setup(threshold=3)
    for _ in range(2):
        poller.record([host.host_id], silence(host))
    stored = w.store.hosts[host.host_id]
    assert (stored.status, stored.failed_polls, stored.unreachable_since) == (
        HostStatus.UP,
        2,
        None,
    )


def test_the_host_goes_non_responsive_at_the_threshold() -> None:
    w, host, _, poller = setup(threshold=3)
    before = utcnow()
    for _ in range(3):
        poller.record([host.host_id], silence(host))
    stored = w.store.hosts[host.host_id]
    assert stored.status is HostStatus.NON_RESPONSIVE and stored.failed_polls == 3
    assert stored.unreachable_since is not None and before <= stored.unreachable_since <= utcnow()


def test_an_answer_resets_the_count_and_brings_the_host_back_up() -> None:
    w, host, task, poller = setup(threshold=1)
    poller.record([host.host_id], silence(host))
    assert w.store.hosts[host.host_id].status is HostStatus.NON_RESPONSIVE
    poller.record([host.host_id], answer(host, status(vdsm(task))))
    stored = w.store.hosts[host.host_id]
    assert (stored.status, stored.failed_polls, stored.unreachable_since) == (
        HostStatus.UP,
        0,
        None,
    )
    assert stored.last_seen_at is not None


def test_an_answer_before_the_threshold_resets_the_count() -> None:
    w, host, task, poller = setup(threshold=3)
    poller.record([host.host_id], silence(host))
    poller.record([host.host_id], answer(host, status(vdsm(task))))
    poller.record([host.host_id], silence(host))
    assert w.store.hosts[host.host_id].failed_polls == 1


def test_a_host_in_maintenance_that_stops_answering_stays_in_maintenance_and_says_so() -> None:
    """Issue 14, item 1: its failed polls count; its tasks say it is not answering."""
    w, host, task, poller = setup(threshold=1)
    w.store.hosts[host.host_id].status = HostStatus.MAINTENANCE
    poller.record([host.host_id], silence(host))
    stored = w.store.hosts[host.host_id]
    assert stored.status is HostStatus.MAINTENANCE and stored.unreachable_since is not None
    assert "(in maintenance) has not answered since" in w.store.tasks[task.task_id].message


def test_reported_statuses_are_stored_on_the_tasks() -> None:
    w, host, task, poller = setup()
    poller.record([host.host_id], answer(host, status(vdsm(task), progress=40, message="copying")))
    stored = w.store.tasks[task.task_id]
    assert (stored.state, stored.result, stored.progress_percent, stored.message) == (
        TaskState.RUNNING,
        None,
        40,
        "copying",
    )


def test_a_finished_result_is_stored() -> None:
    w, host, task, poller = setup()
    done = status(vdsm(task), TaskState.FINISHED, TaskResult.SUCCESS, 100)
    poller.record([host.host_id], answer(host, done))
    stored = w.store.tasks[task.task_id]
    assert (stored.state, stored.result) == (TaskState.FINISHED, TaskResult.SUCCESS)


def test_a_task_missing_from_the_answer_is_lost_if_submitted_before_the_poll_was_asked() -> None:
    w, host, task, poller = setup()
    poller.record([host.host_id], answer(host, asked_at=utcnow() + timedelta(seconds=1)))
    stored = w.store.tasks[task.task_id]
    assert (stored.state, stored.result) == (TaskState.FINISHED, TaskResult.FAILURE)
    assert (
        stored.message == f"host host1 no longer knows task {task.vdsm_task_id} (lost by the agent)"
    )


def test_a_task_submitted_after_the_poll_was_asked_is_not_lost() -> None:
    w, host, task, poller = setup()
    assert task.submitted_at is not None
    poller.record([host.host_id], answer(host, asked_at=task.submitted_at))
    stored = w.store.tasks[task.task_id]
    assert (stored.state, stored.result, stored.message) == (None, None, "")


def test_a_finished_task_missing_from_the_answer_is_not_lost_again() -> None:
    w, host, task, poller = setup()
    w.store.tasks[task.task_id].state = TaskState.FINISHED
    w.store.tasks[task.task_id].result = TaskResult.SUCCESS
    poller.record([host.host_id], answer(host, asked_at=utcnow() + timedelta(seconds=1)))
    assert w.store.tasks[task.task_id].result is TaskResult.SUCCESS


def test_unfinished_tasks_on_a_non_responsive_host_say_so() -> None:
    w, host, task, poller = setup(threshold=1)
    poller.record([host.host_id], silence(host))
    since = w.store.hosts[host.host_id].unreachable_since
    expected = f"host host1 is NON_RESPONSIVE since {since:%Y-%m-%d %H:%M:%S} UTC"
    assert w.store.tasks[task.task_id].message == expected


def test_a_silent_host_below_the_threshold_leaves_its_tasks_alone() -> None:
    w, host, task, poller = setup(threshold=2)
    poller.record([host.host_id], silence(host))
    assert w.store.tasks[task.task_id].message == ""


def test_a_finished_task_on_a_non_responsive_host_keeps_its_message() -> None:
    w, host, task, poller = setup(threshold=1)
    w.store.tasks[task.task_id].state = TaskState.FINISHED
    w.store.tasks[task.task_id].message = "done"
    poller.record([host.host_id], silence(host))
    assert w.store.tasks[task.task_id].message == "done"


def test_one_poll_is_one_commit_and_notes_the_tasks_it_knows() -> None:
    w, host, task, poller = setup()
    other = w.host("host2")
    commits = w.uow.commits
    result = answer(host, status(vdsm(task)))
    result.asked_at[other.host_id] = utcnow()
    result.unreachable[other.host_id] = "refused"
    poller.record([host.host_id, other.host_id], result)
    assert w.uow.commits == commits + 1 and result.known == {task.vdsm_task_id}
    assert w.store.hosts[other.host_id].failed_polls == 1


def test_task_updates_report_only_what_changed() -> None:
    w, host, task, _ = setup()
    seen = {vdsm(task): status(vdsm(task))}
    views: list[TaskView] = [view(w.store.tasks[task.task_id])]
    [update] = task_updates(host, views, seen, utcnow(), set())
    assert update.values["state"] is TaskState.RUNNING
    w.store.tasks[task.task_id].state = TaskState.RUNNING
    assert task_updates(host, [view(w.store.tasks[task.task_id])], seen, utcnow(), set()) == []


def test_poll_settings_defaults_follow_the_design() -> None:
    settings = PollSettings()
    assert (settings.host_failure_polls, settings.task_timeout, settings.zombie_grace) == (
        3,
        300.0,
        60.0,
    )
