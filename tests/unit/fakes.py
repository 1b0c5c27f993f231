"""In-memory fakes of the engine's adapters for the service-layer unit tests (no database, no
socket, no thread): the repository (fake_repository.py), a unit of work whose changes become
visible only on commit, and fake agents that record every call and can be told to fail."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc

from engine_service.adapters.agent_client import (
    AgentRejected,
    AgentTaskInfo,
    AgentUnavailable,
    Cleared,
)
from engine_service.domain.requests import Conflict
from engine_service.domain.tasks import AsyncTask, ReportedStatus, new_id, written_image
from service_common.vdsm_tasks import TaskResult, TaskState
from tests.unit.fake_repository import FakeRepository, Store

__all__ = [
    "FakeAgentClient",
    "FakeAgentPool",
    "FakeRepository",
    "FakeUnitOfWork",
    "FakeUnitOfWorkFactory",
    "Store",
]


class FakeUnitOfWork:
    """A transaction over a deep copy of the committed store, swapped in on commit."""

    def __init__(self, factory: FakeUnitOfWorkFactory, read_only: bool) -> None:
        self.factory = factory
        self.read_only = read_only

    def __enter__(self) -> FakeUnitOfWork:
        self.repo: Any = FakeRepository(copy.deepcopy(self.factory.store))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.repo = None  # what was not committed is gone

    def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        self.factory.committed(self.repo.store)
        self.repo.store = copy.deepcopy(self.repo.store)  # later changes need another commit


class FakeUnitOfWorkFactory:
    """`uow(read_only=False)`; counts commits, keeps a snapshot of each, can inject Conflicts."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store or Store()
        self.commits = 0
        self.writers_opened = 0  # units opened for writing (BEGIN IMMEDIATE on SQLite)
        self.snapshots: list[Store] = []
        self.on_commit: list[Callable[[], None]] = []
        self._conflicts: list[Callable[[Store], None] | None] = []

    def __call__(self, read_only: bool = False) -> FakeUnitOfWork:
        if not read_only:
            self.writers_opened += 1
        return FakeUnitOfWork(self, read_only)

    def conflict_next_commit(self, meanwhile: Callable[[Store], None] | None = None) -> None:
        """The next commit fails as if a concurrent transaction (`meanwhile`, applied to the
        committed store) had taken a name, a lock or a request id first."""
        self._conflicts.append(meanwhile)

    def committed(self, work: Store) -> None:
        if self._conflicts:
            meanwhile = self._conflicts.pop(0)
            if meanwhile is not None:
                meanwhile(self.store)
            raise Conflict("a concurrent transaction committed first")
        self.store = work
        self.commits += 1
        self.snapshots.append(copy.deepcopy(work))
        for hook in self.on_commit:
            hook()


