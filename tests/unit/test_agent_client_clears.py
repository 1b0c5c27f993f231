"""The engine's ClearTasks call (AgentClient.clear_tasks): the agent's outcome for each task,
and an agent without ClearTasks (an older one) asked with one ClearTask per task instead, the
answers read the same way. The client's stub is a fake: no call leaves the process."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from engine_service.adapters.agent_client import AgentClient, AgentRejected, Cleared
from vdsm_agent.v1 import agent_service_pb2 as pb


class Refused(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class Stub:
    """An agent's stub: with or without ClearTasks; ClearTask answers by `tasks`."""

    def __init__(self, tasks: dict[str, str], batch: bool) -> None:
        self.tasks, self.batch = tasks, batch
        self.calls: list[tuple[str, Any]] = []

    def ClearTasks(self, request: Any, timeout: float) -> pb.ClearTasksResponse:
        self.calls.append(("ClearTasks", list(request.task_ids)))
        if not self.batch:
            raise Refused(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        outcome = {
            "done": pb.CLEAR_OUTCOME_CLEARED,
            "running": pb.CLEAR_OUTCOME_NOT_FINISHED,
        }
        return pb.ClearTasksResponse(
            results=[
                pb.ClearTaskResult(
                    task_id=t,
                    outcome=outcome.get(self.tasks.get(t, ""), pb.CLEAR_OUTCOME_NOT_FOUND),
                )
                for t in request.task_ids
            ]
        )

    def ClearTask(self, request: Any, timeout: float) -> pb.ClearTaskResponse:
        self.calls.append(("ClearTask", request.task_id))
        state = self.tasks.get(request.task_id)
        if state is None:
            raise Refused(grpc.StatusCode.NOT_FOUND, "no such task")
        if state == "running":
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, "not finished")
        if state == "broken":
            raise Refused(grpc.StatusCode.INTERNAL, "disk on fire")
        return pb.ClearTaskResponse()


TASKS = {"a": "done", "b": "running"}
EXPECTED = {"a": Cleared.CLEARED, "b": Cleared.NOT_FINISHED, "c": Cleared.NOT_FOUND}


def client_of(stub: Stub) -> AgentClient:
    client = AgentClient("127.0.0.1:9", timeout=0.1)
    client.stub = stub  # type: ignore[assignment]
    return client


@pytest.mark.parametrize("batch", [True, False], ids=["ClearTasks", "older agent"])
def test_each_tasks_outcome_is_read_the_same_from_either_agent(batch: bool) -> None:
    stub = Stub(dict(TASKS), batch)
    client = client_of(stub)
    try:
        assert client.clear_tasks(["a", "b", "c"]) == EXPECTED
        assert client.clear_tasks(["a"]) == {"a": Cleared.CLEARED}
    finally:
        client.close()
    if batch:
        assert [m for m, _ in stub.calls] == ["ClearTasks", "ClearTasks"]
    else:  # asked once whether it has ClearTasks, then one ClearTask per task
        assert [m for m, _ in stub.calls] == ["ClearTasks"] + ["ClearTask"] * 4


def test_an_older_agents_other_refusal_is_raised() -> None:
    client = client_of(Stub({"x": "broken"}, batch=False))
    try:
        with pytest.raises(AgentRejected, match="disk on fire"):
            client.clear_tasks(["x"])
    finally:
        client.close()
