"""Commands: their status, the rule that decides their outcome from their tasks, and the rule
that ends them exactly once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from engine_service.domain.clock import utcnow
from service_common.vdsm_tasks import TaskResult, TaskState


class CommandStatus(StrEnum):
    """Where a command is; every status but ACTIVE is terminal."""

    ACTIVE = "ACTIVE"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self is not CommandStatus.ACTIVE


@dataclass(frozen=True)
class Outcome:
    """How a command ends, and why."""

    status: CommandStatus
    reason: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status is CommandStatus.SUCCEEDED


class TaskFacts(Protocol):
    """What the outcome rule needs to know of a task."""

    @property
    def task_id(self) -> str: ...
    @property
    def state(self) -> TaskState | None: ...
    @property
    def result(self) -> TaskResult | None: ...
    @property
    def message(self) -> str: ...
    @property
    def progress_percent(self) -> int: ...


def decide_outcome(tasks: Iterable[TaskFacts]) -> Outcome | None:
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


def mean_progress(tasks: Iterable[TaskFacts]) -> int:
    values = [t.progress_percent for t in tasks]
    return sum(values) // len(values) if values else 0


@dataclass
class CommandRecord:
    """A persisted command: a top-level one (no parent) or a child of one."""

    command_id: str
    action_type: str
    params: dict[str, Any]
    parent_id: str | None = None
    target_id: str | None = None  # the entity it creates (a disk id, a template id)
    status: CommandStatus = CommandStatus.ACTIVE
    failure_reason: str = ""
    created_at: datetime = field(default_factory=utcnow)
    ended_at: datetime | None = None

    def end(self, outcome: Outcome, now: datetime) -> bool:
        """Make it terminal with `outcome`; False if it already was. This condition is what
        makes ending happen exactly once when the poller, a cancel and a reconciliation race
        (the repository applies it in the same statement as the change)."""
        if self.status.terminal:
            return False
        self.status = outcome.status
        self.failure_reason = outcome.reason
        self.ended_at = now
        return True

    def cancellable(self) -> str | None:
        """Why it cannot be cancelled, or None if it can."""
        if self.parent_id is not None:
            return f"command {self.command_id} is a child of {self.parent_id}: cancel the parent"
        if self.status.terminal:
            return f"command {self.command_id} is already {self.status.value}"
        return None


@dataclass(frozen=True)
class CommandBatch:
    """Top-level commands named for a set-based change: by their ids, or as the ones ended
    together by one statement (same status, reason and instant); optionally of one type."""

    ids: tuple[str, ...] | None = None
    ended: Outcome | None = None
    ended_at: datetime | None = None
    action_type: str | None = None

    @classmethod
    def of(cls, command_ids: Sequence[str]) -> CommandBatch:
        return cls(ids=tuple(command_ids))

    @classmethod
    def ended_together(cls, outcome: Outcome, at: datetime) -> CommandBatch:
        return cls(ended=outcome, ended_at=at)

    def of_type(self, action_type: str) -> CommandBatch:
        return replace(self, action_type=action_type)


@dataclass(frozen=True)
class OrphanQuery:
    """Which ACTIVE commands reconciliation fails: those with a placeholder written before
    `cutoff` that this process is not submitting (and, if `only_hosts`, on one of those)."""

    cutoff: datetime
    executing: frozenset[str] = frozenset()
    only_hosts: tuple[str, ...] | None = None


@dataclass(frozen=True)
class OnHosts:
    """Which ACTIVE commands a dead or fenced host takes down: those with a task on one of
    `host_ids` whose cleanup has not begun."""

    host_ids: tuple[str, ...]


@dataclass(frozen=True)
class CreatedBefore:
    """Which ACTIVE commands the command timeout ends: those accepted before `cutoff`."""

    cutoff: datetime


# What a set-based end selects (the repository turns each into a subquery).
CommandSelection = OrphanQuery | OnHosts | CreatedBefore


@dataclass(frozen=True)
class CommandFilter:
    """Which top-level commands a listing shows: every condition given, together."""

    status: CommandStatus | None = None
    ended_after: datetime | None = None  # at or after
    ended_before: datetime | None = None  # strictly before
    failure_reason_contains: str = ""  # case-insensitive
    action_type: str = ""
    target_id: str = ""
    created_after: datetime | None = None  # at or after
    created_before: datetime | None = None  # strictly before
    host_id: str = ""  # with a task (not yet cleared) on this host

    def admits(self, command: CommandRecord) -> bool:
        """The same conditions in Python (the repository applies them in SQL), but the host's,
        which needs the command's tasks."""
        ended, created = command.ended_at, command.created_at
        return (
            (self.status is None or command.status == self.status)
            and (self.ended_after is None or (ended is not None and ended >= self.ended_after))
            and (self.ended_before is None or (ended is not None and ended < self.ended_before))
            and self.failure_reason_contains.lower() in command.failure_reason.lower()
            and self.action_type in ("", command.action_type)
            and self.target_id in ("", command.target_id)
            and (self.created_after is None or created >= self.created_after)
            and (self.created_before is None or created < self.created_before)
        )
