"""The engine's client of the hosts' agents (vdsm_agent.v1.AgentService), with a deadline on
every call. Errors become two kinds: the agent could not be reached (worth retrying), or it
answered no (not worth retrying)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from engine_service import observability as metrics
from engine_service.adapters.lease import Fence
from engine_service.domain.tasks import ReportedStatus
from service_common.tls import ClientTls, channel
from service_common.tracing import instrument_channel
from service_common.vdsm_tasks import result_from_wire_name, state_from_wire_name
from vdsm_agent.v1 import agent_service_pb2 as pb
from vdsm_agent.v1 import agent_service_pb2_grpc as pb_grpc

# The shared task words by their numbers on this wire (status_of reports any other number).
_STATES = {
    number: state_from_wire_name(name)
    for name, number in pb.TaskState.items()
    if name != "TASK_STATE_UNSPECIFIED"
}
_RESULTS = {number: result_from_wire_name(name) for name, number in pb.TaskResult.items()}
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}
# A start RPC's name -> its field in a StartTasks call's TaskStart, and its request message.
_STARTS: dict[str, tuple[str, Any]] = {
    "CreateVolume": ("create_volume", pb.CreateVolumeRequest),
    "CopyImage": ("copy_image", pb.CopyImageRequest),
    "RemoveImage": ("remove_image", pb.RemoveImageRequest),
}

Start = tuple[str, str, dict[str, Any]]  # a task start: (verb, request id, arguments)


def _start_request(verb: str, request_id: str, args: dict[str, Any]) -> Any:
    """The request of the start RPC `verb` (CreateVolume, CopyImage, RemoveImage)."""
    try:
        make = _STARTS[verb][1]
    except KeyError:
        raise ValueError(f"unknown agent verb {verb!r}") from None
    return make(request_id=request_id, **args)


class AgentUnavailable(Exception):
    """The agent did not answer (down, unreachable, too slow)."""


class AgentRejected(Exception):
    """The agent answered with an error."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

    @property
    def not_found(self) -> bool:
        return self.code is grpc.StatusCode.NOT_FOUND


AgentTaskStatus = ReportedStatus  # what GetAllTasksStatuses says of one task


class Cleared(StrEnum):
    """What an agent did with a task it was asked to clear."""

    CLEARED = "cleared"
    NOT_FOUND = "not found"  # never accepted, or cleared before: gone all the same
    NOT_FINISHED = "not finished"  # kept by the agent


_CLEARED = {
    pb.CLEAR_OUTCOME_CLEARED: Cleared.CLEARED,
    pb.CLEAR_OUTCOME_NOT_FOUND: Cleared.NOT_FOUND,
    pb.CLEAR_OUTCOME_NOT_FINISHED: Cleared.NOT_FINISHED,
}


@dataclass(frozen=True)
class AgentTaskInfo:
    """What GetAllTasksInfo says of one task: its request id and the image it writes."""

    vdsm_task_id: str
    request_id: str
    verb: str
    storage_domain_id: str
    image_id: str


def statuses_of(reply: pb.GetAllTasksStatusesResponse) -> dict[str, AgentTaskStatus]:
    """The statuses of a GetAllTasksStatuses reply by agent task id, each read on its own: one
    the engine cannot read is reported as such (ReportedStatus.unreadable, under "" if it has
    no task id), and the others stand."""
    return {s.task_id: status_of(s) for s in reply.statuses}


def status_of(s: pb.TaskStatus) -> AgentTaskStatus:
    """One task's status; unreadable if it has no task id, or a state or result this engine
    does not know (a newer agent's, or garbage)."""
    if not s.task_id:
        return ReportedStatus.unreadable("", "a status without a task id")
    if s.state not in _STATES:
        return ReportedStatus.unreadable(s.task_id, f"unknown state {_name(pb.TaskState, s.state)}")
    if s.result not in _RESULTS:
        bad = _name(pb.TaskResult, s.result)
        return ReportedStatus.unreadable(s.task_id, f"unknown result {bad}")
    return ReportedStatus(
        s.task_id, _STATES[s.state], _RESULTS[s.result], s.progress_percent, s.message
    )


def _name(enum: Any, number: int) -> str:
    """An enum value as the wire names it, or its bare number if the wire does not."""
    try:
        return str(enum.Name(number))
    except ValueError:
        return str(number)