class FakeAgentClient:
    """One agent: its tasks by agent id, idempotent by request id; every call is recorded in
    its pool's `calls`. `down` makes every call UNAVAILABLE; `fail` makes one method raise."""

    def __init__(self, address: str, pool: FakeAgentPool) -> None:
        self.address = address
        self.pool = pool
        self.infos: dict[str, AgentTaskInfo] = {}
        self.statuses: dict[str, ReportedStatus] = {}
        self.by_request: dict[str, str] = {}
        self.deleted_images: list[tuple[str, str]] = []
        self.down = False
        self.on_start: Callable[[str], None] | None = None  # runs before a task is accepted
        self._failures: dict[str, list[Any]] = {}

    def fail(self, method: str, error: Exception, times: int = -1) -> None:
        """`method` raises `error` on its next `times` calls (-1: always)."""
        self._failures[method] = [error, times]

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [args for a, m, args in self.pool.calls if a == self.address and m == method]

    def _enter(self, method: str, *args: Any) -> None:
        self.pool.calls.append((self.address, method, args))
        if self.down:
            raise AgentUnavailable(f"agent at {self.address}: connection refused")
        failure = self._failures.get(method)
        if failure is not None and failure[1] != 0:
            failure[1] -= 1
            raise failure[0]

    def add_task(
        self,
        request_id: str,
        verb: str,
        image: tuple[str, str],
        state: TaskState = TaskState.RUNNING,
        result: TaskResult = TaskResult.NONE,
    ) -> str:
        """A task this agent holds (accepted from the engine, or a zombie)."""
        vdsm_task_id = new_id()
        self.infos[vdsm_task_id] = AgentTaskInfo(vdsm_task_id, request_id, verb, *image)
        self.by_request[request_id] = vdsm_task_id
        self.report(vdsm_task_id, state, result)
        return vdsm_task_id

    def report(
        self,
        vdsm_task_id: str,
        state: TaskState,
        result: TaskResult = TaskResult.NONE,
        progress: int = 0,
        message: str = "",
    ) -> None:
        self.statuses[vdsm_task_id] = ReportedStatus(vdsm_task_id, state, result, progress, message)

    def start_task(self, verb: str, request_id: str, args: dict[str, Any]) -> str:
        self._check_sent_after_commit([request_id])
        return self._take(verb, request_id, args)

    def _check_sent_after_commit(self, request_ids: Sequence[str]) -> None:
        if self.pool.committed is not None:
            committed = self.pool.committed()
            for request_id in request_ids:
                assert request_id in committed, (
                    f"invariant I1: task {request_id} sent before its placeholder was committed"
                )

    def _take(self, verb: str, request_id: str, args: dict[str, Any]) -> str:
        """A start reaching the agent (alone, or in a StartTasks call)."""
        self._enter("start_task", verb, request_id, dict(args))
        if self.on_start is not None:
            self.on_start(request_id)
        if request_id in self.by_request:
            return self.by_request[request_id]
        return self.add_task(request_id, verb, written_image(verb, args))

    def start_tasks(
        self, starts: Sequence[tuple[str, str, dict[str, Any]]]
    ) -> list[str | AgentRejected | AgentUnavailable]:
        """StartTasks: each start taken as `start_task` takes it (and recorded as one, so that
        `fail("start_task", ...)` refuses a start of a batch); a start made UNAVAILABLE fails the
        whole call after the ones before it were taken, as a reply lost on the way would."""
        self._enter("start_tasks", *(request_id for _, request_id, _ in starts))
        self._check_sent_after_commit([request_id for _, request_id, _ in starts])
        results: list[str | AgentRejected | AgentUnavailable] = []
        for verb, request_id, args in starts:
            try:
                results.append(self._take(verb, request_id, args))
            except AgentRejected as exc:
                results.append(exc)
        return results

    def all_statuses(self, timeout: float | None = None) -> dict[str, ReportedStatus]:
        self._enter("all_statuses")
        return dict(self.statuses)

    def all_info(self, timeout: float | None = None) -> list[AgentTaskInfo]:
        self._enter("all_info")
        return list(self.infos.values())

    def stop_task(self, vdsm_task_id: str) -> None:
        """Stops at once: finished, cleanSuccess."""
        self._enter("stop_task", vdsm_task_id)
        if vdsm_task_id in self.statuses:
            self.report(vdsm_task_id, TaskState.FINISHED, TaskResult.CLEAN_SUCCESS)

    def clear_task(self, vdsm_task_id: str) -> None:
        self._enter("clear_task", vdsm_task_id)
        status = self.statuses.get(vdsm_task_id)
        if status is None:
            raise AgentRejected(grpc.StatusCode.NOT_FOUND, f"no task {vdsm_task_id}")
        if status.state != TaskState.FINISHED:
            raise AgentRejected(grpc.StatusCode.FAILED_PRECONDITION, "task is not finished")
        del self.statuses[vdsm_task_id]
        info = self.infos.pop(vdsm_task_id)
        self.by_request.pop(info.request_id, None)

    def clear_tasks(self, vdsm_task_ids: Sequence[str]) -> dict[str, Cleared]:
        self._enter("clear_tasks", *vdsm_task_ids)
        outcomes = {}
        for vdsm_task_id in vdsm_task_ids:
            status = self.statuses.get(vdsm_task_id)
            if status is None:
                outcomes[vdsm_task_id] = Cleared.NOT_FOUND
            elif status.state != TaskState.FINISHED:
                outcomes[vdsm_task_id] = Cleared.NOT_FINISHED
            else:
                del self.statuses[vdsm_task_id]
                info = self.infos.pop(vdsm_task_id)
                self.by_request.pop(info.request_id, None)
                outcomes[vdsm_task_id] = Cleared.CLEARED
        return outcomes

    def cleared(self) -> list[str]:
        """The agent task ids it was asked to clear, by ClearTask or ClearTasks, in order."""
        return [
            task_id
            for a, method, args in self.pool.calls
            if a == self.address and method in ("clear_task", "clear_tasks")
            for task_id in args
        ]

    def delete_image(self, storage_domain_id: str, image_id: str) -> None:
        self._enter("delete_image", storage_domain_id, image_id)
        self.deleted_images.append((storage_domain_id, image_id))

    def create_storage_domain(self, storage_domain_id: str) -> None:
        self._enter("create_storage_domain", storage_domain_id)

    def serving(self, timeout: float | None = None) -> bool:
        self.pool.calls.append((self.address, "serving", ()))
        return not self.down

    def close(self) -> None:
        pass


class FakeAgentPool:
    """One fake client per address. With `committed` (the committed tasks), every start_task
    asserts that its request id names a committed placeholder (invariant I1)."""

    def __init__(self, committed: Callable[[], Mapping[str, AsyncTask]] | None = None) -> None:
        self.committed = committed
        self.clients: dict[str, FakeAgentClient] = {}
        self.calls: list[tuple[str, str, tuple[Any, ...]]] = []  # (address, method, args)

    def get(self, address: str) -> FakeAgentClient:
        if address not in self.clients:
            self.clients[address] = FakeAgentClient(address, self)
        return self.clients[address]

    def close(self) -> None:
        pass
