"""Accepting, running, stopping, clearing and recovering the agent's tasks.

Every accepted task is recorded durably before its start RPC returns, and every change of state
is recorded before anyone can see it finished, so the agent can answer for each task it ever
accepted until the task is cleared, across `kill -9` (design section 4, invariant 9).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from service_common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from service_common.ids import require_uuid
from vdsm_agent import observability as metrics
from vdsm_agent.adapters.storage import CHUNK_BYTES, StorageRoot, VerificationFailed
from vdsm_agent.adapters.task_store import TaskStore
from vdsm_agent.crash import crash_point
from vdsm_agent.domain.tasks import (
    Code,
    CopyImageSpec,
    CreateVolumeSpec,
    ImageRef,
    Task,
    TaskResult,
    TaskSpec,
    TaskState,
)

log = logging.getLogger(__name__)

MAX_VOLUME_BYTES = 1 << 40
MAX_FILL_PATTERN_BYTES = 4096


class _Aborted(Exception):
    """Raised inside a running job to unwind it when it is told to stop."""


@dataclasses.dataclass
class _Abort:
    """Tells a running job to stop, and why: StopTask (clean success) or shutdown (clean
    failure)."""

    event: threading.Event = dataclasses.field(default_factory=threading.Event)
    shutdown: bool = False


class TaskManager:
    def __init__(
        self,
        storage: StorageRoot,
        store: TaskStore,
        throttle_bytes_per_s: int | None = None,
        workers: int = 8,
    ) -> None:
        self.storage = storage
        self.store = store
        self.throttle = throttle_bytes_per_s or None
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}  # in order of acceptance
        self._by_request: dict[str, Task] = {}
        self._aborts: dict[str, _Abort] = {}
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="task")
        self._recover()

    # -- recovery --------------------------------------------------------------------------

    def _recover(self) -> None:
        """Bring back every recorded task; the ones the last process did not finish end now."""
        for task in self.store.load_all():
            if not task.finished:
                self._settle_interrupted(task)
                self.store.save(task)
            self._tasks[task.task_id] = task
            self._by_request[task.request_id] = task
        if self._tasks:
            log.info("recovered %d task(s) from the state directory", len(self._tasks))

    def _settle_interrupted(self, task: Task) -> None:
        target = task.spec.target
        try:
            self.storage.remove_partial(target, task.task_id)
            published = task.state is not TaskState.INIT and self.storage.image_exists(target)
        except OSError as exc:
            log.error(
                "task %s: could not inspect its output after a restart: %s", task.task_id, exc
            )
            published = False
        if published:
            # The image is published only after it verified, and no other task may write the
            # same image while this one is unfinished: the crash came after the publish.
            task.finish(TaskResult.SUCCESS)
            log.info("task %s had published its image before the restart: success", task.task_id)
        else:
            task.finish(
                TaskResult.CLEAN_FAILURE,
                Code.UNAVAILABLE,
                f"interrupted by an agent restart while {task.state.value}; partial output removed",
            )
            log.warning("task %s interrupted by an agent restart: cleanFailure", task.task_id)

    # -- queries ---------------------------------------------------------------------------

    def all_tasks(self) -> list[Task]:
        """Snapshots of every known task, in order of acceptance."""
        with self._lock:
            return [dataclasses.replace(t) for t in self._tasks.values()]

    def get(self, task_id: str) -> Task:
        task_id = require_uuid("task_id", task_id)
        with self._lock:
            return dataclasses.replace(self._known(task_id))

    def _known(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFound(
                f"task {task_id} is not known to this agent (never accepted, or cleared)"
            )
        return task

    # -- storage domains and images ---------------------------------------------------------

    def create_storage_domain(self, storage_domain_id: str) -> None:
        self.storage.create_domain(require_uuid("storage_domain_id", storage_domain_id))

    def delete_image(self, storage_domain_id: str, image_id: str) -> None:
        ref = ImageRef(
            require_uuid("storage_domain_id", storage_domain_id), require_uuid("image_id", image_id)
        )
        with self._lock:
            for task in self._tasks.values():
                if not task.finished and (ref == task.spec.target or ref in task.spec.reads()):
                    raise FailedPrecondition(
                        f"image {ref.image_id} is in use by unfinished task {task.task_id} "
                        f"({task.verb.value}); stop it first"
                    )
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
        target = ImageRef(
            require_uuid("storage_domain_id", storage_domain_id),
            require_uuid("image_id", image_id),
        )
        if not 0 < size_bytes <= MAX_VOLUME_BYTES:
            raise InvalidArgument(
                "size_bytes", f"must be from 1 to {MAX_VOLUME_BYTES}, not {size_bytes}"
            )
        if len(fill_pattern) > MAX_FILL_PATTERN_BYTES:
            raise InvalidArgument(
                "fill_pattern", f"is {len(fill_pattern)} bytes; at most {MAX_FILL_PATTERN_BYTES}"
            )
        return self._accept(request_id, CreateVolumeSpec(target, size_bytes, fill_pattern))

    def copy_image(
        self,
        request_id: str,
        src_storage_domain_id: str,
        src_image_id: str,
        dst_storage_domain_id: str,
        dst_image_id: str,
    ) -> Task:
        request_id = require_uuid("request_id", request_id)
        spec = CopyImageSpec(
            ImageRef(
                require_uuid("src_storage_domain_id", src_storage_domain_id),
                require_uuid("src_image_id", src_image_id),
            ),
            ImageRef(
                require_uuid("dst_storage_domain_id", dst_storage_domain_id),
                require_uuid("dst_image_id", dst_image_id),
            ),
        )
        return self._accept(request_id, spec)

    def _accept(self, request_id: str, spec: TaskSpec) -> Task:
        with self._lock:
            existing = self._by_request.get(request_id)
            if existing is not None:
                existing.check_same_request(spec)
                return dataclasses.replace(existing)
            if self._closing:
                raise Unavailable("the agent is shutting down and accepts no new task")
            self._check_can_start(spec)
            task = Task(task_id=str(uuid.uuid4()), request_id=request_id, spec=spec)
            self.store.save(task)
            self._tasks[task.task_id] = task
            self._by_request[request_id] = task
            self._aborts[task.task_id] = _Abort()
            crash_point("after_task_persist")
            metrics.TASKS_ACCEPTED.labels(task.verb.value).inc()
            metrics.TASKS_IN_FLIGHT.inc()
            self._executor.submit(self._run, task)
            log.info(
                "accepted %s task %s for request %s, writing image %s in storage domain %s",
                task.verb.value,
                task.task_id,
                request_id,
                spec.target.image_id,
                spec.target.storage_domain_id,
            )
            return dataclasses.replace(task)

    def _check_can_start(self, spec: TaskSpec) -> None:
        """Refuse a task that cannot work, before anything is recorded. Caller holds the lock."""
        if isinstance(spec, CopyImageSpec):
            src = spec.source
            self.storage.require_domain(src.storage_domain_id, "src_storage_domain_id")
            if not self.storage.image_exists(src, "src_image_id"):
                raise NotFound(
                    f"source image {src.image_id} does not exist in storage domain "
                    f"{src.storage_domain_id}"
                )
            dst_domain_field, dst_image_field = "dst_storage_domain_id", "dst_image_id"
            needed = self.storage.image_path(src, "src_image_id").stat().st_size
        else:
            dst_domain_field, dst_image_field = "storage_domain_id", "image_id"
            needed = spec.size_bytes
        target = spec.target
        self.storage.require_domain(target.storage_domain_id, dst_domain_field)
        if self.storage.image_exists(target, dst_image_field):
            raise AlreadyExists(
                f"image {target.image_id} already exists in storage domain "
                f"{target.storage_domain_id}"
            )
        for task in self._tasks.values():
            if not task.finished and task.spec.target == target:
                raise AlreadyExists(
                    f"image {target.image_id} is being written by unfinished task {task.task_id}"
                )
        free = self.storage.free_bytes()
        if needed > free:
            raise ResourceExhausted(
                f"the image needs {needed} bytes and the storage root has {free} free"
            )

    # -- running tasks ---------------------------------------------------------------------

    def _run(self, task: Task) -> None:
        with self._lock:
            if task.state is not TaskState.INIT:  # stopped while it waited for a worker
                return
            task.start()
            self.store.save(task)
            abort = self._aborts[task.task_id]
        started = time.monotonic()
        spec = task.spec
        is_copy = isinstance(spec, CopyImageSpec)
        chunk = (
            CHUNK_BYTES
            if self.throttle is None
            else max(4096, min(CHUNK_BYTES, self.throttle // 10))
        )
        written = 0

        def advance(done: int, total: int) -> None:
            nonlocal written
            metrics.BYTES_WRITTEN.inc(done - written)
            written = done
            task.progress_percent = min(99, done * 100 // max(total, 1))
            if is_copy and done * 2 >= total:
                crash_point("mid_copy")  # the partial file holds part of the copy
            if abort.event.is_set():
                raise _Aborted
            if self.throttle is not None:
                wait = started + done / self.throttle - time.monotonic()
                if wait > 0 and abort.event.wait(wait):
                    raise _Aborted

        outcome: tuple[TaskResult, Code, str]
        try:
            if isinstance(spec, CreateVolumeSpec):
                self.storage.write_volume(
                    spec.target, task.task_id, spec.size_bytes, spec.fill_pattern, advance, chunk
                )
            else:
                self.storage.copy_image(spec.source, spec.target, task.task_id, advance, chunk)
            outcome = (TaskResult.SUCCESS, Code.OK, "")
        except _Aborted:
            with self._lock:
                task.begin_cleaning()
            if abort.shutdown:
                outcome = (
                    TaskResult.CLEAN_FAILURE,
                    Code.UNAVAILABLE,
                    "interrupted by the agent shutting down; partial output removed",
                )
            else:
                outcome = (
                    TaskResult.CLEAN_SUCCESS,
                    Code.CANCELLED,
                    "stopped by StopTask; partial output removed",
                )
        except NotFound as exc:
            outcome = (TaskResult.FAILURE, Code.NOT_FOUND, str(exc))
        except VerificationFailed as exc:
            outcome = (TaskResult.FAILURE, Code.DATA_LOSS, str(exc))
        except OSError as exc:
            code = Code.RESOURCE_EXHAUSTED if exc.errno == errno.ENOSPC else Code.INTERNAL
            outcome = (TaskResult.FAILURE, code, f"I/O error: {exc.strerror or exc}")
        except Exception as exc:  # a bug: the task must still end, with a reason
            log.exception("task %s failed unexpectedly", task.task_id)
            outcome = (TaskResult.FAILURE, Code.INTERNAL, f"internal error: {exc}")
        if outcome[0] is not TaskResult.SUCCESS:
            self._remove_partial(task)
        self._finish(task, *outcome)

    def _remove_partial(self, task: Task) -> None:
        try:
            self.storage.remove_partial(task.spec.target, task.task_id)
        except OSError as exc:
            log.error("task %s: could not remove its partial output: %s", task.task_id, exc)

    def _finish(self, task: Task, result: TaskResult, code: Code, message: str) -> None:
        with self._lock:
            task.finish(result, code, message)
            self.store.save(task)
            self._aborts.pop(task.task_id, None)
        metrics.TASKS_FINISHED.labels(task.verb.value, result.value).inc()
        metrics.TASKS_IN_FLIGHT.dec()
        level = logging.INFO if result is TaskResult.SUCCESS else logging.WARNING
        log.log(level, "task %s finished: %s %s", task.task_id, result.value, message)

    # -- stopping and clearing --------------------------------------------------------------

    def stop(self, task_id: str) -> None:
        task_id = require_uuid("task_id", task_id)
        with self._lock:
            task = self._known(task_id)
            if task.finished or task.state in (TaskState.ABORTING, TaskState.CLEANING):
                return
            if task.state is TaskState.INIT:
                queued = True
            else:
                queued = False
                task.begin_abort()
                self._aborts[task_id].event.set()
        if queued:  # never started: nothing to clean
            self._finish(
                task,
                TaskResult.CLEAN_SUCCESS,
                Code.CANCELLED,
                "stopped by StopTask before it started",
            )
        log.info("stop requested for task %s", task_id)

    def clear(self, task_id: str) -> None:
        task_id = require_uuid("task_id", task_id)
        with self._lock:
            task = self._known(task_id)
            task.check_clearable()
            self.store.delete(task_id)
            del self._tasks[task_id]
            self._by_request.pop(task.request_id, None)
        log.info("cleared task %s", task_id)

    # -- shutdown --------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Accept nothing more; interrupt running tasks cleanly and wait for them to settle."""
        queued: list[Task] = []
        with self._lock:
            self._closing = True
            for task in self._tasks.values():
                if task.state is TaskState.INIT:
                    queued.append(task)
                elif not task.finished:
                    abort = self._aborts[task.task_id]
                    abort.shutdown = True
                    abort.event.set()
        for task in queued:
            self._finish(
                task,
                TaskResult.CLEAN_FAILURE,
                Code.UNAVAILABLE,
                "the agent shut down before the task started",
            )
        self._executor.shutdown(wait=True)
