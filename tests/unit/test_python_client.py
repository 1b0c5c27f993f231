"""The Python client's rules without a server: retries on UNAVAILABLE only, one request id per
logical call kept on every attempt, failover between addresses, pages followed, a watch that
resumes, and rich error details decoded. The stubs are fakes that answer from a script."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from durable_virt_tasks_client import CallError, EngineClient, RetryPolicy, pb
from durable_virt_tasks_client.channels import is_loopback


class Failure(grpc.RpcError):
    """What a failed call raises: a status, a message, and maybe rich details."""

    def __init__(
        self, code: grpc.StatusCode, message: str = "", trailers: tuple[Any, ...] = ()
    ) -> None:
        self._code, self._message, self._trailers = code, message, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self) -> tuple[Any, ...]:
        return self._trailers


UNAVAILABLE = Failure(grpc.StatusCode.UNAVAILABLE, "engine not ready")


class ScriptedStub:
    """Each RPC answers the next entry of its script: an exception to raise or a reply."""

    def __init__(self, **scripts: list[Any]) -> None:
        self.scripts = scripts
        self.calls: list[tuple[str, Any, Any]] = []

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_") or method not in self.scripts:
            raise AttributeError(method)

        def invoke(request: Any, timeout: float | None = None, metadata: Any = None) -> Any:
            request_copy = type(request)()
            request_copy.CopyFrom(request)
            self.calls.append((method, request_copy, metadata))
            answer = self.scripts[method].pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return invoke


def client(*stubs: ScriptedStub, **kwargs: Any) -> tuple[EngineClient, list[float]]:
    slept: list[float] = []
    ids = iter(f"id-{n}" for n in range(100))
    made = EngineClient(
        list(stubs),
        sleep=slept.append,
        new_request_id=lambda: next(ids),
        rng=random.Random(7),
        **kwargs,
    )
    return made, slept


def command(command_id: str, status: int = pb.COMMAND_STATUS_ACTIVE, progress: int = 0) -> Any:
    return pb.Command(command_id=command_id, status=status, progress_percent=progress)  # type: ignore[arg-type]


def add_disk_reply(command_id: str = "c1") -> pb.AddDiskResponse:
    return pb.AddDiskResponse(disk=pb.Disk(disk_id="d1"), command=command(command_id))


def test_an_unavailable_create_is_retried_with_the_same_request_id() -> None:
    stub = ScriptedStub(AddDisk=[UNAVAILABLE, UNAVAILABLE, add_disk_reply()])
    engine, slept = client(stub)

    disk, made = engine.add_disk("disk1", "sd1", 1024)

    assert (disk.disk_id, made.command_id) == ("d1", "c1")
    ids = [request.request_id for _, request, _ in stub.calls]
    assert ids == ["id-0", "id-0", "id-0"], "one logical call, one request id"
    assert len(slept) == 2 and 0 < slept[0] <= 0.1 and slept[0] < slept[1] <= 0.2


def test_a_request_id_the_caller_gives_is_kept() -> None:
    stub = ScriptedStub(AddDisk=[UNAVAILABLE, add_disk_reply()])
    engine, _ = client(stub)

    engine.add_disk("disk1", "sd1", 1024, request_id="mine")

    assert [r.request_id for _, r, _ in stub.calls] == ["mine", "mine"]


def test_each_logical_call_gets_its_own_request_id() -> None:
    stub = ScriptedStub(AddDisk=[add_disk_reply("c1"), add_disk_reply("c2")])
    engine, _ = client(stub)

    engine.add_disk("disk1", "sd1", 1024)
    engine.add_disk("disk2", "sd1", 1024)

    assert [r.request_id for _, r, _ in stub.calls] == ["id-0", "id-1"]


def test_reads_carry_no_request_id() -> None:
    stub = ScriptedStub(GetCommand=[pb.GetCommandResponse(command=command("c1"))])
    engine, _ = client(stub)

    engine.get_command("c1")

    (_, request, _) = stub.calls[0]
    assert "request_id" not in request.DESCRIPTOR.fields_by_name


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
    ],
)
def test_other_failures_are_not_retried(code: grpc.StatusCode) -> None:
    stub = ScriptedStub(AddDisk=[Failure(code, "no"), add_disk_reply()])
    engine, slept = client(stub)

    with pytest.raises(CallError) as raised:
        engine.add_disk("disk1", "sd1", 1024)

    assert (raised.value.code, raised.value.attempts, slept) == (code, 1, [])
    assert len(stub.calls) == 1
    assert str(raised.value) == f"AddDisk: {code.name}: no"


def test_the_policy_bounds_the_attempts() -> None:
    policy = RetryPolicy(attempts=3, initial_backoff=0.5, max_backoff=0.8, jitter=0)
    stub = ScriptedStub(GetCommand=[UNAVAILABLE] * 5)
    engine, slept = client(stub, retry=policy)

    with pytest.raises(CallError) as raised:
        engine.get_command("c1")

    assert raised.value.code == grpc.StatusCode.UNAVAILABLE and raised.value.attempts == 3
    assert slept == [0.5, 0.8]
    assert len(stub.calls) == 3


def test_an_unavailable_address_gives_way_to_the_next() -> None:
    """An active engine and its standby: the one that answers UNAVAILABLE (not ready) is left
    for the other, which then stays the preferred one."""
    standby = ScriptedStub(GetCommand=[UNAVAILABLE])
    active = ScriptedStub(
        GetCommand=[pb.GetCommandResponse(command=command("c1"))] * 2,
    )
    engine, _ = client(standby, active)

    engine.get_command("c1")
    engine.get_command("c1")

    assert (len(standby.calls), len(active.calls)) == (1, 2)


def test_a_token_rides_as_metadata_on_every_attempt() -> None:
    stub = ScriptedStub(GetCommand=[UNAVAILABLE, pb.GetCommandResponse(command=command("c1"))])
    engine, _ = client(stub, metadata=[("authorization", "Bearer s3cret")])

    engine.get_command("c1")

    assert [m for _, _, m in stub.calls] == [(("authorization", "Bearer s3cret"),)] * 2


def test_remove_host_that_a_lost_reply_removed_is_done() -> None:
    gone = Failure(grpc.StatusCode.NOT_FOUND, "host h1 not found")
    stub = ScriptedStub(RemoveHost=[UNAVAILABLE, gone])
    engine, _ = client(stub)

    engine.remove_host("h1")  # the first attempt's reply was lost; the host is gone: done

    never = ScriptedStub(RemoveHost=[gone])
    first, _ = client(never)
    with pytest.raises(CallError) as raised:
        first.remove_host("h1")  # never there
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_lists_follow_every_page() -> None:
    stub = ScriptedStub(
        ListHosts=[
            pb.ListHostsResponse(
                hosts=[pb.Host(name="a"), pb.Host(name="b")], next_page_token="p2"
            ),
            UNAVAILABLE,
            pb.ListHostsResponse(hosts=[pb.Host(name="c")]),
        ]
    )
    engine, _ = client(stub)

    assert [h.name for h in engine.hosts(page_size=2)] == ["a", "b", "c"]
    assert [r.page_token for _, r, _ in stub.calls] == ["", "p2", "p2"]


def test_command_filters_become_the_request() -> None:
    stub = ScriptedStub(ListCommands=[pb.ListCommandsResponse()])
    engine, _ = client(stub)
    after = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)

    list(engine.commands(action_type="AddDisk", host_id="h1", created_after=after))

    (_, request, _) = stub.calls[0]
    assert (request.action_type, request.host_id) == ("AddDisk", "h1")
    assert request.created_after.ToDatetime(tzinfo=UTC) == after
    assert not request.HasField("ended_before")
    with pytest.raises(ValueError, match="created_before"):
        list(engine.commands(created_before=datetime(2026, 12, 1)))  # naive: ambiguous


class Stream:
    """A server stream: yields its replies, then raises `error` if given."""

    def __init__(self, replies: list[Any], error: BaseException | None = None) -> None:
        self.replies, self.error = replies, error

    def __iter__(self) -> Iterator[Any]:
        yield from self.replies
        if self.error is not None:
            raise self.error


def test_a_dropped_watch_resumes_without_repeating_a_state() -> None:
    def reply(progress: int, status: int = pb.COMMAND_STATUS_ACTIVE) -> Any:
        return pb.WatchCommandResponse(command=command("c1", status, progress))

    stub = ScriptedStub(
        WatchCommand=[
            Stream([reply(0), reply(40)], UNAVAILABLE),  # the engine restarted mid-stream
            Stream([reply(40), reply(100, pb.COMMAND_STATUS_SUCCEEDED)]),
        ]
    )
    engine, slept = client(stub)

    seen = [(c.progress_percent, c.status) for c in engine.watch("c1")]

    assert seen == [
        (0, pb.COMMAND_STATUS_ACTIVE),
        (40, pb.COMMAND_STATUS_ACTIVE),
        (100, pb.COMMAND_STATUS_SUCCEEDED),
    ]
    assert len(slept) == 1


def test_wait_polls_until_the_command_has_ended() -> None:
    stub = ScriptedStub(
        GetCommand=[
            pb.GetCommandResponse(command=command("c1")),
            UNAVAILABLE,
            pb.GetCommandResponse(command=command("c1", pb.COMMAND_STATUS_FAILED)),
        ]
    )
    engine, _ = client(stub)

    assert engine.wait("c1").status == pb.COMMAND_STATUS_FAILED


def rich(code: grpc.StatusCode, message: str, *details: Any) -> Failure:
    packed = []
    for detail in details:
        wrapped = any_pb2.Any()
        wrapped.Pack(detail)
        packed.append(wrapped)
    status = rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=message, details=packed)
    )
    return Failure(code, message, status.trailing_metadata)


def test_a_bad_field_and_a_failed_precondition_are_decoded() -> None:
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="name", description="empty")
        ]
    )
    locked = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type="LOCKED", subject="disk d1", description="disk d1 is locked"
            )
        ]
    )
    stub = ScriptedStub(
        AddDisk=[rich(grpc.StatusCode.INVALID_ARGUMENT, "name: empty", bad)],
        AddVmTemplate=[rich(grpc.StatusCode.FAILED_PRECONDITION, "disk d1 is locked", locked)],
    )
    engine, _ = client(stub)

    with pytest.raises(CallError) as invalid:
        engine.add_disk("", "sd1", 1)
    with pytest.raises(CallError) as precondition:
        engine.add_vm_template("vm1", "t1", "sd1")

    assert [(v.field, v.description) for v in invalid.value.field_violations] == [("name", "empty")]
    (violation,) = precondition.value.precondition_violations
    assert (violation.type, violation.subject) == ("LOCKED", "disk d1")


def test_plaintext_is_refused_off_loopback_unless_insecure() -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        EngineClient.connect("engine.example:50051")
    with pytest.raises(ValueError, match="no address"):
        EngineClient.connect(" , ")
    assert is_loopback("127.0.0.1:50051") and is_loopback("[::1]:50051")
    assert is_loopback("localhost:50051") and not is_loopback("10.0.0.5:50051")


def test_the_policy_waits_grow_to_their_cap_with_jitter_below() -> None:
    policy = RetryPolicy(attempts=6, initial_backoff=0.1, max_backoff=1.0, jitter=0.5)
    waits = list(policy.waits(random.Random(1)))

    assert len(waits) == 5
    caps = [0.1, 0.2, 0.4, 0.8, 1.0]
    assert all(cap / 2 <= wait <= cap for wait, cap in zip(waits, caps, strict=True))
    for bad in (
        {"attempts": 0},
        {"initial_backoff": 2.0, "max_backoff": 1.0},
        {"multiplier": 0.5},
        {"jitter": 1.5},
    ):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)
