"""The worker side of the task manager: running one task from init to finished.

A task's job (write a volume, copy an image, remove an image) runs on a worker thread without
the manager's lock. Each change of the task's state that a restart must know is submitted to the
task records under the lock (so a task's records are stored in the order it changed) and waited
for without it (so no lock is held across the I/O, and records share their fsync): a job starts
only once its move to running is durable, and a task is finished to everyone only once its end
is (`Task.ending` until then). A job is told to stop through its `AbortSignal` and unwinds at its
next chunk (a removal, only before it begins).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from contextlib import AbstractContextManager
from typing import Any

from service_common.errors import NotFound
from service_common.vdsm_tasks import TaskResult, TaskState
from vdsm_agent import observability as metrics
from vdsm_agent.adapters.storage import (
    CHUNK_BYTES,
    OUT_OF_SPACE,
    Advance,
    VerificationFailed,
)
from vdsm_agent.crash import crash_point
from vdsm_agent.domain.tasks import (
    SUCCEEDED,
    Code,
    CopyImageSpec,
    CreateVolumeSpec,
    Outcome,
    RemoveImageSpec,
    Task,
    interrupted,
    undone,
)
from vdsm_agent.service_layer.ports import Durable, Storage, TaskRecords

# The task manager's logger, as before the manager was split into modules.
log = logging.getLogger("vdsm_agent.service_layer.task_manager")


class _Aborted(Exception):
    """Raised inside a running job to unwind it when it is told to stop."""


@dataclasses.dataclass
class AbortSignal:
    """Tells a running job to stop, and why: StopTask (clean success) or shutdown (clean
    failure)."""

    event: threading.Event = dataclasses.field(default_factory=threading.Event)
    shutdown: bool = False


def chunk_bytes(throttle: int | None) -> int:
    """How much a job writes between two looks at its abort signal and its throttle."""
    return CHUNK_BYTES if throttle is None else max(4096, min(CHUNK_BYTES, throttle // 10))


def failure_outcome(task: Task, exc: Exception) -> Outcome:
    """How a job that raised `exc` ends. Call it from the `except` block that caught `exc`."""
    if isinstance(exc, NotFound):
        return Outcome(TaskResult.FAILURE, Code.NOT_FOUND, str(exc))
    if isinstance(exc, VerificationFailed):
        return Outcome(TaskResult.FAILURE, Code.DATA_LOSS, str(exc))
    if isinstance(exc, OSError) and exc.errno in OUT_OF_SPACE:
        target = task.spec.target
        return Outcome(
            TaskResult.FAILURE,
            Code.RESOURCE_EXHAUSTED,
            f"out of space writing image {target.image_id} in storage domain "
            f"{target.storage_domain_id}: {exc.strerror or exc}",
        )
    if isinstance(exc, OSError):
        return Outcome(TaskResult.FAILURE, Code.INTERNAL, f"I/O error: {exc.strerror or exc}")
    # A bug: the task must still end, with a reason.
    log.exception("task %s failed unexpectedly", task.task_id)
    return Outcome(TaskResult.FAILURE, Code.INTERNAL, f"internal error: {exc}")


def not_started(exc: OSError) -> Outcome:
    """How a task ends whose start could not be recorded: it did not run."""
    code = Code.RESOURCE_EXHAUSTED if exc.errno in OUT_OF_SPACE else Code.INTERNAL
    return Outcome(
        TaskResult.FAILURE,
        code,
        f"could not record in the agent's state directory that the task started "
        f"({exc.strerror or exc}); it did not run",
    )


class TaskRunner:
    """Runs accepted tasks' jobs and finishes tasks, recording each step in the task store."""

    def __init__(
        self,
        storage: Storage,
        store: TaskRecords,
        lock: AbstractContextManager[Any],
        throttle_bytes_per_s: int | None = None,
    ) -> None:
        self.storage = storage
        self.store = store
        self.throttle = throttle_bytes_per_s or None
        self._lock = lock
        self.aborts: dict[str, AbortSignal] = {}  # one per unfinished task

    def expect(self, task: Task) -> None:
        """Ready the abort signal of a task just accepted. Caller holds the lock."""
        self.aborts[task.task_id] = AbortSignal()

    def signal_abort(self, task_id: str, shutdown: bool = False) -> None:
        """Tell a running task's job to unwind. Caller holds the lock."""
        abort = self.aborts[task_id]
        if shutdown:
            abort.shutdown = True
        abort.event.set()

    def run(self, task: Task) -> None:
        """The whole life of a task on a worker thread; a task ended while it waited for a
        worker (stopped, or the agent shutting down) is left as it is."""
        abort = self._begin(task)
        if abort is None:
            return
        outcome = self._work(task, abort)
        if outcome.result is not TaskResult.SUCCESS:
            self._remove_partial(task)
        self.finish(task, outcome)

    def _begin(self, task: Task) -> AbortSignal | None:
        """Move the task to running, recorded; None when it is not to run."""
        with self._lock:
            # Ended (and perhaps cleared) while it waited for a worker: not run, not saved again.
            if not task.can_move_to(TaskState.RUNNING):
                return None
            task.start()
            started = self.store.submit(task)
            abort = self.aborts[task.task_id]
        try:
            started.wait()
        except OSError as exc:
            # Unrecorded, the start would be unknown after a restart, which takes a task still
            # in init for one that wrote nothing (Task.may_have_published): the job does not
            # run, and the task fails saying why.
            log.error("task %s: could not record that it started: %s", task.task_id, exc)
            self.finish(task, not_started(exc))
            return None
        return abort

    def _work(self, task: Task, abort: AbortSignal) -> Outcome:
        spec = task.spec
        advance = self._advance(task, abort)
        chunk = chunk_bytes(self.throttle)
        try:
            if isinstance(spec, CreateVolumeSpec):
                self.storage.write_volume(
                    spec.target, task.task_id, spec.size_bytes, spec.fill_pattern, advance, chunk
                )
            elif isinstance(spec, RemoveImageSpec):
                self._remove(task, spec, abort)
            else:
                self.storage.copy_image(spec.source, spec.target, task.task_id, advance, chunk)
            return SUCCEEDED
        except _Aborted:
            with self._lock:
                if task.can_move_to(TaskState.CLEANING):
                    task.begin_cleaning()
            return interrupted(abort.shutdown, undone(spec))
        except Exception as exc:
            return failure_outcome(task, exc)

    def _remove(self, task: Task, spec: RemoveImageSpec, abort: AbortSignal) -> None:
        """RemoveImage's job: one step, stopped only before it begins (the image then stays)."""
        if abort.event.is_set():
            raise _Aborted
        target = spec.target
        if not self.storage.remove_image(target):
            log.info(
                "task %s: image %s was not in storage domain %s: nothing to remove",
                task.task_id,
                target.image_id,
                target.storage_domain_id,
            )

    def _advance(self, task: Task, abort: AbortSignal) -> Advance:
        """The job's callback after each chunk: progress, metrics, crash point, stop, throttle."""
        started = time.monotonic()
        is_copy = isinstance(task.spec, CopyImageSpec)
        throttle = self.throttle
        written = 0

        def advance(done: int, total: int) -> None:
            nonlocal written
            metrics.BYTES_WRITTEN.inc(done - written)
            written = done
            task.record_progress(done, total)
            if is_copy and done * 2 >= total:
                crash_point("mid_copy")  # the partial file holds part of the copy
            if abort.event.is_set():
                raise _Aborted
            if throttle is not None:
                wait = started + done / throttle - time.monotonic()
                if wait > 0 and abort.event.wait(wait):
                    raise _Aborted

        return advance

    def _remove_partial(self, task: Task) -> None:
        try:
            self.storage.remove_partial(task.spec.target, task.task_id)
        except OSError as exc:
            log.error("task %s: could not remove its partial output: %s", task.task_id, exc)

    def finish(self, task: Task, outcome: Outcome) -> None:
        """End a task: record its outcome, forget its abort signal, count it, log it. A task
        ended already (and perhaps cleared since) is left as it is: not ended twice, not saved
        again."""
        with self._lock:
            ended = self.end(task, outcome)
        if ended is not None:
            self.settle(task, outcome, ended)

    def end(self, task: Task, outcome: Outcome) -> Durable | None:
        """Decide a task's outcome: submit its record as ended and forget its abort signal; None,
        doing nothing, when it has ended (or is ending) already. Caller holds the lock, so that
        deciding to end a task and ending it are one step; then, without the lock, it calls
        `settle` for a task this ended."""
        if task.finished or task.ending is not None:
            return None
        task.ending = outcome
        self.aborts.pop(task.task_id, None)
        ended = dataclasses.replace(task)
        ended.finish(*outcome)
        return self.store.submit(ended)

    def settle(self, task: Task, outcome: Outcome, ended: Durable) -> None:
        """Once the end's record is durable, finish the task for everyone, count it and log it.
        Caller does not hold the lock."""
        try:
            ended.wait()
        except OSError as exc:
            # It has ended all the same: this process answers for it as ended. A restart reads
            # the older record and settles the task again (docs/design.md §9, a full state
            # directory).
            log.error(
                "task %s: could not record its end (%s): %s", task.task_id, outcome.result, exc
            )
        with self._lock:
            task.finish(*outcome)
        self.report(task, outcome)

    def report(self, task: Task, outcome: Outcome) -> None:
        """Count and log a task just finished. Caller does not hold the lock."""
        result, _, message = outcome
        metrics.TASKS_FINISHED.labels(task.verb.value, result.value).inc()
        metrics.TASKS_IN_FLIGHT.dec()
        level = logging.INFO if result is TaskResult.SUCCESS else logging.WARNING
        log.log(level, "task %s finished: %s %s", task.task_id, result.value, message)
