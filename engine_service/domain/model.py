"""Statuses and the rules that decide a command's outcome from its tasks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

# The agent's task states and results are VDSM's words, shared by both services.
from vdsm_agent.domain.tasks import TaskResult, TaskState

__all__ = [
    "CommandStatus",
    "DiskStatus",
    "HostStatus",
    "Outcome",
    "TaskCleanup",
    "TaskResult",
    "TaskState",
    "TaskView",
    "TemplateStatus",
    "decide_outcome",
    "mean_progress",
]


class HostStatus(StrEnum):
    UP = "UP"
    NON_RESPONSIVE = "NON_RESPONSIVE"
    MAINTENANCE = "MAINTENANCE"


class DiskStatus(StrEnum):
    OK = "OK"
    LOCKED = "LOCKED"
    ILLEGAL = "ILLEGAL"


class TemplateStatus(StrEnum):
    OK = "OK"
    LOCKED = "LOCKED"
    ILLEGAL = "ILLEGAL"


class CommandStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self is not CommandStatus.ACTIVE


class TaskCleanup(StrEnum):
    """What is left to do with a task once its command is terminal."""

    NONE = ""  # the command is still active
    CLEAR = "clear"  # ClearTask on the agent, then forget the row
    COMPENSATE = "compensate"  # stop it, delete the image it writes, clear it, forget it


@dataclass(frozen=True)
class TaskView:
    """What the outcome rules need to know of a task."""

    task_id: str
    vdsm_task_id: str | None
    state: TaskState | None
    result: TaskResult | None
    message: str
    progress_percent: int


@dataclass(frozen=True)
class Outcome:
    status: CommandStatus
    reason: str = ""


def decide_outcome(tasks: Iterable[TaskView]) -> Outcome | None:
    """SUCCEEDED when every task finished with success; FAILED as soon as one finished any other
    way (the others are stopped then); None while the outcome is open."""
    tasks = list(tasks)
    for task in tasks:
        if task.state is TaskState.FINISHED and task.result is not TaskResult.SUCCESS:
            result = task.result.value if task.result else "no result"
            detail = f": {task.message}" if task.message else ""
            return Outcome(CommandStatus.FAILED, f"task {task.task_id} ended {result}{detail}")
    if tasks and all(t.state is TaskState.FINISHED for t in tasks):
        return Outcome(CommandStatus.SUCCEEDED)
    return None


def mean_progress(tasks: Iterable[TaskView]) -> int:
    values = [t.progress_percent for t in tasks]
    return sum(values) // len(values) if values else 0