class AgentClient:
    """One agent's AgentService, each call with a deadline and two kinds of error. With a
    `fence`, no call goes out once it is closed (this engine lost its lease: LeaseLost)."""

    def __init__(
        self,
        address: str,
        timeout: float = 5.0,
        tls: ClientTls | None = None,
        fence: Fence | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.fence = fence
        self.channel = channel(address, tls)
        self.unbatched: set[str] = set()  # batch RPCs the agent said it has not (older)
        # A span per call, its context sent to the agent, and the standard client metrics.
        self.stub = pb_grpc.AgentServiceStub(instrument_channel(self.channel))

    def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        if self.fence is not None:
            self.fence.check()
        with metrics.AGENT_RPC_SECONDS.labels(method).time():
            try:
                return getattr(self.stub, method)(request, timeout=timeout or self.timeout)
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details() or ""
                metrics.AGENT_RPC_ERRORS.labels(method, code.name).inc()
                if code in _UNREACHABLE:
                    raise AgentUnavailable(f"agent at {self.address}: {details}") from None
                raise AgentRejected(code, details) from None

    def serving(self, timeout: float | None = None) -> bool:
        """Whether an agent answers here. Waits for the channel to connect, up to `timeout`: a
        channel to an agent that was down stays in reconnect backoff, and would fail at once
        although the agent is back (a host re-added after a reboot)."""
        if self.fence is not None:
            self.fence.check()
        try:
            reply = health_pb2_grpc.HealthStub(self.channel).Check(
                health_pb2.HealthCheckRequest(),
                timeout=timeout or self.timeout,
                wait_for_ready=True,
            )
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def create_storage_domain(self, storage_domain_id: str) -> None:
        self._call(
            "CreateStorageDomain",
            pb.CreateStorageDomainRequest(storage_domain_id=storage_domain_id),
        )

    def start_task(self, verb: str, request_id: str, args: dict[str, Any]) -> str:
        """CreateVolume, CopyImage or RemoveImage; returns the agent's task id."""
        return str(self._call(verb, _start_request(verb, request_id, args)).task_id)

    def start_tasks(self, starts: Sequence[Start]) -> list[str | AgentRejected | AgentUnavailable]:
        """`start_task` for each (verb, request id, arguments), in one StartTasks call: each
        start's agent task id, or why it was not taken, in the order asked. AgentUnavailable
        (for the whole call) if the agent did not answer: some starts may have been taken, and
        asking again with the same request ids is safe. An agent without StartTasks (older) is
        asked with one start RPC per task, each answer read the same."""
        reply = self._batched(
            "StartTasks",
            lambda: pb.StartTasksRequest(
                starts=[
                    pb.TaskStart(**{_STARTS[verb][0]: _start_request(verb, request_id, args)})
                    for verb, request_id, args in starts
                ]
            ),
        )
        if reply is not None:
            return [self._start_result(r) for r in reply.results]
        results: list[str | AgentRejected | AgentUnavailable] = []
        for verb, request_id, args in starts:
            try:
                results.append(self.start_task(verb, request_id, args))
            except AgentRejected as exc:
                results.append(exc)
        return results

    def _batched(self, method: str, request: Callable[[], Any]) -> Any | None:
        """The reply of the batch RPC `method` (StartTasks, ClearTasks), or None if the agent
        has not got it (an older one answers UNIMPLEMENTED, remembered: not asked again). The
        caller then asks one task at a time."""
        if method in self.unbatched:
            return None
        try:
            return self._call(method, request())
        except AgentRejected as exc:
            if exc.code is not grpc.StatusCode.UNIMPLEMENTED:
                raise
            self.unbatched.add(method)
            return None

    def _start_result(self, result: Any) -> str | AgentRejected | AgentUnavailable:
        if result.code == 0:
            return str(result.task_id)
        code = _STATUS_CODES.get(result.code, grpc.StatusCode.UNKNOWN)
        if code in _UNREACHABLE:
            return AgentUnavailable(f"agent at {self.address}: {result.message}")
        return AgentRejected(code, result.message)

    def all_statuses(self, timeout: float | None = None) -> dict[str, AgentTaskStatus]:
        reply = self._call("GetAllTasksStatuses", pb.GetAllTasksStatusesRequest(), timeout)
        return statuses_of(reply)

    def all_info(self, timeout: float | None = None) -> list[AgentTaskInfo]:
        reply = self._call("GetAllTasksInfo", pb.GetAllTasksInfoRequest(), timeout)
        return [
            AgentTaskInfo(t.task_id, t.request_id, t.verb, t.storage_domain_id, t.image_id)
            for t in reply.tasks
        ]

    def stop_task(self, vdsm_task_id: str) -> None:
        self._call("StopTask", pb.StopTaskRequest(task_id=vdsm_task_id))

    def clear_task(self, vdsm_task_id: str) -> None:
        self._call("ClearTask", pb.ClearTaskRequest(task_id=vdsm_task_id))

    def clear_tasks(self, vdsm_task_ids: Sequence[str]) -> dict[str, Cleared]:
        """ClearTask for each, in one call: what the agent did with each task. An agent without
        ClearTasks (older) is asked with one ClearTask per task, each answer read the same."""
        reply = self._batched(
            "ClearTasks", lambda: pb.ClearTasksRequest(task_ids=list(vdsm_task_ids))
        )
        if reply is not None:
            return {r.task_id: _CLEARED.get(r.outcome, Cleared.NOT_FINISHED) for r in reply.results}
        cleared = {}
        for vdsm_task_id in vdsm_task_ids:
            try:
                self.clear_task(vdsm_task_id)
                cleared[vdsm_task_id] = Cleared.CLEARED
            except AgentRejected as exc:
                if exc.not_found:
                    cleared[vdsm_task_id] = Cleared.NOT_FOUND
                elif exc.code is grpc.StatusCode.FAILED_PRECONDITION:
                    cleared[vdsm_task_id] = Cleared.NOT_FINISHED
                else:
                    raise
        return cleared

    def delete_image(self, storage_domain_id: str, image_id: str) -> None:
        self._call(
            "DeleteImage",
            pb.DeleteImageRequest(storage_domain_id=storage_domain_id, image_id=image_id),
        )

    def close(self) -> None:
        self.channel.close()


class AgentPool:
    """One client per agent address, made on first use (all behind one `fence`, if any)."""

    def __init__(
        self, timeout: float = 5.0, tls: ClientTls | None = None, fence: Fence | None = None
    ) -> None:
        self.timeout = timeout
        self.tls = tls
        self.fence = fence
        self._clients: dict[str, AgentClient] = {}
        self._lock = threading.Lock()

    def get(self, address: str) -> AgentClient:
        with self._lock:
            client = self._clients.get(address)
            if client is None:
                client = self._clients[address] = AgentClient(
                    address, self.timeout, self.tls, self.fence
                )
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
