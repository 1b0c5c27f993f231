"""StartTasks on the agent (TaskManager.start_many, and the servicer reading the call): each start
taken as its own RPC would take it, in the order asked, the new tasks' records submitted before
any is waited for (they share one fsync); a call that cannot be read starts nothing and names
the field; the engine's client reads each start's answer, and asks an older agent one start at a
time."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from engine_service.adapters.agent_client import AgentClient, AgentRejected, AgentUnavailable
from service_common.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from tests.unit.test_agent_client_clears import Refused
from tests.unit.test_agent_task_manager import SD, Agent, FakeStore, new_id
from vdsm_agent.domain.tasks import CopyImageSpec, CreateVolumeSpec, ImageRef, Task
from vdsm_agent.entrypoints.grpc_servicer import start_result, task_starts
from vdsm_agent.service_layer.task_manager import MAX_STARTS
from vdsm_agent.v1 import agent_service_pb2 as pb


class GroupStore(FakeStore):
    """A store whose records become durable together when the first of them is waited for:
    `fsyncs` counts those groups, and `waited_before_all_submitted` says whether a record was
    waited for while others of the call were still to be submitted."""

    def __init__(self) -> None:
        super().__init__()
        self.fsyncs = 0
        self._pending: list[Task] = []

    def submit(self, task: Task) -> Any:
        self._pending.append(task)
        store = self

        class Pending:
            def wait(self) -> None:
                if store._pending:
                    store.fsyncs += 1
                    for pending in store._pending:
                        store.save(pending)
                    store._pending.clear()

        return Pending()


def grouped_agent() -> Agent:
    agent = Agent()
    agent.store = GroupStore()
    agent.manager.store = agent.store
    agent.manager._runner.store = agent.store
    return agent


def volume(image_id: str | None = None, sd: str = SD) -> CreateVolumeSpec:
    return CreateVolumeSpec(ImageRef(sd, image_id or new_id()), 8)


def test_each_start_gets_its_own_answer_in_order_and_the_records_share_one_fsync() -> None:
    agent = grouped_agent()
    earlier = agent.volume()
    source = ImageRef(SD, new_id())
    agent.storage.images[source] = b"data"
    taken = new_id()
    starts = [
        (new_id(), CopyImageSpec(source, ImageRef(SD, new_id()))),
        (new_id(), volume(sd=new_id())),  # no such domain: refused, the others taken
        (new_id(), volume(taken)),
        (earlier.request_id, earlier.spec),  # asked before: the same task
        (new_id(), volume(taken)),  # the same image as the third, held by it already
    ]
    fsyncs = agent.store.fsyncs  # type: ignore[attr-defined]
    answers = agent.manager.start_many(starts)
    assert [type(a) for a in answers] == [Task, NotFound, Task, Task, AlreadyExists]
    assert agent.store.fsyncs == fsyncs + 1  # type: ignore[attr-defined]
    copy, _, new, again, _ = answers
    assert isinstance(again, Task) and again.task_id == earlier.task_id
    assert isinstance(copy, Task) and isinstance(new, Task)
    known = [t.task_id for t in agent.manager.all_tasks()]
    assert known == [earlier.task_id, copy.task_id, new.task_id]
    assert {copy.task_id, new.task_id} <= set(agent.store.records)
    agent.workers.run_all()
    assert agent.storage.images[new.spec.target] == b"\0" * 8


def test_the_same_call_again_returns_the_same_tasks() -> None:
    agent = Agent()
    starts = [(new_id(), volume()) for _ in range(3)]
    first = agent.manager.start_many(starts)
    again = agent.manager.start_many(starts)
    assert all(isinstance(t, Task) for t in first + again)
    assert [t.task_id for t in again if isinstance(t, Task)] == [
        t.task_id for t in first if isinstance(t, Task)
    ]


def test_an_agent_shutting_down_takes_none_of_the_call() -> None:
    agent = Agent()
    agent.manager.shutdown()
    with pytest.raises(Unavailable):
        agent.manager.start_many([(new_id(), volume())])
    assert agent.manager.all_tasks() == [] and agent.store.records == {}


def start(verb: str, **fields: Any) -> pb.TaskStart:
    message = {"create_volume": pb.CreateVolumeRequest, "copy_image": pb.CopyImageRequest}[verb]
    return pb.TaskStart(**{verb: message(**fields)})


def good_volume(request_id: str | None = None) -> pb.TaskStart:
    return start(
        "create_volume",
        request_id=request_id or new_id(),
        storage_domain_id=SD,
        image_id=new_id(),
        size_bytes=8,
    )


@pytest.mark.parametrize(
    ("starts", "field"),
    [
        (
            lambda: [
                good_volume(),
                start(
                    "copy_image",
                    request_id=new_id(),
                    src_storage_domain_id=SD,
                    src_image_id=new_id(),
                    dst_storage_domain_id=SD,
                    dst_image_id="../../etc",
                ),
            ],
            r"starts\[1\]\.copy_image\.dst_image_id: ",
        ),
        (lambda: [good_volume(), pb.TaskStart()], r"starts\[1\]: names no task"),
        (lambda: [good_volume("0" * 8)], r"starts\[0\]\.create_volume\.request_id: "),
        (
            lambda: [good_volume(rid := new_id()), good_volume(rid.upper())],
            r"starts\[1\]\.create_volume\.request_id: .* is repeated",
        ),
        (lambda: [good_volume() for _ in range(MAX_STARTS + 1)], r"starts: 65 starts"),
    ],
)
def test_a_call_that_cannot_be_read_names_the_field_and_starts_nothing(
    starts: Any, field: str
) -> None:
    with pytest.raises(InvalidArgument, match=field):
        task_starts(pb.StartTasksRequest(starts=starts()))


def test_a_refused_start_answers_the_code_its_own_rpc_would_have() -> None:
    refused = start_result(NotFound("source image x does not exist"))
    assert (refused.task_id, refused.code) == ("", grpc.StatusCode.NOT_FOUND.value[0])
    assert refused.message == "source image x does not exist"


class StartStub:
    """An agent's stub with or without StartTasks; each start answered by its request id."""

    def __init__(self, batch: bool) -> None:
        self.batch = batch
        self.calls: list[str] = []

    def StartTasks(self, request: Any, timeout: float) -> pb.StartTasksResponse:
        self.calls.append("StartTasks")
        if not self.batch:
            raise Refused(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        return pb.StartTasksResponse(results=[self._answer(s.copy_image) for s in request.starts])

    def CopyImage(self, request: Any, timeout: float) -> pb.CopyImageResponse:
        self.calls.append("CopyImage")
        answer = self._answer(request)
        if answer.code:
            raise Refused(grpc.StatusCode(tuple_of(answer.code)), answer.message)
        return pb.CopyImageResponse(task_id=answer.task_id)

    @staticmethod
    def _answer(request: Any) -> pb.TaskStartResult:
        if request.request_id == "full":
            return pb.TaskStartResult(code=8, message="no room")
        return pb.TaskStartResult(task_id=f"agent-{request.request_id}")


def tuple_of(code: int) -> tuple[int, str]:
    return next(c.value for c in grpc.StatusCode if c.value[0] == code)


@pytest.mark.parametrize("batch", [True, False], ids=["StartTasks", "older agent"])
def test_the_engine_reads_each_start_the_same_from_either_agent(batch: bool) -> None:
    stub = StartStub(batch)
    client = AgentClient("127.0.0.1:9", timeout=0.1)
    client.stub = stub  # type: ignore[assignment]
    try:
        args: dict[str, Any] = {"src_image_id": "s"}
        answers = client.start_tasks([("CopyImage", r, args) for r in ("a", "full", "b")])
        assert answers[0] == "agent-a" and answers[2] == "agent-b"
        refused = answers[1]
        assert isinstance(refused, AgentRejected)
        assert refused.code is grpc.StatusCode.RESOURCE_EXHAUSTED and refused.details == "no room"
        client.start_tasks([("CopyImage", "c", args)])
        expected = ["StartTasks"] * 2 if batch else ["StartTasks"] + ["CopyImage"] * 4
        assert stub.calls == expected  # an older agent is asked StartTasks once only
    finally:
        client.close()


def test_a_start_the_agent_could_not_answer_for_reads_as_unavailable() -> None:
    client = AgentClient("127.0.0.1:9", timeout=0.1)
    try:
        answer = client._start_result(pb.TaskStartResult(code=14, message="shutting down"))
        assert isinstance(answer, AgentUnavailable)
    finally:
        client.close()
