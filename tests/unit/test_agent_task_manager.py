"""The agent's TaskManager over in-memory fakes of its storage and task store, with its jobs run
by hand instead of on worker threads: no process, socket, sleep or file."""

from __future__ import annotations

import errno
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import pytest

from service_common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from service_common.vdsm_tasks import TaskResult, TaskState
from vdsm_agent.adapters.storage import Advance, VerificationFailed
from vdsm_agent.domain.tasks import (
    SHUT_DOWN_BEFORE_START,
    STOPPED_BEFORE_START,
    SUCCEEDED,
    Code,
    CreateVolumeSpec,
    ImageRef,
    Task,
    interrupted,
)
from vdsm_agent.service_layer.task_manager import TaskManager
from vdsm_agent.service_layer.task_runner import TaskRunner

SD = "0f2b6c7e-3d4a-4e5f-8a9b-1c2d3e4f5a6b"  # fixed: pytest-xdist collects the same ids


def new_id() -> str:
    return str(uuid.uuid4())


class Recorded:
    """What the fake store's `submit` answers: durable at once, or failed with `error`."""

    def __init__(self, error: OSError | None = None) -> None:
        self.error = error

    def wait(self) -> None:
        if self.error is not None:
            raise self.error


class FakeStore:
    """TaskStore in memory: records as `to_record` dicts, so a save is a snapshot. A submitted
    record is durable at once (the real store's group commit is tested on files)."""

    def __init__(self, *tasks: Task) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        for task in tasks:
            self.save(task)

    def save(self, task: Task) -> None:
        self.records[task.task_id] = task.to_record()

    def delete(self, task_id: str) -> None:
        self.records.pop(task_id, None)

    def submit(self, task: Task) -> Recorded:
        try:
            self.save(task)
        except OSError as exc:
            return Recorded(exc)
        return Recorded()

    def submit_delete(self, task_id: str) -> Recorded:
        try:
            self.delete(task_id)
        except OSError as exc:
            return Recorded(exc)
        return Recorded()

    def load_all(self) -> list[Task]:
        tasks = [Task.from_record(r) for r in self.records.values()]
        return sorted(tasks, key=lambda t: (t.accepted_at, t.task_id))

    def saved(self, task_id: str) -> Task:
        return Task.from_record(self.records[task_id])


