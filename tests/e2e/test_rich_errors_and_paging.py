"""Against a real engine and agent: rich error details (google.rpc.BadRequest,
PreconditionFailure) beside the messages clients read, enginectl printing them, and
ListHosts / ListStorageDomains paged by name."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from engine_service.v1 import engine_service_pb2 as pb
from harness.enginectl import run as ctl
from harness.scenario import DataCenter

T = 30
MiB = 1 << 20


@pytest.fixture
def dc(agent_factory, engine_factory) -> DataCenter:
    dc = DataCenter(engine_factory(), [agent_factory("host1")])
    dc.register_hosts()
    return dc


def refusal(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call(request, timeout=T)
    return refused.value


def test_a_bad_argument_names_its_field_in_a_bad_request(dc: DataCenter) -> None:
    sd = dc.add_domain("data1")
    exc = refusal(dc.stub.AddDisk, pb.AddDiskRequest(name="", storage_domain_id=sd, size_bytes=1))

    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.details() == "name: is required"  # the message as before
    status = rpc_status.from_call(exc)
    assert status is not None and len(status.details) == 1
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [("name", "is required")]


def test_cancelling_an_ended_command_is_a_precondition_failure_naming_it(dc: DataCenter) -> None:
    sd = dc.add_domain("data1")
    reply = dc.stub.AddDisk(
        pb.AddDiskRequest(name="d", storage_domain_id=sd, size_bytes=MiB), timeout=T
    )
    command_id = reply.command.command_id
    dc.wait_settled()

    exc = refusal(dc.stub.CancelCommand, pb.CancelCommandRequest(command_id=command_id))

    assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert exc.details() == f"command {command_id} is already SUCCEEDED"
    status = rpc_status.from_call(exc)
    assert status is not None
    failure = error_details_pb2.PreconditionFailure()
    assert status.details[0].Unpack(failure)
    assert [(v.type, v.subject) for v in failure.violations] == [
        ("ALREADY_SUCCEEDED", f"commands/{command_id}")
    ]


def test_enginectl_prints_the_violations(dc: DataCenter) -> None:
    sd = dc.add_domain("data1")
    bad = ctl(dc.engine.address, "disk", "add", "", "--domain", sd, "--size", "1MiB")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "error: INVALID_ARGUMENT: name: is required",
        "  field name: is required",
    ]
    gone = str(uuid.uuid4())
    missing = ctl(dc.engine.address, "host", "remove", gone)
    assert missing.returncode == 3
    assert missing.stderr.splitlines() == [f"error: NOT_FOUND: host_id: no host {gone}"]


def test_hosts_and_domains_are_listed_a_page_at_a_time(dc: DataCenter) -> None:
    for name in ["c", "a", "b"]:
        dc.add_domain(name)
    first = dc.stub.ListStorageDomains(pb.ListStorageDomainsRequest(page_size=2), timeout=T)
    assert [d.name for d in first.storage_domains] == ["a", "b"] and first.next_page_token
    rest = dc.stub.ListStorageDomains(
        pb.ListStorageDomainsRequest(page_size=2, page_token=first.next_page_token), timeout=T
    )
    assert [d.name for d in rest.storage_domains] == ["c"] and not rest.next_page_token
    hosts = dc.stub.ListHosts(pb.ListHostsRequest(page_size=1), timeout=T)
    assert [h.name for h in hosts.hosts] == ["host1"] and not hosts.next_page_token
    exc = refusal(dc.stub.ListHosts, pb.ListHostsRequest(page_token=first.next_page_token))
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = ctl(dc.engine.address, "domain", "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == ["a", "b", "c"]


def test_set_host_maintenance_twice_is_idempotent(dc: DataCenter) -> None:
    host_id = dc.hosts["host1"].host_id
    request = pb.SetHostMaintenanceRequest(host_id=host_id, maintenance=True)
    first = dc.stub.SetHostMaintenance(request, timeout=T).host
    again = dc.stub.SetHostMaintenance(request, timeout=T).host
    assert first.status == again.status == pb.HOST_STATUS_MAINTENANCE
    dc.stub.RemoveHost(pb.RemoveHostRequest(host_id=host_id), timeout=T)
    retried = refusal(dc.stub.RemoveHost, pb.RemoveHostRequest(host_id=host_id))
    assert retried.code() == grpc.StatusCode.NOT_FOUND  # documented: the host is gone
