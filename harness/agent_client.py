"""Small client-side helpers for the agent's API, for tests and demos."""

from __future__ import annotations

from collections.abc import Callable

from harness.waiting import poll_until
from vdsm_agent.v1 import agent_service_pb2 as pb
from vdsm_agent.v1 import agent_service_pb2_grpc as pb_grpc

RPC_TIMEOUT = 10.0


def task_status(stub: pb_grpc.AgentServiceStub, task_id: str) -> pb.TaskStatus:
    reply = stub.GetTaskStatus(pb.GetTaskStatusRequest(task_id=task_id), timeout=RPC_TIMEOUT)
    return reply.status


def wait_task(
    stub: pb_grpc.AgentServiceStub,
    task_id: str,
    until: Callable[[pb.TaskStatus], bool] = lambda s: s.state == pb.TASK_STATE_FINISHED,
    timeout: float = 60.0,
    interval: float = 0.05,
) -> pb.TaskStatus:
    """Poll GetTaskStatus until `until(status)` holds (default: finished); return that status."""
    return poll_until(
        lambda: task_status(stub, task_id),
        until,
        timeout,
        interval,
        lambda s: f"task {task_id} still {pb.TaskState.Name(s.state)} at {s.progress_percent}%",
    )
