"""Accepting, running, stopping, clearing and recovering the agent's tasks.

Every accepted task is recorded durably before its start RPC returns, and every change of state
is recorded before anyone can see it finished, so the agent can answer for each task it ever
accepted until the task is cleared, across `kill -9` (docs/design.md §5, invariant I9). The lock
is never held across that I/O: a record is submitted under the lock and waited for without it
(group commit: records submitted together share one fsync, docs/design.md §9). A task accepted
but not yet durable holds its images but is not shown to anyone, and a task whose end is not yet
durable is not finished to anyone.

The manager is the entry point; the parts are beside it: `admission` (parsing and checking a new
task), `task_runner` (the worker that runs a task), `recovery` (after a restart), and the rules
of a task's life in `vdsm_agent.domain.tasks`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from service_common.errors import (
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from service_common.ids import require_uuid
from service_common.vdsm_tasks import TaskState
from vdsm_agent import observability as metrics
from vdsm_agent.adapters.storage import OUT_OF_SPACE
from vdsm_agent.crash import crash_point
from vdsm_agent.domain.tasks import (
    MAX_FILL_PATTERN_BYTES,
    MAX_VOLUME_BYTES,
    SHUT_DOWN_BEFORE_START,
    STOPPED_BEFORE_START,
    Cleared,
    ImageRef,
    RemoveImageSpec,
    StopAction,
    Task,
    TaskBook,
    TaskSpec,
)
from vdsm_agent.service_layer.admission import (
    check_can_start,
    copy_image_spec,
    create_volume_spec,
    no_room_to_record,
    remove_image_spec,
)
from vdsm_agent.service_layer.ports import Durable, Storage, TaskRecords
from vdsm_agent.service_layer.recovery import recover
from vdsm_agent.service_layer.task_runner import TaskRunner

__all__ = ["MAX_FILL_PATTERN_BYTES", "MAX_STARTS", "MAX_VOLUME_BYTES", "Cleared", "TaskManager"]

log = logging.getLogger(__name__)

StorageT = TypeVar("StorageT", bound=Storage)

MAX_CLEARS = 1000  # task ids in one ClearTasks call
MAX_STARTS = 64  # starts in one StartTasks call


class TaskManager(Generic[StorageT]):
    """The agent's tasks: accepts, runs, stops, clears and, at start, recovers them."""

    def __init__(
        self,
        storage: StorageT,
        store: TaskRecords,
        throttle_bytes_per_s: int | None = None,
        workers: int = 8,
        executor: Executor | None = None,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        """`executor` runs the tasks' jobs; by default a pool of `workers` threads. `lock` guards
        the tasks, shared with the workers; by default a new `threading.Lock` (tests pass one
        that lets them act at the moment it is let go)."""
        self.storage = storage
        self.store = store
        self._lock: AbstractContextManager[Any] = lock if lock is not None else threading.Lock()
        self._runner = TaskRunner(storage, store, self._lock, throttle_bytes_per_s)
        self.throttle = self._runner.throttle
        self._book = TaskBook()
        self._recording: dict[str, threading.Event] = {}  # accepted, record not yet durable
        self._closing = False
        if executor is None:
            executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="task")
        self._executor = executor
        for task in recover(store, storage):
            self._book.add(task)

    # -- queries ---------------------------------------------------------------------------

    def all_tasks(self) -> list[Task]:
        """Snapshots of every known task, in order of acceptance."""
        with self._lock:
            return [dataclasses.replace(t) for t in self._book]

    def get(self, task_id: str) -> Task:
        task_id = require_uuid("task_id", task_id)
        with self._lock:
            return dataclasses.replace(self._book.known(task_id))

    # -- storage domains and images ---------------------------------------------------------

    def create_storage_domain(self, storage_domain_id: str) -> None:
        self.storage.create_domain(require_uuid("storage_domain_id", storage_domain_id))

    def delete_image(self, storage_domain_id: str, image_id: str) -> None:
        ref = ImageRef(
            require_uuid("storage_domain_id", storage_domain_id), require_uuid("image_id", image_id)
        )
        with self._lock:
            self._book.check_not_in_use(ref)
            self.storage.delete_image(ref)
        log.info("deleted image %s in storage domain %s", ref.image_id, ref.storage_domain_id)

    # -- accepting tasks --------------------------------------------------------------------

    def create_volume(
        self,
        request_id: str,
        storage_domain_id: str,
        image_id: str,
        size_bytes: int,
        fill_pattern: bytes = b"",
    ) -> Task:
        request_id = require_uuid("request_id", request_id)
        spec = create_volume_spec(storage_domain_id, image_id, size_bytes, fill_pattern)
        return self._accept(request_id, spec)

    def copy_image(
        self,
        request_id: str,
        src_storage_domain_id: str,
        src_image_id: str,
        dst_storage_domain_id: str,
        dst_image_id: str,
    ) -> Task:
        request_id = require_uuid("request_id", request_id)
        spec = copy_image_spec(
            src_storage_domain_id, src_image_id, dst_storage_domain_id, dst_image_id
        )
        return self._accept(request_id, spec)

    def remove_image(self, request_id: str, storage_domain_id: str, image_id: str) -> Task:
        """Start a task that removes an image (VDSM's image deletion): idempotent by request id,
        like the other starts; an image that is not there is removed all the same (success)."""
        request_id = require_uuid("request_id", request_id)
        return self._accept(request_id, remove_image_spec(storage_domain_id, image_id))

    def _accept(self, request_id: str, spec: TaskSpec) -> Task:
        while True:
            with self._lock:
                existing = self._book.same_request(request_id, spec)
                if existing is None:
                    if self._closing:
                        raise Unavailable("the agent is shutting down and accepts no new task")
                    check_can_start(self.storage, self._book, spec)
                    task = Task(task_id=str(uuid.uuid4()), request_id=request_id, spec=spec)
                    self._book.add(task, pending=True)  # its images held, not shown yet
                    self._recording[task.task_id] = threading.Event()
                    recorded = self.store.submit(task)
                    break
                being_recorded = self._recording.get(existing.task_id)
                if being_recorded is None:
                    return dataclasses.replace(existing)
            # The same request, accepted by another call whose record is not durable yet: its
            # answer is this one's, once the record is durable (or, if it cannot be, a new try).
            being_recorded.wait()
        self._record_acceptance(task, recorded)
        crash_point("after_task_persist")
        return self._confirm(task)

    def start_many(self, starts: Sequence[tuple[str, TaskSpec]]) -> list[Task | ServiceError]:
        """A start of each (request id, spec), as its own start RPC would take it, the records
        of the new tasks made durable together (one fsync): each start's task, or the error its
        own RPC would have raised, in the order asked. Unavailable for the whole call if the
        agent is shutting down. The caller checked the request ids (none repeated)."""
        if len(starts) > MAX_STARTS:
            raise InvalidArgument("starts", f"{len(starts)} starts, at most {MAX_STARTS} a call")
        results: list[Task | ServiceError | None] = [None] * len(starts)
        recording: list[tuple[int, Task, Durable]] = []
        alone: list[int] = []  # the same request being recorded by another call: taken alone
        with self._lock:
            if self._closing:
                raise Unavailable("the agent is shutting down and accepts no new task")
            for i, (request_id, spec) in enumerate(starts):
                try:
                    existing = self._book.same_request(request_id, spec)
                    if existing is None:
                        check_can_start(self.storage, self._book, spec)
                except ServiceError as exc:
                    results[i] = exc
                    continue
                if existing is not None:
                    if existing.task_id in self._recording:
                        alone.append(i)
                    else:
                        results[i] = dataclasses.replace(existing)
                    continue
                # Held as pending at once: a later start of the call is checked against it.
                task = Task(task_id=str(uuid.uuid4()), request_id=request_id, spec=spec)
                self._book.add(task, pending=True)
                self._recording[task.task_id] = threading.Event()
                recording.append((i, task, self.store.submit(task)))
        durable: list[tuple[int, Task]] = []
        failure: BaseException | None = None
        for i, task, recorded in recording:
            try:
                self._record_acceptance(task, recorded)
            except ResourceExhausted as exc:
                results[i] = exc
                continue
            except BaseException as exc:  # raised once every other task is settled
                failure = failure or exc
                continue
            durable.append((i, task))
        if durable:
            crash_point("after_task_persist")
        for i, task in durable:
            results[i] = self._confirm(task)
        if failure is not None:
            raise failure
        for i in alone:
            try:
                results[i] = self._accept(*starts[i])
            except ServiceError as exc:
                results[i] = exc
        return [r for r in results if r is not None]

    def _confirm(self, task: Task) -> Task:
        """A new task's record is durable: it is accepted, shown and handed to a worker.
        Returns a snapshot of it."""
        with self._lock:
            self._book.confirm(task)
            self._recording.pop(task.task_id).set()
            if not self._closing:
                self._runner.expect(task)
            closing = self._closing
            snapshot = dataclasses.replace(task)
        metrics.TASKS_ACCEPTED.labels(task.verb.value).inc()
        metrics.TASKS_IN_FLIGHT.inc()
        if closing:  # recorded as the agent began to shut down: it ends, never to run
            self._runner.finish(task, SHUT_DOWN_BEFORE_START)
        else:
            self._start(task)
        spec = task.spec
        log.info(
            "accepted %s task %s for request %s, %s image %s in storage domain %s",
            task.verb.value,
            task.task_id,
            task.request_id,
            "removing" if isinstance(spec, RemoveImageSpec) else "writing",
            spec.target.image_id,
            spec.target.storage_domain_id,
        )
        return snapshot

    def _record_acceptance(self, task: Task, recorded: Durable) -> None:
        """Wait for a new task's record to be durable, without the lock. If it cannot be, the
        task was never accepted: nothing in memory, nothing that a restart reads."""
        try:
            recorded.wait()
        except BaseException as exc:
            with self._lock:
                self._book.remove(task)
                self._recording.pop(task.task_id).set()
            if isinstance(exc, OSError) and exc.errno in OUT_OF_SPACE:
                raise no_room_to_record(task, exc) from exc
            raise  # INTERNAL, logged with its error id

    def _start(self, task: Task) -> None:
        """Hand an accepted task to a worker, outside the lock (a pool may start a thread)."""
        try:
            self._executor.submit(self._runner.run, task)
        except RuntimeError:
            # The pool shut down since: the shutdown ended this task, seen in init, already.
            log.info("task %s: not started, the agent is shutting down", task.task_id)

    # -- stopping and clearing --------------------------------------------------------------

    def stop(self, task_id: str) -> None:
        task_id = require_uuid("task_id", task_id)
        ended = None
        with self._lock:
            task = self._book.known(task_id)
            action = task.stop_action()
            if action is StopAction.NOTHING:
                return
            if action is StopAction.ABORT:
                task.begin_abort()
                self._runner.signal_abort(task_id)
            else:  # never started: it ends now, before a worker can start it; nothing to clean
                ended = self._runner.end(task, STOPPED_BEFORE_START)
        if ended is not None:
            self._runner.settle(task, STOPPED_BEFORE_START, ended)
        log.info("stop requested for task %s", task_id)

    def clear(self, task_id: str) -> None:
        task_id = require_uuid("task_id", task_id)
        with self._lock:
            task = self._book.known(task_id)
            task.check_clearable()
            forgotten = self.store.submit_delete(task_id)
        self._forget([(task, forgotten)])

    def clear_many(self, task_ids: Sequence[str]) -> list[tuple[str, Cleared]]:
        """`clear` for each task, their records made durable together; each task's outcome, in
        the order asked. ResourceExhausted if a record could not be written (that task is kept;
        the others of the call may be cleared)."""
        if len(task_ids) > MAX_CLEARS:
            raise InvalidArgument("task_ids", f"{len(task_ids)} ids, at most {MAX_CLEARS} a call")
        ids = [require_uuid(f"task_ids[{i}]", task_id) for i, task_id in enumerate(task_ids)]
        seen: set[str] = set()
        for i, task_id in enumerate(ids):
            if task_id in seen:
                raise InvalidArgument(f"task_ids[{i}]", f"{task_id} is repeated")
            seen.add(task_id)
        outcomes: list[tuple[str, Cleared]] = []
        clearing: list[tuple[Task, Durable]] = []
        with self._lock:
            for task_id in ids:
                try:
                    task = self._book.known(task_id)
                except NotFound:
                    outcomes.append((task_id, Cleared.NOT_FOUND))
                    continue
                if not task.finished:
                    outcomes.append((task_id, Cleared.NOT_FINISHED))
                    continue
                clearing.append((task, self.store.submit_delete(task_id)))
                outcomes.append((task_id, Cleared.CLEARED))
        self._forget(clearing)
        return outcomes

    def _forget(self, clearing: list[tuple[Task, Durable]]) -> None:
        """Wait for each task's record of being cleared, then forget it. A record that could
        not be written keeps its task (ResourceExhausted, after the others are forgotten)."""
        failed: tuple[Task, OSError] | None = None
        forgotten: list[Task] = []
        for task, record in clearing:
            try:
                record.wait()
            except OSError as exc:
                if exc.errno not in OUT_OF_SPACE:
                    raise
                failed = failed or (task, exc)
                continue
            forgotten.append(task)
        with self._lock:
            for task in forgotten:
                self._book.remove(task)
        for task in forgotten:
            log.info("cleared task %s", task.task_id)
        if failed is not None:
            kept, error = failed
            raise ResourceExhausted(
                f"no space left in the agent's state directory to record that task {kept.task_id} "
                f"is cleared ({error.strerror}); it is kept: free space there and ask again"
            ) from error

    # -- shutdown --------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Accept nothing more; end queued tasks at once, never to run; interrupt running tasks
        cleanly and wait for them to settle."""
        queued: list[tuple[Task, Durable]] = []
        with self._lock:
            self._closing = True
            for task in self._book:
                if task.finished or task.ending is not None:
                    continue
                if task.state is TaskState.INIT:
                    # Ended under the lock, so no worker starts it in between.
                    ended = self._runner.end(task, SHUT_DOWN_BEFORE_START)
                    if ended is not None:
                        queued.append((task, ended))
                else:
                    self._runner.signal_abort(task.task_id, shutdown=True)
        for task, ended in queued:
            self._runner.settle(task, SHUT_DOWN_BEFORE_START, ended)
        # Queued jobs are dropped, not waited for; running ones are waited for as they unwind.
        self._executor.shutdown(wait=True, cancel_futures=True)
