"""Async tasks: a placeholder written before its agent is called, then the agent's task.

A task is a placeholder exactly while `vdsm_task_id` is None. Every placeholder is made by one
factory, `AsyncTask.placeholder`, from a `TaskPlan` whose written image is derived in one place
(`written_image`). The rules of recording a poll (what changed, what the agent lost) are the
functions at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine_service.domain.clock import utcnow
from service_common.vdsm_tasks import TaskResult, TaskState


def new_id() -> str:
    return str(uuid.uuid4())


class TaskCleanup(StrEnum):
    """What is left to do with a task once its command is terminal."""

    NONE = ""  # the command is still active
    CLEAR = "clear"  # ClearTask on the agent, then forget the row
    COMPENSATE = "compensate"  # stop it, delete the image it writes, clear it, forget it


class Verb(StrEnum):
    """The agent verbs a task can run."""

    CREATE_VOLUME = "CreateVolume"
    COPY_IMAGE = "CopyImage"
    # Deletes an image, as a task (VDSM's image deletion). Its compensation finishes the
    # removal (the image is deleted unless a disk of the inventory owns it): a removal is
    # never undone, and an image nobody owns is never kept.
    REMOVE_IMAGE = "RemoveImage"


def written_image(verb: str, args: Mapping[str, Any]) -> tuple[str, str]:
    """(storage domain id, image id) of the image a task writes, or removes: what compensation
    deletes (unless a disk owns it)."""
    if verb == Verb.CREATE_VOLUME:
        return str(args["storage_domain_id"]), str(args["image_id"])
    if verb == Verb.COPY_IMAGE:
        return str(args["dst_storage_domain_id"]), str(args["dst_image_id"])
    if verb == Verb.REMOVE_IMAGE:
        return str(args["storage_domain_id"]), str(args["image_id"])
    raise ValueError(f"unknown agent verb {verb!r}")


@dataclass(frozen=True)
class TaskPlan:
    """One agent task a child command runs: the verb and its arguments (request_id aside)."""

    verb: Verb
    args: Mapping[str, Any]

    @property
    def image(self) -> tuple[str, str]:
        return written_image(self.verb, self.args)


@dataclass
class AsyncTask:
    """A command's task as the engine records it: a placeholder until the agent's id is set,
    kept until it is cleared on the agent."""

    task_id: str  # engine-generated; the agent's request id
    command_id: str  # the child command that runs it
    root_command_id: str  # its top-level command
    host_id: str
    verb: str
    args: dict[str, Any]
    storage_domain_id: str  # the image it writes (written_image)
    image_id: str
    vdsm_task_id: str | None = None
    submitted_at: datetime | None = None  # when the agent's id was stored
    state: TaskState | None = None
    result: TaskResult | None = None
    progress_percent: int = 0
    message: str = ""
    cleanup: TaskCleanup = TaskCleanup.NONE
    created_at: datetime = field(default_factory=utcnow)

    @classmethod
    def placeholder(
        cls,
        plan: TaskPlan,
        command_id: str,
        root_command_id: str,
        host_id: str,
        now: datetime,
        task_id: str | None = None,
    ) -> AsyncTask:
        """The one way a task record is made: before its agent is called, with no agent id."""
        storage_domain_id, image_id = plan.image
        return cls(
            task_id=task_id or new_id(),
            command_id=command_id,
            root_command_id=root_command_id,
            host_id=host_id,
            verb=plan.verb.value,
            args=dict(plan.args),
            storage_domain_id=storage_domain_id,
            image_id=image_id,
            created_at=now,
        )

    @property
    def is_placeholder(self) -> bool:
        return self.vdsm_task_id is None

    def accepted_after_end(self, vdsm_task_id: str, now: datetime) -> AsyncTask:
        """This task as recorded when its agent accepted it after its command had ended (its
        placeholder was gone): to be stopped, compensated and cleared like the others."""
        self.vdsm_task_id = vdsm_task_id
        self.submitted_at = now
        self.cleanup = TaskCleanup.COMPENSATE
        return self


@dataclass(frozen=True)
class TaskView:
    """A task's status columns, as a poll reads them (without its arguments)."""

    task_id: str
    root_command_id: str
    host_id: str
    vdsm_task_id: str | None
    submitted_at: datetime | None
    state: TaskState | None
    result: TaskResult | None
    progress_percent: int
    message: str
    cleanup: TaskCleanup

    @property
    def unfinished(self) -> bool:
        """Its command is active and the agent has not reported it finished."""
        return self.cleanup is TaskCleanup.NONE and self.state is not TaskState.FINISHED


