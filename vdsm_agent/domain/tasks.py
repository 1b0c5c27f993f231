"""Agent tasks: what was asked (a spec, `vdsm_agent.domain.specs`), and where the work is
(state, result, progress).

States and results carry VDSM's wire strings (service_common.vdsm_tasks), which is also how they
are stored and logged. The rules of a task's life live here, as plain Python: which moves between
states exist, what StopTask does in each state, what a restart makes of an unfinished task, when a
reused request id is the same request, and which images the unfinished tasks hold.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum, IntEnum, StrEnum
from typing import Any, NamedTuple

from service_common.errors import AlreadyExists, FailedPrecondition, NotFound
from service_common.vdsm_tasks import TaskResult, TaskState
from vdsm_agent.domain.specs import (
    MAX_FILL_PATTERN_BYTES,
    MAX_VOLUME_BYTES,
    SPEC_TYPES,
    CopyImageSpec,
    CreateVolumeSpec,
    ImageRef,
    RemoveImageSpec,
    TaskSpec,
    Verb,
)

# The specs are also this module's names, as they were before they had a module of their own.
__all__ = [
    "MAX_FILL_PATTERN_BYTES",
    "MAX_VOLUME_BYTES",
    "SHUT_DOWN_BEFORE_START",
    "SPEC_TYPES",
    "STOPPED_BEFORE_START",
    "SUCCEEDED",
    "TRANSITIONS",
    "Code",
    "CopyImageSpec",
    "CreateVolumeSpec",
    "ImageRef",
    "Outcome",
    "RemoveImageSpec",
    "StopAction",
    "Task",
    "TaskBook",
    "TaskSpec",
    "Verb",
    "can_move",
    "interrupted",
    "running_progress",
    "undone",
]


class Code(IntEnum):
    """The outcome code of a task, as google.rpc.Code numbers."""

    OK = 0
    CANCELLED = 1
    NOT_FOUND = 5
    RESOURCE_EXHAUSTED = 8
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15


class Outcome(NamedTuple):
    """How a task ends: its result, its code and a message for people."""

    result: TaskResult
    code: Code = Code.OK
    message: str = ""


SUCCEEDED = Outcome(TaskResult.SUCCESS)
STOPPED_BEFORE_START = Outcome(
    TaskResult.CLEAN_SUCCESS, Code.CANCELLED, "stopped by StopTask before it started"
)
SHUT_DOWN_BEFORE_START = Outcome(
    TaskResult.CLEAN_FAILURE, Code.UNAVAILABLE, "the agent shut down before the task started"
)


def undone(spec: TaskSpec) -> str:
    """What a task of this spec leaves when it is interrupted: a writer's partial output is
    removed; a removal is interrupted only before it removes anything."""
    if isinstance(spec, RemoveImageSpec):
        return "the image was not removed"
    return "partial output removed"


def interrupted(shutdown: bool, left: str = "partial output removed") -> Outcome:
    """The end of a job unwound while it ran: by the agent shutting down, or by StopTask.
    `left` says what the job left (`undone`)."""
    if shutdown:
        return Outcome(
            TaskResult.CLEAN_FAILURE,
            Code.UNAVAILABLE,
            f"interrupted by the agent shutting down; {left}",
        )
    return Outcome(TaskResult.CLEAN_SUCCESS, Code.CANCELLED, f"stopped by StopTask; {left}")


# Every move a task makes. A task waits in init for a worker; StopTask moves a running task to
# aborting, and the job unwinding moves it to cleaning (straight from running when the agent
# shuts down); a job that ends on its own finishes from running, or from aborting when StopTask
# came too late to interrupt it. A queued task, or any task after a restart, finishes at once.
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.INIT: frozenset({TaskState.RUNNING, TaskState.FINISHED}),
    TaskState.RUNNING: frozenset({TaskState.ABORTING, TaskState.CLEANING, TaskState.FINISHED}),
    TaskState.ABORTING: frozenset({TaskState.CLEANING, TaskState.FINISHED}),
    TaskState.CLEANING: frozenset({TaskState.FINISHED}),
    TaskState.FINISHED: frozenset(),
}


def can_move(before: TaskState, after: TaskState) -> bool:
    """Whether a task in state `before` may move to `after`."""
    return after in TRANSITIONS[before]


class StopAction(Enum):
    """What StopTask does to a task, by its state."""

    NOTHING = "nothing"  # finished, or already stopping: StopTask is a no-op
    CANCEL = "cancel"  # still waiting for a worker: it finishes now, nothing to clean
    ABORT = "abort"  # running: tell the job to unwind


def running_progress(done: int, total: int) -> int:
    """Progress of a running job, 0..99: only a finished success is at 100."""
    return max(0, min(99, done * 100 // max(total, 1)))


@dataclass
class Task:
    """One accepted job. Mutated only by the service layer, under its lock."""

    task_id: str
    request_id: str
    spec: TaskSpec
    state: TaskState = TaskState.INIT
    result: TaskResult = TaskResult.NONE
    progress_percent: int = 0
    message: str = ""
    code: Code = Code.OK
    accepted_at: float = field(default_factory=time.time)
    # The outcome it ends with, decided but not yet durable: until its record is, the task is
    # not finished to anyone (it moves no more, StopTask does nothing) and keeps its state.
    ending: Outcome | None = field(default=None, compare=False, repr=False)

    @property
    def verb(self) -> Verb:
        return self.spec.verb

    @property
    def finished(self) -> bool:
        return self.state is TaskState.FINISHED

    def can_move_to(self, state: TaskState) -> bool:
        return self.ending is None and can_move(self.state, state)

    def check_same_request(self, spec: TaskSpec) -> None:
        """A reused request id is fine only for the very same request."""
        if spec != self.spec:
            raise AlreadyExists(
                f"request_id {self.request_id} was already used for another request "
                f"({self.verb.value} task {self.task_id}); use a new request id"
            )

    def stop_action(self) -> StopAction:
        """What StopTask does to this task now."""
        if self.ending is not None:
            return StopAction.NOTHING
        if self.state is TaskState.INIT:
            return StopAction.CANCEL
        if self.can_move_to(TaskState.ABORTING):
            return StopAction.ABORT
        return StopAction.NOTHING

    def start(self) -> None:
        self.state = TaskState.RUNNING

    def begin_abort(self) -> None:
        self.state = TaskState.ABORTING

    def begin_cleaning(self) -> None:
        self.state = TaskState.CLEANING

    def record_progress(self, done: int, total: int) -> None:
        self.progress_percent = running_progress(done, total)

    def finish(self, result: TaskResult, code: Code = Code.OK, message: str = "") -> None:
        self.ending = None
        self.state = TaskState.FINISHED
        self.result = result
        self.code = code
        self.message = message
        if result is TaskResult.SUCCESS:
            self.progress_percent = 100

    @property
    def may_have_published(self) -> bool:
        """Whether the task may have done its work (published its image, or removed it): one
        still in init did nothing."""
        return self.state is not TaskState.INIT

    def work_done(self, image_exists: bool) -> bool:
        """Whether the work of a task the last process left unfinished is in place, given whether
        its target image exists now. A task still in init did nothing. A writer that started
        published its image if the image exists: an image is published only after it verified,
        and no other task may write it while this one is unfinished. A removal that started
        removed its image if the image is gone: no other task may write it meanwhile either."""
        if not self.may_have_published:
            return False
        return image_exists != isinstance(self.spec, RemoveImageSpec)

    def settle_after_restart(self, done: bool) -> Outcome:
        """End a task the last process left unfinished, and return how it ended.

        `done` (`work_done`): its work is in place, so the crash came after it: success (for a
        removal, the recovery makes the removal durable first). Anything else was interrupted:
        cleanFailure, its partial output (to be) removed, or, for a removal, its image untouched.
        """
        if done:
            outcome = SUCCEEDED
        else:
            outcome = Outcome(
                TaskResult.CLEAN_FAILURE,
                Code.UNAVAILABLE,
                f"interrupted by an agent restart while {self.state.value}; {undone(self.spec)}",
            )
        self.finish(*outcome)
        return outcome

    def check_clearable(self) -> None:
        if not self.finished:
            raise FailedPrecondition(
                f"task {self.task_id} is {self.state.value}, not finished: stop it and wait "
                "for it to finish before clearing it"
            )

    def to_record(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "request_id": self.request_id,
            "verb": self.verb.value,
            "spec": self.spec.to_record(),
            "state": self.state.value,
            "result": self.result.value,
            "progress_percent": self.progress_percent,
            "message": self.message,
            "code": int(self.code),
            "accepted_at": self.accepted_at,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Task:
        verb = Verb(rec["verb"])
        return cls(
            task_id=rec["task_id"],
            request_id=rec["request_id"],
            spec=SPEC_TYPES[verb].from_record(rec["spec"]),
            state=TaskState(rec["state"]),
            result=TaskResult(rec["result"]),
            progress_percent=int(rec["progress_percent"]),
            message=rec["message"],
            code=Code(rec["code"]),
            accepted_at=float(rec["accepted_at"]),
        )


class TaskBook:
    """Every task the agent answers for, in order of acceptance, and the rules across them.

    A task added `pending` (accepted, its record not yet durable) holds its images like any
    other, but is not shown: not iterated, not `known`, until it is `confirm`ed. The unfinished
    tasks that hold an image are found through an index by image, not by a walk of every task.
    Plain bookkeeping: the service layer holds its lock around every call.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._by_request: dict[str, Task] = {}
        self._pending: set[str] = set()
        # Tasks by the image they write (or remove), and by the images they read; finished ones
        # are dropped as they are met (_holding).
        self._writers: dict[ImageRef, list[Task]] = {}
        self._readers: dict[ImageRef, list[Task]] = {}

    def __iter__(self) -> Iterator[Task]:
        if not self._pending:
            return iter(self._tasks.values())
        return (t for t in self._tasks.values() if t.task_id not in self._pending)

    def __len__(self) -> int:
        return len(self._tasks) - len(self._pending)

    def _indexes(self, task: Task) -> Iterator[tuple[dict[ImageRef, list[Task]], ImageRef]]:
        yield self._writers, task.spec.target
        for ref in task.spec.reads():
            yield self._readers, ref

    def add(self, task: Task, pending: bool = False) -> None:
        self._tasks[task.task_id] = task
        self._by_request[task.request_id] = task
        if pending:
            self._pending.add(task.task_id)
        for index, ref in self._indexes(task):
            index.setdefault(ref, []).append(task)

    def confirm(self, task: Task) -> None:
        """Show a pending task: its record is durable."""
        self._pending.discard(task.task_id)

    def remove(self, task: Task) -> None:
        if self._tasks.pop(task.task_id, None) is None:
            return
        self._by_request.pop(task.request_id, None)
        self._pending.discard(task.task_id)
        for index, ref in self._indexes(task):
            holders = [t for t in index.get(ref, []) if t is not task]
            if holders:
                index[ref] = holders
            else:
                index.pop(ref, None)

    def known(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None or task_id in self._pending:
            raise NotFound(
                f"task {task_id} is not known to this agent (never accepted, or cleared)"
            )
        return task

    def same_request(self, request_id: str, spec: TaskSpec) -> Task | None:
        """The task already accepted for this very request (perhaps still pending), None for a
        new request id; AlreadyExists when the request id was used for another request."""
        existing = self._by_request.get(request_id)
        if existing is not None:
            existing.check_same_request(spec)
        return existing

    @staticmethod
    def _holding(index: dict[ImageRef, list[Task]], ref: ImageRef) -> list[Task]:
        """The unfinished tasks `index` has for `ref`, oldest first. A finished task never holds
        an image again, so it is dropped from the index here."""
        holders = index.get(ref)
        if not holders:
            return []
        unfinished = [t for t in holders if not t.finished]
        if len(unfinished) != len(holders):
            if unfinished:
                index[ref] = unfinished
            else:
                del index[ref]
        return unfinished

    def check_not_being_written(self, target: ImageRef) -> None:
        """Only one unfinished task writes an image."""
        writers = self._holding(self._writers, target)
        if writers:
            raise AlreadyExists(
                f"image {target.image_id} is being written by unfinished task {writers[0].task_id}"
            )

    def check_not_being_removed(self, ref: ImageRef) -> None:
        """An image an unfinished RemoveImage task removes is neither read nor written."""
        for task in self._holding(self._writers, ref):
            if task.verb is Verb.REMOVE_IMAGE:
                raise FailedPrecondition(
                    f"image {ref.image_id} is being removed by unfinished task {task.task_id} "
                    f"({task.verb.value}); wait for it to finish"
                )

    def check_not_in_use(self, ref: ImageRef) -> None:
        """An image an unfinished task writes, reads or removes is not deleted, nor removed by
        another task."""
        holders = self._holding(self._writers, ref) or self._holding(self._readers, ref)
        if holders:
            task = holders[0]
            raise FailedPrecondition(
                f"image {ref.image_id} is in use by unfinished task {task.task_id} "
                f"({task.verb.value}); stop it first"
            )


class Cleared(StrEnum):
    """What `clear_many` did with one task."""

    CLEARED = "cleared"
    NOT_FOUND = "not found"  # never accepted, or cleared before
    NOT_FINISHED = "not finished"  # kept: stop it and wait for it to finish