class FakeStorage:
    """StorageRoot in memory. `during_job(done, total)` runs after each chunk of a job."""

    def __init__(self, free: int = 1 << 30) -> None:
        self.domains: set[str] = set()
        self.images: dict[ImageRef, bytes] = {}
        self.partials: dict[tuple[ImageRef, str], bytes] = {}
        self.free = free
        self.removed: list[ImageRef] = []  # every remove_image, there or not
        self.during_job: Callable[[int, int], None] = lambda done, total: None

    def create_domain(self, storage_domain_id: str) -> None:
        self.domains.add(storage_domain_id)

    def require_domain(self, storage_domain_id: str, field: str = "storage_domain_id") -> None:
        if storage_domain_id not in self.domains:
            raise NotFound(f"storage domain {storage_domain_id} does not exist on this host")

    def image_exists(self, ref: ImageRef, field: str = "image_id") -> bool:
        return ref in self.images

    def image_size(self, ref: ImageRef, field: str = "image_id") -> int:
        return len(self.images[ref])

    def delete_image(self, ref: ImageRef) -> None:
        self.require_domain(ref.storage_domain_id)
        if self.images.pop(ref, None) is None:
            raise NotFound(f"image {ref.image_id} does not exist")

    def remove_image(self, ref: ImageRef) -> bool:
        self.require_domain(ref.storage_domain_id)
        for key in [key for key in self.partials if key[0] == ref]:
            del self.partials[key]
        self.removed.append(ref)
        return self.images.pop(ref, None) is not None

    def remove_partial(self, ref: ImageRef, task_id: str) -> bool:
        return self.partials.pop((ref, task_id), None) is not None

    def free_bytes(self) -> int:
        return self.free

    def write_volume(
        self,
        target: ImageRef,
        task_id: str,
        size_bytes: int,
        fill_pattern: bytes,
        advance: Advance,
        chunk_bytes: int = 4,
    ) -> None:
        data = (fill_pattern or b"\0") * size_bytes
        self._write(data[:size_bytes], target, task_id, advance)

    def copy_image(
        self,
        source: ImageRef,
        target: ImageRef,
        task_id: str,
        advance: Advance,
        chunk_bytes: int = 4,
    ) -> None:
        if source not in self.images:
            raise NotFound(f"source image {source.image_id} vanished before the copy")
        self._write(self.images[source], target, task_id, advance)

    def _write(self, data: bytes, target: ImageRef, task_id: str, advance: Advance) -> None:
        key = (target, task_id)
        for half in (data[: len(data) // 2], data):
            self.partials[key] = half
            self.during_job(len(half), len(data))
            advance(len(half), len(data))
        if target in self.images:
            raise FileExistsError(errno.EEXIST, "image appeared while it was being written")
        self.images[target] = self.partials.pop(key)


class ByHand(Executor):
    """Runs submitted jobs only when told to; at shutdown, as a pool would, drops the queued
    ones when told to cancel them, else runs them."""

    def __init__(self) -> None:
        self.queued: list[Callable[[], object]] = []

    def submit(self, fn, /, *args, **kwargs):
        self.queued.append(lambda: fn(*args, **kwargs))
        return Future()

    def run_all(self) -> None:
        while self.queued:
            self.queued.pop(0)()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self.queued.clear()
        self.run_all()


class HookedLock:
    """The manager's lock, which runs a hook once, the next time it is let go, right after it
    is let go: the moment a worker thread could take it, made to happen by hand."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hook: Callable[[], object] | None = None

    def at_next_release(self, hook: Callable[[], object]) -> None:
        self._hook = hook

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
        hook, self._hook = self._hook, None
        if hook is not None:
            hook()


class Agent:
    """A TaskManager, its fakes and its hand-run worker, with one storage domain made."""

    def __init__(
        self, *recorded: Task, storage: FakeStorage | None = None, lock: HookedLock | None = None
    ) -> None:
        self.storage = storage or FakeStorage()
        self.storage.create_domain(SD)
        self.store = FakeStore(*recorded)
        self.workers = ByHand()
        self.manager = TaskManager(self.storage, self.store, executor=self.workers, lock=lock)

    def volume(self, request_id: str | None = None, image_id: str | None = None, size: int = 8):
        return self.manager.create_volume(request_id or new_id(), SD, image_id or new_id(), size)

    def finished(self, task: Task) -> Task:
        self.workers.run_all()
        return self.manager.get(task.task_id)


@pytest.fixture
def agent() -> Agent:
    return Agent()


# -- accepting and idempotency -----------------------------------------------------------------


def test_a_task_is_recorded_in_init_before_it_runs(agent: Agent) -> None:
    task = agent.volume()
    assert task.state is TaskState.INIT
    assert agent.store.saved(task.task_id) == task


def test_a_task_runs_to_success_with_its_image_published(agent: Agent) -> None:
    task = agent.finished(agent.volume(size=6))
    assert (task.state, task.result, task.progress_percent) == (
        TaskState.FINISHED,
        TaskResult.SUCCESS,
        100,
    )
    assert agent.storage.images[task.spec.target] == b"\0" * 6 and not agent.storage.partials
    assert agent.store.saved(task.task_id) == task


def test_progress_stays_below_100_while_the_job_runs(agent: Agent) -> None:
    task = agent.volume(size=100)
    seen: list[int] = []
    agent.storage.during_job = lambda done, total: seen.append(
        agent.manager.get(task.task_id).progress_percent
    )
    assert agent.finished(task).progress_percent == 100
    assert seen == [0, 50] and all(0 <= p <= 99 for p in seen)


def test_the_same_request_again_returns_the_same_task(agent: Agent) -> None:
    request_id, image_id = new_id(), new_id()
    first = agent.volume(request_id, image_id)
    assert agent.volume(request_id, image_id).task_id == first.task_id
    agent.finished(first)
    assert agent.volume(request_id.upper(), image_id.upper()).task_id == first.task_id
    assert len(agent.manager.all_tasks()) == 1


def test_a_request_id_reused_with_other_arguments_already_exists(agent: Agent) -> None:
    request_id, image_id = new_id(), new_id()
    agent.volume(request_id, image_id)
    with pytest.raises(AlreadyExists, match=request_id):
        agent.volume(request_id, image_id, size=9)
    with pytest.raises(AlreadyExists, match=request_id):
        agent.manager.copy_image(request_id, SD, image_id, SD, new_id())


def test_an_image_is_written_by_one_task_at_a_time(agent: Agent) -> None:
    image_id = new_id()
    agent.volume(image_id=image_id)
    with pytest.raises(AlreadyExists, match="being written"):
        agent.volume(image_id=image_id)
    agent.workers.run_all()
    with pytest.raises(AlreadyExists, match="already exists"):
        agent.volume(image_id=image_id)


def test_a_task_that_cannot_work_is_refused_and_not_recorded() -> None:
    agent = Agent(storage=FakeStorage(free=5))
    with pytest.raises(ResourceExhausted):
        agent.volume(size=6)
    with pytest.raises(NotFound, match="storage domain"):
        agent.manager.create_volume(new_id(), new_id(), new_id(), 1)
    with pytest.raises(NotFound, match="source image"):
        agent.manager.copy_image(new_id(), SD, new_id(), SD, new_id())
    assert agent.store.records == {} and agent.workers.queued == []


def test_a_copy_copies_its_source(agent: Agent) -> None:
    source = agent.finished(agent.volume(size=5)).spec.target
    copy = agent.manager.copy_image(new_id(), SD, source.image_id, SD, new_id())
    assert agent.finished(copy).result is TaskResult.SUCCESS
    assert agent.storage.images[copy.spec.target] == agent.storage.images[source]


# -- stopping ----------------------------------------------------------------------------------


def test_stop_on_a_finished_task_is_a_no_op(agent: Agent) -> None:
    task = agent.finished(agent.volume())
    agent.manager.stop(task.task_id)
    assert agent.manager.get(task.task_id) == task == agent.store.saved(task.task_id)


def test_a_task_stopped_before_it_started_ends_clean_and_never_runs(agent: Agent) -> None:
    task = agent.volume()
    agent.manager.stop(task.task_id)
    stopped = agent.finished(task)
    assert (stopped.state, stopped.result, stopped.code) == (
        TaskState.FINISHED,
        TaskResult.CLEAN_SUCCESS,
        Code.CANCELLED,
    )
    assert task.spec.target not in agent.storage.images


def test_a_task_stopped_while_it_runs_ends_finished_with_a_clean_result(agent: Agent) -> None:
    task = agent.volume()
    states: list[TaskState] = []

    def stop_it(done: int, total: int) -> None:
        states.append(agent.manager.get(task.task_id).state)
        agent.manager.stop(task.task_id)
        agent.manager.stop(task.task_id)  # a second stop while aborting: nothing more

    agent.storage.during_job = stop_it
    stopped = agent.finished(task)
    assert states == [TaskState.RUNNING]
    assert (stopped.state, stopped.result, stopped.code) == (
        TaskState.FINISHED,
        TaskResult.CLEAN_SUCCESS,
        Code.CANCELLED,
    )
    assert not agent.storage.partials and task.spec.target not in agent.storage.images
    assert agent.store.saved(task.task_id) == stopped


def test_a_queued_task_stopped_as_a_worker_picks_it_up_never_runs() -> None:
    lock = HookedLock()
    agent = Agent(lock=lock)
    task = agent.volume()
    lock.at_next_release(agent.workers.run_all)  # a worker takes the job as stop lets go
    agent.manager.stop(task.task_id)
    stopped = agent.finished(task)
    assert (stopped.state, stopped.result, stopped.code, stopped.message) == (
        TaskState.FINISHED,
        *STOPPED_BEFORE_START,
    )
    assert stopped.message == "stopped by StopTask before it started"
    assert task.spec.target not in agent.storage.images and not agent.storage.partials
    assert agent.store.saved(task.task_id) == stopped


# -- clearing and deleting ---------------------------------------------------------------------


def test_clearing_an_unfinished_task_is_a_failed_precondition(agent: Agent) -> None:
    task = agent.volume()
    with pytest.raises(FailedPrecondition, match="not finished"):
        agent.manager.clear(task.task_id)
    assert task.task_id in agent.store.records


def test_a_cleared_task_is_not_found_and_its_record_is_gone(agent: Agent) -> None:
    task = agent.finished(agent.volume())
    agent.manager.clear(task.task_id)
    with pytest.raises(NotFound, match=task.task_id):
        agent.manager.get(task.task_id)
    with pytest.raises(NotFound):
        agent.manager.clear(task.task_id)
    assert agent.store.records == {} and agent.manager.all_tasks() == []


def test_an_image_in_use_is_not_deleted(agent: Agent) -> None:
    source = agent.finished(agent.volume()).spec.target
    copy = agent.manager.copy_image(new_id(), SD, source.image_id, SD, new_id())
    with pytest.raises(FailedPrecondition, match=copy.task_id):
        agent.manager.delete_image(SD, source.image_id)
    agent.workers.run_all()
    agent.manager.delete_image(SD, source.image_id)
    assert source not in agent.storage.images


@pytest.mark.parametrize("end", ["stop", "shutdown"])
def test_a_task_cleared_as_stop_or_shutdown_lets_go_of_the_lock_never_comes_back(
    end: str,
) -> None:
    lock = HookedLock()
    agent = Agent(lock=lock)
    task = agent.volume()

    def worker_then_clear() -> None:  # what other threads may do the moment the lock is free
        agent.workers.run_all()
        agent.manager.clear(task.task_id)

    def worker_while_ending() -> None:  # the end decided, its record not known durable yet
        agent.workers.run_all()  # a worker that picks the task up does not run it
        with pytest.raises(FailedPrecondition, match="not finished"):
            agent.manager.clear(task.task_id)  # nobody has seen it finished
        assert agent.manager.get(task.task_id).state is TaskState.INIT
        lock.at_next_release(worker_then_clear)  # once its end is durable: finished

    lock.at_next_release(worker_while_ending)
    if end == "stop":
        agent.manager.stop(task.task_id)
    else:
        agent.manager.shutdown()
    agent.workers.run_all()
    assert task.task_id not in agent.store.records
    with pytest.raises(NotFound):
        agent.manager.get(task.task_id)
    assert task.spec.target not in agent.storage.images


def test_a_worker_never_saves_again_a_task_ended_and_cleared_by_someone_else() -> None:
    store = FakeStore()
    runner = TaskRunner(FakeStorage(), store, threading.Lock())
    task = Task(new_id(), new_id(), CreateVolumeSpec(ImageRef(SD, new_id()), 8))
    runner.expect(task)
    runner.finish(task, STOPPED_BEFORE_START)  # ended by StopTask...
    store.delete(task.task_id)  # ...and cleared
    runner.run(task)  # a worker that picks it up late leaves it as it is
    runner.finish(task, SUCCEEDED)  # and one that ends it late neither ends it twice nor saves it
    assert task.task_id not in store.records
    assert (task.result, task.code, task.message) == STOPPED_BEFORE_START


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), Code.RESOURCE_EXHAUSTED),
        (OSError(errno.EIO, "Input/output error"), Code.INTERNAL),
        (VerificationFailed("copy differs"), Code.DATA_LOSS),
        (NotFound("source image vanished"), Code.NOT_FOUND),
        (RuntimeError("a bug"), Code.INTERNAL),
    ],
)
def test_a_failing_job_ends_with_a_reason_and_no_partial(
    agent: Agent, error: Exception, code: Code
) -> None:
    def fail(done: int, total: int) -> None:
        raise error

    agent.storage.during_job = fail
    task = agent.finished(agent.volume())
    assert (task.state, task.result, task.code) == (TaskState.FINISHED, TaskResult.FAILURE, code)
    assert task.message and not agent.storage.partials


# -- shutdown and recovery ---------------------------------------------------------------------


def test_shutdown_ends_queued_tasks_and_refuses_new_ones(agent: Agent) -> None:
    queued = agent.volume()
    agent.manager.shutdown()
    task = agent.manager.get(queued.task_id)
    assert (task.result, task.code) == (TaskResult.CLEAN_FAILURE, Code.UNAVAILABLE)
    with pytest.raises(Unavailable):
        agent.volume()
    again = agent.volume(queued.request_id, queued.spec.target.image_id)
    assert again.task_id == queued.task_id  # an idempotent retry is still answered


def test_shutdown_ending_a_queued_task_as_a_worker_picks_it_up_never_runs_it() -> None:
    lock = HookedLock()
    agent = Agent(lock=lock)
    queued = agent.volume()
    lock.at_next_release(agent.workers.run_all)  # a worker takes the job as shutdown lets go
    agent.manager.shutdown()
    task = agent.manager.get(queued.task_id)
    assert (task.state, task.result, task.code, task.message) == (
        TaskState.FINISHED,
        *SHUT_DOWN_BEFORE_START,
    )
    assert queued.spec.target not in agent.storage.images and not agent.storage.partials
    assert agent.store.saved(queued.task_id) == task


class OneWorker(ThreadPoolExecutor):
    """A pool of one real thread that records which jobs it ran. Its shutdown opens `gate`, which
    holds the running job, only once it has dealt with the queued jobs as it was told to."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__(max_workers=1, thread_name_prefix="test-task")
        self.gate = gate
        self.ran: list[str] = []
        self.futures: list[Future[Any]] = []

    def submit(self, fn, /, *args, **kwargs):
        def job() -> object:
            self.ran.append(args[0].task_id)
            return fn(*args, **kwargs)

        future = super().submit(job)
        self.futures.append(future)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=cancel_futures)
        self.gate.set()
        super().shutdown(wait=wait)


def test_shutdown_does_not_wait_for_queued_jobs_but_waits_for_running_ones() -> None:
    storage = FakeStorage()
    storage.create_domain(SD)
    started, gate = threading.Event(), threading.Event()

    def hold(done: int, total: int) -> None:
        started.set()
        gate.wait(10)  # a safety net only: the pool's shutdown opens the gate

    storage.during_job = hold
    pool = OneWorker(gate)
    manager = TaskManager(storage, FakeStore(), executor=pool)
    running = manager.create_volume(new_id(), SD, new_id(), 8)
    assert started.wait(10)
    queued = manager.create_volume(new_id(), SD, new_id(), 8)
    manager.shutdown()
    assert pool.ran == [running.task_id]  # the queued job never ran
    assert pool.futures[1].cancelled()
    after = manager.get(running.task_id)  # the running one was waited for, and unwound
    assert (after.state, after.result, after.code, after.message) == (
        TaskState.FINISHED,
        *interrupted(shutdown=True),
    )
    assert not storage.partials and storage.images == {}
    ended = manager.get(queued.task_id)
    assert (ended.state, ended.result, ended.code, ended.message) == (
        TaskState.FINISHED,
        *SHUT_DOWN_BEFORE_START,
    )


def test_recovery_ends_running_and_init_tasks_as_clean_failures() -> None:
    storage = FakeStorage()
    queued, running = (
        Task(new_id(), new_id(), CreateVolumeSpec(ImageRef(SD, new_id()), 8), state=state)
        for state in (TaskState.INIT, TaskState.RUNNING)
    )
    storage.partials[(running.spec.target, running.task_id)] = b"half"
    agent = Agent(queued, running, storage=storage)
    for task in (queued, running):
        after = agent.manager.get(task.task_id)
        assert (after.state, after.result, after.code) == (
            TaskState.FINISHED,
            TaskResult.CLEAN_FAILURE,
            Code.UNAVAILABLE,
        )
        assert agent.store.saved(task.task_id) == after
    assert not storage.partials and agent.workers.queued == []


def test_recovery_keeps_an_image_published_before_the_crash() -> None:
    storage = FakeStorage()
    running = Task(
        new_id(), new_id(), CreateVolumeSpec(ImageRef(SD, new_id()), 2), state=TaskState.RUNNING
    )
    queued = Task(new_id(), new_id(), CreateVolumeSpec(ImageRef(SD, new_id()), 2))
    storage.images[running.spec.target] = storage.images[queued.spec.target] = b"xx"
    agent = Agent(running, queued, storage=storage)
    assert agent.manager.get(running.task_id).result is TaskResult.SUCCESS
    # A task still in init wrote nothing: an image there is not its own.
    assert agent.manager.get(queued.task_id).result is TaskResult.CLEAN_FAILURE


def test_recovered_tasks_keep_their_order_and_finished_ones_stay_as_they_were() -> None:
    done = Task(new_id(), new_id(), CreateVolumeSpec(ImageRef(SD, new_id()), 2), accepted_at=2.0)
    done.finish(TaskResult.FAILURE, Code.DATA_LOSS, "did not verify")
    older = Task(new_id(), new_id(), CreateVolumeSpec(ImageRef(SD, new_id()), 2), accepted_at=1.0)
    agent = Agent(done, older)
    assert [t.task_id for t in agent.manager.all_tasks()] == [older.task_id, done.task_id]
    assert agent.manager.get(done.task_id) == done


# -- ids ---------------------------------------------------------------------------------------

BAD = "../etc/passwd"
GOOD = "0f2b6c7e-3d4a-4e5f-8a9b-1c2d3e4f5a6c"


@pytest.mark.parametrize(
    ("field", "call"),
    [
        ("task_id", lambda m: m.get(BAD)),
        ("task_id", lambda m: m.stop("")),
        ("task_id", lambda m: m.clear(BAD)),
        ("storage_domain_id", lambda m: m.create_storage_domain(BAD)),
        ("image_id", lambda m: m.delete_image(SD, BAD)),
        ("request_id", lambda m: m.create_volume(BAD, SD, GOOD, 1)),
        ("storage_domain_id", lambda m: m.create_volume(GOOD, BAD, GOOD, 1)),
        ("image_id", lambda m: m.create_volume(GOOD, SD, GOOD + "/..", 1)),
        ("src_storage_domain_id", lambda m: m.copy_image(GOOD, BAD, GOOD, SD, GOOD)),
        ("src_image_id", lambda m: m.copy_image(GOOD, SD, BAD, SD, GOOD)),
        ("dst_storage_domain_id", lambda m: m.copy_image(GOOD, SD, GOOD, BAD, GOOD)),
        ("dst_image_id", lambda m: m.copy_image(GOOD, SD, GOOD, SD, BAD)),
    ],
)
def test_invalid_ids_are_refused_naming_the_field(
    agent: Agent, field: str, call: Callable[[TaskManager], object]
) -> None:
    with pytest.raises(InvalidArgument) as err:
        call(agent.manager)
    assert err.value.field == field
    assert agent.store.records == {}
