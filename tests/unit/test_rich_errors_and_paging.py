"""Rich error statuses (google.rpc details beside the message), how enginectl prints them,
paging hosts and storage domains by name, and cancel's precondition (no sockets: fakes)."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry, Histogram

from engine_service.adapters.agent_client import AgentPool
from engine_service.domain.commands import CommandStatus, Outcome
from engine_service.entrypoints.cli.calls import fail
from engine_service.service_layer.inventory import Inventory
from service_common.errors import FailedPrecondition, InvalidArgument, NotFound
from service_common.grpc_server import error_mapper
from service_common.rich_errors import rich_status, violations
from tests.unit.world import World


class FakeContext:
    """What error_mapper uses of a grpc.ServicerContext: abort, abort_with_status, code."""

    def __init__(self) -> None:
        self.status: grpc.Status | None = None
        self._code: grpc.StatusCode | None = None

    def abort_with_status(self, status: grpc.Status) -> None:
        self.status, self._code = status, status.code
        raise RuntimeError("aborted")

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self._code = code
        raise RuntimeError("aborted")

    def code(self) -> grpc.StatusCode | None:
        return self._code


class FailedCall(grpc.RpcError):
    """A failed call as a client sees it, from the status a server aborted with."""

    def __init__(self, status: grpc.Status) -> None:
        self.status = status

    def code(self) -> grpc.StatusCode:
        return self.status.code

    def details(self) -> str:
        return self.status.details

    def trailing_metadata(self) -> Any:
        return self.status.trailing_metadata


def aborted_with(exc: Exception) -> grpc.Status:
    histogram = Histogram("t_rpc_seconds", "", ["method", "code"], registry=CollectorRegistry())

    class Servicer:
        @error_mapper(histogram, logging.getLogger("test"))
        def Call(self, request: Any, context: Any) -> Any:
            raise exc

    context = FakeContext()
    with pytest.raises(RuntimeError, match="aborted"):
        Servicer().Call(None, context)
    assert context.status is not None
    return context.status


def details(status: grpc.Status) -> list[Any]:
    found = rpc_status.from_call(FailedCall(status))
    assert found is not None
    return list(found.details)


def test_a_bad_argument_keeps_its_message_and_carries_a_bad_request_naming_the_field() -> None:
    status = aborted_with(InvalidArgument("name", "is required"))

    assert (status.code, status.details) == (grpc.StatusCode.INVALID_ARGUMENT, "name: is required")
    (detail,) = details(status)
    bad = error_details_pb2.BadRequest()
    assert detail.Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [("name", "is required")]


def test_a_failed_precondition_carries_its_subject_and_kind() -> None:
    exc = FailedPrecondition("command c1 is already CANCELLED", subject="commands/c1", kind="X")
    status = aborted_with(exc)

    assert status.details == "command c1 is already CANCELLED"
    (detail,) = details(status)
    failure = error_details_pb2.PreconditionFailure()
    assert detail.Unpack(failure)
    (violation,) = failure.violations
    assert (violation.type, violation.subject) == ("X", "commands/c1")
    assert violation.description == "command c1 is already CANCELLED"


def test_other_errors_keep_their_plain_status() -> None:
    status = aborted_with(NotFound("host_id: no host h1"))
    assert (status.code, status.details) == (grpc.StatusCode.NOT_FOUND, "host_id: no host h1")
    assert details(status) == []


def test_enginectl_prints_the_violations_under_the_status(capsys: Any) -> None:
    call = FailedCall(rich_status(grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument("name", "x")))
    with pytest.raises(SystemExit) as exited:
        fail(call)
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: INVALID_ARGUMENT: name: x\n  field name: x\n"
    state = FailedPrecondition("it ended", subject="commands/c1", kind="ALREADY_FAILED")
    call = FailedCall(rich_status(grpc.StatusCode.FAILED_PRECONDITION, state))
    assert violations(call) == ["ALREADY_FAILED commands/c1: it ended"]


def test_enginectl_prints_a_plain_status_alone(capsys: Any) -> None:
    plain = FailedCall(aborted_with(NotFound("host_id: no host h1")))
    assert violations(plain) == []
    with pytest.raises(SystemExit) as exited:
        fail(plain)
    assert exited.value.code == 3
    assert capsys.readouterr().err == "error: NOT_FOUND: host_id: no host h1\n"


def test_cancelling_a_terminal_command_names_it_and_its_status() -> None:
    w = World()
    w.host()
    command_id = w.add_disk(w.domain())
    assert w.lifecycle.finish(command_id, Outcome(CommandStatus.CANCELLED, "by a test"))

    with pytest.raises(FailedPrecondition) as refused:
        w.lifecycle.cancel(command_id)

    assert str(refused.value) == f"command {command_id} is already CANCELLED"
    assert (refused.value.subject, refused.value.kind) == (
        f"commands/{command_id}",
        "ALREADY_CANCELLED",
    )


def all_pages(list_page: Any, size: int) -> list[list[str]]:
    pages, token = [], ""
    while True:
        rows, token = list_page(size, token)
        pages.append([getattr(r, "host", r).name for r in rows])
        if not token:
            return pages


def test_hosts_and_domains_are_paged_by_name() -> None:
    w = World()
    for name in ["h5", "h1", "h4", "h2", "h3"]:
        w.host(name)
        w.domain(f"sd-{name}")
    inventory = Inventory(w.uow, AgentPool())

    assert all_pages(inventory.host_page, 2) == [["h1", "h2"], ["h3", "h4"], ["h5"]]
    assert all_pages(inventory.host_page, 5) == [["h1", "h2", "h3", "h4", "h5"]]
    assert all_pages(inventory.host_page, 0) == [["h1", "h2", "h3", "h4", "h5"]]  # default 50
    assert all_pages(inventory.storage_domain_page, 3) == [
        ["sd-h1", "sd-h2", "sd-h3"],
        ["sd-h4", "sd-h5"],
    ]


def test_a_page_token_of_another_listing_or_none_at_all_is_refused() -> None:
    w = World()
    w.host("h1")
    w.host("h2")
    inventory = Inventory(w.uow, AgentPool())
    _, token = inventory.host_page(1, "")
    with pytest.raises(InvalidArgument, match="page_token"):
        inventory.storage_domain_page(1, token)
    with pytest.raises(InvalidArgument, match="page_token"):
        inventory.host_page(1, "not-a-token")
    with pytest.raises(InvalidArgument, match="page_size"):
        inventory.host_page(-1, "")