@dataclass(frozen=True)
class ReportedStatus:
    """What an agent reported of one of its tasks.

    A report the engine cannot read (no task id, a state or a result it does not know) has no
    state and says why in `problem` (`unreadable`). As far as the engine knows such a task is
    neither running nor finished: it is not recorded (observe), it never counts as finished, and
    a zombie reporting it is never cleared, only stopped."""

    vdsm_task_id: str
    state: TaskState | None  # None exactly when `problem` says why the report is unreadable
    result: TaskResult
    progress_percent: int
    message: str
    problem: str = ""

    @classmethod
    def unreadable(cls, vdsm_task_id: str, problem: str) -> ReportedStatus:
        """A report the engine cannot read, and why (naming the bad value)."""
        return cls(vdsm_task_id, None, TaskResult.NONE, 0, "", problem)

    @property
    def readable(self) -> bool:
        return self.state is not None


@dataclass(frozen=True)
class TaskUpdate:
    """Columns of one task to change."""

    task_id: str
    values: Mapping[str, Any]


def observe(task: TaskView, reported: ReportedStatus) -> TaskUpdate | None:
    """The change a poll's report makes to a task; None if nothing changed. A result of NONE
    (still running) is stored as no result. An unreadable report changes nothing."""
    if reported.state is None:
        return None
    result = reported.result if reported.result is not TaskResult.NONE else None
    now_is = (reported.state, result, reported.progress_percent, reported.message)
    if now_is == (task.state, task.result, task.progress_percent, task.message):
        return None
    return TaskUpdate(
        task.task_id,
        {
            "state": reported.state,
            "result": result,
            "progress_percent": reported.progress_percent,
            "message": reported.message,
        },
    )


def absence_counts(submitted_at: datetime | None, asked_at: datetime) -> bool:
    """Whether an agent's answer without a task says the agent no longer has it: only if the
    task's agent id was stored (`submitted_at`) before the agent was asked. An answer asked
    earlier (a poll's call in flight while the agent was slow) may predate its accepting it."""
    return submitted_at is not None and submitted_at < asked_at


def lost(task: TaskView, host_name: str, asked_at: datetime) -> TaskUpdate | None:
    """A submitted task missing from its agent's answer fails its command (invariant I5), but
    only if the agent had it before the poll was asked, and the task was still unfinished."""
    if not task.unfinished or not absence_counts(task.submitted_at, asked_at):
        return None
    return _failed(
        task, f"host {host_name} no longer knows task {task.vdsm_task_id} (lost by the agent)"
    )


def _failed(task: TaskView, message: str) -> TaskUpdate:
    """The task failed on the engine's word (its agent can no longer say): its command fails."""
    return TaskUpdate(
        task.task_id,
        {"state": TaskState.FINISHED, "result": TaskResult.FAILURE, "message": message},
    )


def misreported(
    task: TaskView, host_name: str, reported: ReportedStatus, times: int
) -> TaskUpdate | None:
    """A task its agent reported unreadably `times` polls in a row (the limit) fails its
    command, as a lost one does, with a message naming the host, the task and the bad value."""
    if not task.unfinished:
        return None
    return _failed(
        task,
        f"host {host_name} reported task {task.vdsm_task_id} unreadably {times} polls in a "
        f"row: {reported.problem}",
    )


def unreachable(task: TaskView, message: str) -> TaskUpdate | None:
    """An unfinished task on a NON_RESPONSIVE host says so in its message."""
    if not task.unfinished or task.message == message:
        return None
    return TaskUpdate(task.task_id, {"message": message})
