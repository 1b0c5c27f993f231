"""Small client-side helpers for the agent's API, for tests and demos."""

from __future__ import annotations

import time
from collections.abc import Callable

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
    deadline = time.monotonic() + timeout
    while True:
        status = task_status(stub, task_id)
        if until(status):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"task {task_id} still {pb.TaskState.Name(status.state)} "
                f"at {status.progress_percent}% after {timeout}s"
            )
        time.sleep(interval)
