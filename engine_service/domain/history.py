"""A command's history: what happened to it, as events written in the same transaction as the
change each records, so a history never says what did not commit nor misses what did.

Events are recorded against the top-level command. They outlive the command's task rows and go
with the command when retention removes it. The event kinds are a published vocabulary
(`ListCommandEvents`, `enginectl command history`): add kinds, never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from engine_service.domain.commands import Outcome
from engine_service.domain.tasks import AsyncTask, TaskCleanup, TaskUpdate, TaskView
from service_common.vdsm_tasks import TaskResult, TaskState

# Progress is recorded when a task first reaches each of these percentages.
MILESTONES = (50,)


class EventKind(StrEnum):
    """What an event records."""

    ACCEPTED = "accepted"  # the command and its placeholders committed
    PLACEHOLDER = "placeholder"  # one placeholder, on its host
    TASK_MOVED = "task_moved"  # a placeholder moved to another host before it was sent
    TASK_ACCEPTED = "task_accepted"  # its host accepted the task: the agent's task id
    TASK_ACCEPTED_LATE = "task_accepted_late"  # accepted after the command ended
    PROGRESS = "progress"  # a task reached a milestone
    TASK_FINISHED = "task_finished"  # the agent (or the engine, for a lost task) finished it
    ENDED = "ended"  # the command became terminal: status and reason
    # A command in phases: one phase's tasks all succeeded, the next phase's placeholders
    # committed in the same transaction.
    PHASE_ENDED = "phase_ended"
    CANCEL_REQUESTED = "cancel_requested"  # an operator asked for it
    TASK_ADOPTED = "task_adopted"  # reconciliation found the placeholder's task on its host
    DEBT_FOUND = "debt_found"  # cleanup found the task of a placeholder kept as debt
    TASK_CLEARED = "task_cleared"  # stopped if needed, compensated if failed, cleared, forgotten
    TASK_WRITTEN_OFF = "task_written_off"  # its host was confirmed rebooted
    RETRIED_AS = "retried_as"  # a retry made a new command (its id in the message)
    RETRY_OF = "retry_of"  # this command retries another


@dataclass(frozen=True)
class CommandEvent:
    """One thing that happened to a top-level command. `event_id` is given by the database."""

    command_id: str
    time: datetime
    kind: EventKind
    message: str = ""
    task_id: str | None = None
    host_id: str | None = None
    event_id: int = 0


def accepted(
    root_id: str, action_type: str, placeholders: list[AsyncTask], now: datetime, by: str = ""
) -> list[CommandEvent]:
    """The command committed with its placeholders, each on its host; `by` is who asked."""
    asked = f", asked by {by}" if by else ""
    events = [
        CommandEvent(
            root_id,
            now,
            EventKind.ACCEPTED,
            f"{action_type} accepted with {len(placeholders)} task placeholder(s){asked}",
        )
    ]
    events += [
        CommandEvent(root_id, now, EventKind.PLACEHOLDER, t.verb, t.task_id, t.host_id)
        for t in placeholders
    ]
    return events


def next_phase(
    root_id: str, phase: int, placeholders: list[AsyncTask], now: datetime, what: str
) -> list[CommandEvent]:
    """Phase `phase - 1` done; phase `phase` committed with its placeholders, each on its host."""
    events = [
        CommandEvent(
            root_id,
            now,
            EventKind.PHASE_ENDED,
            f"phase {phase - 1} done; phase {phase} ({what}) with "
            f"{len(placeholders)} task placeholder(s)",
        )
    ]
    events += [
        CommandEvent(root_id, now, EventKind.PLACEHOLDER, t.verb, t.task_id, t.host_id)
        for t in placeholders
    ]
    return events


def ended(root_id: str, outcome: Outcome, now: datetime) -> CommandEvent:
    return CommandEvent(root_id, now, EventKind.ENDED, ended_message(outcome))


def ended_message(outcome: Outcome) -> str:
    """The message of an ENDED event (also written set-based by the repository)."""
    reason = f": {outcome.reason}" if outcome.reason else ""
    return f"{outcome.status.value}{reason}"


def observed(task: TaskView, update: TaskUpdate, now: datetime) -> list[CommandEvent]:
    """What a poll's change to a task is worth remembering: its end, and its milestones."""
    events = []
    before = task.progress_percent
    after = update.values.get("progress_percent", before)
    for milestone in MILESTONES:
        if before < milestone <= after < 100:
            events.append(
                CommandEvent(
                    task.root_command_id,
                    now,
                    EventKind.PROGRESS,
                    f"{after}%",
                    task.task_id,
                    task.host_id,
                )
            )
    if update.values.get("state") is TaskState.FINISHED and task.state is not TaskState.FINISHED:
        result = update.values.get("result")
        name = result.value if isinstance(result, TaskResult) else "no result"
        message = update.values.get("message", task.message)
        events.append(
            CommandEvent(
                task.root_command_id,
                now,
                EventKind.TASK_FINISHED,
                f"{name}: {message}" if message else name,
                task.task_id,
                task.host_id,
            )
        )
    return events


def retry_links(old_id: str, new_id: str, now: datetime, by: str = "") -> list[CommandEvent]:
    """A retry: each command's history names the other (and who asked)."""
    asked = f", asked by {by}" if by else ""
    return [
        CommandEvent(old_id, now, EventKind.RETRIED_AS, f"retried as command {new_id}{asked}"),
        CommandEvent(new_id, now, EventKind.RETRY_OF, f"retry of command {old_id}"),
    ]


def cleared(task: AsyncTask, now: datetime) -> CommandEvent:
    how = (
        "stopped if running, its image deleted (compensation), cleared on its host"
        if task.cleanup is TaskCleanup.COMPENSATE
        else "cleared on its host"
    )
    return CommandEvent(
        task.root_command_id, now, EventKind.TASK_CLEARED, how, task.task_id, task.host_id
    )


def task_event(
    task: AsyncTask | TaskView, kind: EventKind, message: str, now: datetime
) -> CommandEvent:
    """An event about one of a command's tasks."""
    return CommandEvent(task.root_command_id, now, kind, message, task.task_id, task.host_id)


__all__ = [
    "MILESTONES",
    "CommandEvent",
    "EventKind",
    "TaskResult",
    "accepted",
    "cleared",
    "ended",
    "ended_message",
    "observed",
    "retry_links",
    "task_event",
]
