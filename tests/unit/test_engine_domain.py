"""The engine's domain rules, in plain Python: hosts, placeholders, polls, outcomes, ending."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from engine_service.domain.commands import (
    CommandBatch,
    CommandRecord,
    CommandStatus,
    Outcome,
    decide_outcome,
    mean_progress,
)
from engine_service.domain.hosts import Host, HostAnswering, HostChange, HostStatus, least_busy
from engine_service.domain.inventory import Disk, DiskStatus
from engine_service.domain.requests import ClientRequest
from engine_service.domain.tasks import (
    AsyncTask,
    ReportedStatus,
    TaskCleanup,
    TaskPlan,
    TaskView,
    Verb,
    absence_counts,
    lost,
    observe,
    unreachable,
    written_image,
)
from service_common.errors import AlreadyExists
from service_common.vdsm_tasks import TaskResult, TaskState

T0 = datetime(2026, 11, 30, 12, 0, 0)
COPY = {
    "src_storage_domain_id": "sd-src",
    "src_image_id": "img-src",
    "dst_storage_domain_id": "sd-dst",
    "dst_image_id": "img-dst",
}
VOLUME = {"storage_domain_id": "sd-1", "image_id": "img-1", "size_bytes": 10}


def host(status: HostStatus = HostStatus.UP, name: str = "h1", **kw: object) -> Host:
    return Host(f"id-{name}", name, f"{name}:1", status, **kw)  # type: ignore[arg-type]


def view(
    state: TaskState | None = TaskState.RUNNING,
    result: TaskResult | None = None,
    progress: int = 0,
    message: str = "",
    submitted_at: datetime | None = T0,
    cleanup: TaskCleanup = TaskCleanup.NONE,
    task_id: str = "t1",
) -> TaskView:
    return TaskView(
        task_id, "root", "h", "v1", submitted_at, state, result, progress, message, cleanup
    )


def reported(
    state: TaskState, result: TaskResult = TaskResult.NONE, progress: int = 0
) -> ReportedStatus:
    return ReportedStatus("v1", state, result, progress, "")


# -- hosts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [1, 3, 5])
def test_an_up_host_is_non_responsive_at_exactly_the_threshold(threshold: int) -> None:
    h = host()
    changes = [h.record_failed_poll(T0, threshold) for _ in range(threshold)]
    assert changes[:-1] == [None] * (threshold - 1)
    assert changes[-1] is HostChange.WENT_NON_RESPONSIVE
    assert (h.status, h.unreachable_since, h.failed_polls) == (
        HostStatus.NON_RESPONSIVE,
        T0,
        threshold,
    )


def test_more_failed_polls_keep_the_moment_it_became_unreachable() -> None:
    h = host()
    h.record_failed_poll(T0, 1)
    assert h.record_failed_poll(T0 + timedelta(seconds=5), 1) is None
    assert h.unreachable_since == T0 and h.failed_polls == 2


def test_an_answer_resets_the_count_and_brings_a_non_responsive_host_back() -> None:
    h = host(HostStatus.NON_RESPONSIVE, failed_polls=7, unreachable_since=T0)
    assert h.record_answer(T0 + timedelta(seconds=1)) is HostChange.CAME_BACK
    assert (h.status, h.failed_polls, h.unreachable_since) == (HostStatus.UP, 0, None)
    assert h.last_seen_at == T0 + timedelta(seconds=1)


def test_an_answer_from_an_up_host_changes_no_status() -> None:
    h = host(failed_polls=2)
    assert h.record_answer(T0) is None
    assert (h.status, h.failed_polls, h.last_seen_at) == (HostStatus.UP, 0, T0)


def test_a_host_in_maintenance_that_stops_answering_is_shown_as_such_and_times_out() -> None:
    """Issue 14, item 1: liveness is counted in every status."""
    h = host(HostStatus.MAINTENANCE)
    assert h.record_failed_poll(T0, 2) is None
    assert h.record_failed_poll(T0, 2) is HostChange.STOPPED_ANSWERING
    assert (h.status, h.unreachable_since, h.is_answering) == (HostStatus.MAINTENANCE, T0, False)
    assert h.unreachable_message() == (
        "host h1 (in maintenance) has not answered since 2026-11-30 12:00:00 UTC"
    )
    assert h.tasks_timed_out(T0 + timedelta(seconds=300), 300)


def test_maintenance_does_not_stop_the_clock_of_a_non_responsive_host() -> None:
    """Issue 14, item 1: into maintenance and out again, the instant it stopped answering stays."""
    h = host(HostStatus.NON_RESPONSIVE, failed_polls=4, unreachable_since=T0)
    h.set_maintenance(True)
    assert h.tasks_timed_out(T0 + timedelta(seconds=300), 300)
    h.set_maintenance(False)
    assert (h.status, h.unreachable_since) == (HostStatus.NON_RESPONSIVE, T0)
    assert h.tasks_timed_out(T0 + timedelta(seconds=300), 300)


def test_a_host_in_maintenance_that_answers_again_stays_in_maintenance() -> None:
    h = host(HostStatus.MAINTENANCE, failed_polls=4, unreachable_since=T0)
    assert h.record_answer(T0) is HostChange.CAME_BACK
    assert (h.status, h.unreachable_since, h.failed_polls) == (HostStatus.MAINTENANCE, None, 0)


def test_an_answer_does_not_take_a_host_out_of_maintenance() -> None:
    h = host(HostStatus.MAINTENANCE)
    assert h.record_answer(T0) is None
    assert h.status is HostStatus.MAINTENANCE


def test_maintenance_on_and_off_for_a_host_that_answers() -> None:
    h = host(failed_polls=1)
    h.set_maintenance(True)
    assert h.status is HostStatus.MAINTENANCE
    h.set_maintenance(False)
    assert (h.status, h.failed_polls) == (HostStatus.UP, 1)


def test_leaving_maintenance_that_was_never_entered_changes_nothing() -> None:
    h = host(HostStatus.NON_RESPONSIVE, failed_polls=4)
    h.set_maintenance(False)
    assert (h.status, h.failed_polls) == (HostStatus.NON_RESPONSIVE, 4)


def test_tasks_time_out_task_timeout_after_the_host_became_unreachable() -> None:
    h = host(HostStatus.NON_RESPONSIVE, unreachable_since=T0)
    assert not h.tasks_timed_out(T0 + timedelta(seconds=299), 300)
    assert h.tasks_timed_out(T0 + timedelta(seconds=300), 300)


def test_a_host_that_answers_never_times_out() -> None:
    for status in HostStatus:
        assert not host(status).tasks_timed_out(T0 + timedelta(days=9), 300)


def test_only_a_host_that_does_not_answer_can_be_confirmed_rebooted() -> None:
    answering = host(HostStatus.MAINTENANCE, last_seen_at=T0)
    with pytest.raises(HostAnswering, match="answers its polls"):
        answering.confirm_rebooted(T0, "ops", "power cycled")
    assert answering.confirmed_rebooted_at is None
    down = host(HostStatus.NON_RESPONSIVE, unreachable_since=T0)
    down.confirm_rebooted(T0 + timedelta(hours=1), "ops", "power cycled")
    assert (down.confirmed_rebooted_at, down.confirmed_rebooted_by) == (
        T0 + timedelta(hours=1),
        "ops",
    )
    assert down.fencing_reason() == "host h1 was confirmed rebooted by ops: power cycled"


def test_the_timeout_reason_names_the_host_the_instant_and_the_timeout() -> None:
    reason = host(HostStatus.NON_RESPONSIVE, unreachable_since=T0).timeout_reason(300)
    assert (
        reason == "host h1 (h1:1) has not answered since 2026-11-30 12:00:00 UTC; task timeout 300s"
    )


def test_least_busy_picks_the_up_host_with_fewest_tasks_then_by_name() -> None:
    a, b, c = host(name="a"), host(name="b"), host(HostStatus.MAINTENANCE, name="c")
    assert least_busy([b, a, c], {}) is a
    assert least_busy([a, b, c], {a.host_id: 2, b.host_id: 1, c.host_id: 0}) is b
    assert least_busy([c], {}) is None


# -- placeholders --------------------------------------------------------------------------


def test_a_placeholder_has_no_agent_id_and_the_image_its_verb_writes() -> None:
    task = AsyncTask.placeholder(TaskPlan(Verb.COPY_IMAGE, COPY), "child", "root", "h", T0)
    assert task.is_placeholder and task.vdsm_task_id is None and task.submitted_at is None
    assert (task.storage_domain_id, task.image_id) == ("sd-dst", "img-dst")
    assert (task.command_id, task.root_command_id, task.host_id) == ("child", "root", "h")
    assert (task.verb, task.args, task.created_at) == ("CopyImage", COPY, T0)
    assert (task.state, task.result, task.cleanup) == (None, None, TaskCleanup.NONE)


def test_placeholders_get_fresh_engine_ids_unless_given_one() -> None:
    plan = TaskPlan(Verb.CREATE_VOLUME, VOLUME)
    first = AsyncTask.placeholder(plan, "c", "r", "h", T0)
    second = AsyncTask.placeholder(plan, "c", "r", "h", T0)
    assert first.task_id != second.task_id
    assert AsyncTask.placeholder(plan, "c", "r", "h", T0, task_id="mine").task_id == "mine"


def test_a_placeholder_does_not_share_its_plans_arguments() -> None:
    args = dict(VOLUME)
    task = AsyncTask.placeholder(TaskPlan(Verb.CREATE_VOLUME, args), "c", "r", "h", T0)
    args["image_id"] = "changed"
    assert task.args["image_id"] == "img-1"


@pytest.mark.parametrize(
    ("verb", "args", "image"),
    [
        (Verb.CREATE_VOLUME, VOLUME, ("sd-1", "img-1")),
        (Verb.COPY_IMAGE, COPY, ("sd-dst", "img-dst")),
    ],
)
def test_the_written_image_is_derived_from_the_verb(verb: Verb, args: dict, image: tuple) -> None:
    assert written_image(verb, args) == image == TaskPlan(verb, args).image


def test_an_unknown_verb_has_no_written_image() -> None:
    with pytest.raises(ValueError, match="DeleteImage"):
        written_image("DeleteImage", {})


def test_a_task_accepted_after_its_command_ended_is_kept_to_be_compensated() -> None:
    task = AsyncTask.placeholder(TaskPlan(Verb.CREATE_VOLUME, VOLUME), "c", "r", "h", T0)
    task.accepted_after_end("agent-1", T0)
    assert (task.vdsm_task_id, task.submitted_at, task.cleanup) == (
        "agent-1",
        T0,
        TaskCleanup.COMPENSATE,
    )


# -- recording a poll ----------------------------------------------------------------------


def test_a_report_that_changes_nothing_writes_nothing() -> None:
    assert observe(view(progress=40), reported(TaskState.RUNNING, progress=40)) is None


def test_a_report_of_progress_is_an_update() -> None:
    update = observe(view(progress=40), reported(TaskState.RUNNING, progress=55))
    assert update is not None and update.task_id == "t1"
    assert update.values == {
        "state": TaskState.RUNNING,
        "result": None,
        "progress_percent": 55,
        "message": "",
    }


def test_a_finished_report_stores_its_result() -> None:
    update = observe(view(), reported(TaskState.FINISHED, TaskResult.SUCCESS, 100))
    assert update is not None
    assert (update.values["state"], update.values["result"]) == (
        TaskState.FINISHED,
        TaskResult.SUCCESS,
    )


def test_a_task_missing_from_the_answer_is_lost_if_submitted_before_the_poll() -> None:
    update = lost(view(submitted_at=T0), "h1", asked_at=T0 + timedelta(seconds=1))
    assert update is not None
    assert update.values["state"] is TaskState.FINISHED
    assert update.values["result"] is TaskResult.FAILURE
    assert "host h1 no longer knows task v1" in update.values["message"]


def test_a_task_submitted_after_the_poll_was_asked_is_not_lost() -> None:
    assert lost(view(submitted_at=T0 + timedelta(seconds=1)), "h1", asked_at=T0) is None
    assert lost(view(submitted_at=T0), "h1", asked_at=T0) is None


def test_an_answer_without_a_task_counts_only_if_asked_after_its_agent_id_was_stored() -> None:
    later = T0 + timedelta(seconds=1)
    assert absence_counts(T0, asked_at=later)
    assert not absence_counts(later, asked_at=T0)
    assert not absence_counts(T0, asked_at=T0)
    assert not absence_counts(None, asked_at=later)  # a placeholder: no agent id yet


def test_a_finished_or_terminal_commands_task_is_never_lost() -> None:
    later = T0 + timedelta(seconds=1)
    assert lost(view(state=TaskState.FINISHED), "h1", later) is None
    assert lost(view(cleanup=TaskCleanup.CLEAR), "h1", later) is None


def test_an_unfinished_task_on_an_unreachable_host_says_so_once() -> None:
    update = unreachable(view(), "host h1 is NON_RESPONSIVE")
    assert update is not None and update.values == {"message": "host h1 is NON_RESPONSIVE"}
    assert (
        unreachable(view(message="host h1 is NON_RESPONSIVE"), "host h1 is NON_RESPONSIVE") is None
    )
    assert unreachable(view(state=TaskState.FINISHED), "host h1 is NON_RESPONSIVE") is None


# -- outcomes and ending -------------------------------------------------------------------


def test_no_outcome_while_a_task_runs_or_without_tasks() -> None:
    done = view(TaskState.FINISHED, TaskResult.SUCCESS, task_id="a")
    assert decide_outcome([done, view(task_id="b")]) is None
    assert decide_outcome([]) is None


def test_succeeded_when_every_task_succeeded() -> None:
    tasks = [view(TaskState.FINISHED, TaskResult.SUCCESS, task_id=i) for i in "ab"]
    assert decide_outcome(tasks) == Outcome(CommandStatus.SUCCEEDED)


@pytest.mark.parametrize(
    "result", [TaskResult.FAILURE, TaskResult.CLEAN_SUCCESS, TaskResult.CLEAN_FAILURE, None]
)
def test_failed_as_soon_as_one_task_finished_without_success(result: TaskResult | None) -> None:
    tasks = [view(TaskState.FINISHED, result, message="disk full", task_id="a"), view(task_id="b")]
    outcome = decide_outcome(tasks)
    shown = result.value if result else "no result"
    assert outcome == Outcome(CommandStatus.FAILED, f"task a ended {shown}: disk full")


def test_mean_progress_of_the_tasks() -> None:
    assert mean_progress([view(progress=10), view(progress=41)]) == 25
    assert mean_progress([]) == 0


def test_a_command_ends_exactly_once() -> None:
    record = CommandRecord("c", "AddDisk", {})
    assert record.end(Outcome(CommandStatus.CANCELLED, "by a client"), T0)
    assert not record.end(Outcome(CommandStatus.SUCCEEDED), T0 + timedelta(seconds=1))
    assert (record.status, record.failure_reason, record.ended_at) == (
        CommandStatus.CANCELLED,
        "by a client",
        T0,
    )


@pytest.mark.parametrize("status", [s for s in CommandStatus if s.terminal])
def test_only_active_top_level_commands_can_be_cancelled(status: CommandStatus) -> None:
    assert CommandRecord("c", "AddDisk", {}).cancellable() is None
    assert "already" in str(CommandRecord("c", "AddDisk", {}, status=status).cancellable())
    child = CommandRecord("k", "CreateVolume", {}, parent_id="c")
    assert "cancel the parent" in str(child.cancellable())


def test_a_batch_narrowed_to_one_type_keeps_what_named_it() -> None:
    batch = CommandBatch.ended_together(Outcome(CommandStatus.FAILED, "why"), T0).of_type("AddDisk")
    assert (batch.ended, batch.ended_at, batch.action_type, batch.ids) == (
        Outcome(CommandStatus.FAILED, "why"),
        T0,
        "AddDisk",
        None,
    )
    assert CommandBatch.of(["a", "b"]).ids == ("a", "b")


# -- requests and entities -----------------------------------------------------------------


def test_the_same_request_is_answered_by_the_first_result() -> None:
    request = ClientRequest("AddDisk", "r1", {"name": "d", "size": 1})
    assert request.answered_by(None) is None
    assert request.answered_by(request.stored("disk-1")) == "disk-1"
    reordered = ClientRequest("AddDisk", "r1", {"size": 1, "name": "d"})
    assert reordered.answered_by(request.stored("disk-1")) == "disk-1"


def test_the_same_request_id_with_other_arguments_is_refused() -> None:
    first = ClientRequest("AddDisk", "r1", {"name": "d"}).stored("disk-1")
    with pytest.raises(AlreadyExists, match="request_id: r1 was already used"):
        ClientRequest("AddDisk", "r1", {"name": "other"}).answered_by(first)


def test_only_an_ok_disk_can_be_used() -> None:
    disk = Disk("d1", "boot", "sd", "img", 1, DiskStatus.OK)
    assert disk.unusable_because() is None
    for status in (DiskStatus.LOCKED, DiskStatus.ILLEGAL):
        locked = Disk("d1", "boot", "sd", "img", 1, status)
        assert locked.unusable_because() == f"disk d1 is {status.value}, not OK"
