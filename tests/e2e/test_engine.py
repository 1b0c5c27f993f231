"""The real engine and agent processes: commands end to end over SQLite files."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import grpc
import pytest

from engine_service.v1 import engine_service_pb2 as pb
from harness.engine_client import wait_command
from harness.invariants import assert_settled, database_state

MiB = 1 << 20
T = 30


def new_id() -> str:
    return str(uuid.uuid4())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(request, timeout=T)
    return err.value


def test_template_of_three_disks_succeeds_with_identical_copies(make_dc) -> None:
    dc, vm, src, dst = make_dc()
    stub = dc.stub
    sources = [dc.disk(d) for d in stub.GetVm(pb.GetVmRequest(vm_id=vm), timeout=T).vm.disk_ids]
    reply = dc.start_template(vm, "golden", dst)
    assert reply.template.status == pb.TEMPLATE_STATUS_LOCKED
    assert reply.command.status == pb.COMMAND_STATUS_ACTIVE
    assert len(reply.command.child_commands) == 3
    assert {c.action_type for c in reply.command.child_commands} == {"CreateImageTemplate"}
    # Every placeholder got its agent id before AddVmTemplate returned.
    assert len(reply.command.tasks) == 3
    assert all(t.vdsm_task_id and t.verb == "CopyImage" for t in reply.command.tasks)
    assert {t.task_id for t in reply.command.tasks}.isdisjoint(
        {t.vdsm_task_id for t in reply.command.tasks}
    )
    assert {dc.disk(d.disk_id).status for d in sources} == {pb.DISK_STATUS_LOCKED}

    command = wait_command(stub, reply.command.command_id)
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    assert command.progress_percent == 100 and command.failure_reason == ""
    assert command.ended_at.seconds > 0
    template = stub.GetVmTemplate(
        pb.GetVmTemplateRequest(template_id=reply.template.template_id), timeout=T
    ).template
    assert template.status == pb.TEMPLATE_STATUS_OK
    assert list(stub.ListVmTemplates(pb.ListVmTemplatesRequest(), timeout=T).templates) == [
        template
    ]
    assert list(reply.template.disk_ids) == list(template.disk_ids)
    copies = [dc.disk(d) for d in template.disk_ids]
    assert [c.status for c in copies] == [pb.DISK_STATUS_OK] * 3
    assert {c.storage_domain_id for c in copies} == {dst}
    for source, copy in zip(sources, copies, strict=True):
        assert sha256(dc.image_path(copy)) == sha256(dc.image_path(source))
        assert dc.disk(source.disk_id).status == pb.DISK_STATUS_OK
    assert dc.agent_tasks() == []  # every task cleared on the agent
    assert not any(name.endswith(".partial") for name in dc.image_files())
    assert_settled(dc.engine.database_url)  # no lock, no task row left


def test_add_disk_and_reads(make_dc) -> None:
    dc, vm, src, dst = make_dc(disks=1)
    stub = dc.stub
    reply = stub.AddDisk(
        pb.AddDiskRequest(name="scratch", storage_domain_id=dst, size_bytes=3 * MiB + 5), timeout=T
    )
    assert reply.disk.status == pb.DISK_STATUS_LOCKED
    assert reply.command.action_type == "AddDisk"
    assert [c.action_type for c in reply.command.child_commands] == ["CreateVolume"]
    done = wait_command(stub, reply.command.command_id)
    assert done.status == pb.COMMAND_STATUS_SUCCEEDED
    disk = dc.disk(reply.disk.disk_id)
    assert disk.status == pb.DISK_STATUS_OK
    assert dc.image_path(disk).stat().st_size == 3 * MiB + 5
    listed = stub.ListDisks(pb.ListDisksRequest(), timeout=T).disks
    assert reply.disk.disk_id in {d.disk_id for d in listed}
    assert [h.name for h in stub.ListHosts(pb.ListHostsRequest(), timeout=T).hosts] == ["host1"]
    domains = stub.ListStorageDomains(pb.ListStorageDomainsRequest(), timeout=T).storage_domains
    assert [d.name for d in domains] == ["data1", "data2"]


def test_list_commands_pages_and_filters(make_dc) -> None:
    dc, vm, src, dst = make_dc(disks=1)
    stub = dc.stub
    for i in range(4):
        dc.add_disk(src, 4096, f"extra{i}")
    seen: list[str] = []
    token = ""
    while True:
        page = stub.ListCommands(pb.ListCommandsRequest(page_size=2, page_token=token), timeout=T)
        assert len(page.commands) <= 2
        seen += [c.command_id for c in page.commands]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 5  # 1 + 4 AddDisk, newest first, no child listed
    succeeded = stub.ListCommands(
        pb.ListCommandsRequest(status=pb.COMMAND_STATUS_SUCCEEDED), timeout=T
    ).commands
    assert len(succeeded) == 5
    assert (
        stub.ListCommands(
            pb.ListCommandsRequest(status=pb.COMMAND_STATUS_FAILED), timeout=T
        ).commands
        == []
    )
    err = rpc_error(stub.ListCommands, pb.ListCommandsRequest(page_token="garbage!"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in str(err.details())
    unknown_status = pb.ListCommandsRequest()
    unknown_status.status = 99  # type: ignore[assignment]
    err = rpc_error(stub.ListCommands, unknown_status)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "status" in str(err.details())


def test_watch_command_streams_progress_until_settled(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=2 * MiB)
    reply = dc.start_template(vm, "watched", dst)
    messages = list(
        dc.stub.WatchCommand(
            pb.WatchCommandRequest(command_id=reply.command.command_id), timeout=60
        )
    )
    assert messages[0].command.status == pb.COMMAND_STATUS_ACTIVE
    progress = [m.command.progress_percent for m in messages]
    assert progress == sorted(progress) and len(set(progress)) > 2
    last = messages[-1].command
    assert last.status == pb.COMMAND_STATUS_SUCCEEDED and not last.tasks
    # On a settled command: one message, then the stream closes.
    again = list(
        dc.stub.WatchCommand(
            pb.WatchCommandRequest(command_id=reply.command.command_id), timeout=10
        )
    )
    assert len(again) == 1 and again[0].command == last


def test_cancel_stops_the_copies_and_leaves_nothing_behind(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB)
    stub = dc.stub
    files_before = dc.image_files()
    reply = dc.start_template(vm, "cancelled", dst)
    wait_command(
        stub, reply.command.command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks)
    )
    cancelled = stub.CancelCommand(
        pb.CancelCommandRequest(command_id=reply.command.command_id), timeout=T
    ).command
    assert cancelled.status == pb.COMMAND_STATUS_CANCELLED
    assert cancelled.failure_reason == "cancelled by a client"
    command = wait_command(stub, reply.command.command_id)
    assert command.status == pb.COMMAND_STATUS_CANCELLED
    err = rpc_error(
        stub.GetVmTemplate, pb.GetVmTemplateRequest(template_id=reply.template.template_id)
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    for copy_id in reply.template.disk_ids:
        assert (
            rpc_error(stub.GetDisk, pb.GetDiskRequest(disk_id=copy_id)).code()
            == grpc.StatusCode.NOT_FOUND
        )
    assert dc.image_files() == files_before  # no copy, no partial file
    assert dc.agent_tasks() == []
    assert_settled(dc.engine.database_url)
    err = rpc_error(stub.CancelCommand, pb.CancelCommandRequest(command_id=command.command_id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    # The name is free again and the source disks are usable.
    again = dc.start_template(vm, "cancelled", dst)
    assert wait_command(stub, again.command.command_id).status == pb.COMMAND_STATUS_SUCCEEDED


def test_an_agent_failure_fails_the_command_with_the_agents_message(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB)
    stub = dc.stub
    reply = dc.start_template(vm, "doomed", dst)
    wait_command(
        stub, reply.command.command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks)
    )
    # The destination domain disappears under the copies: the agent fails them.
    shutil.rmtree(dc.storage_root / dst / "images")
    command = wait_command(stub, reply.command.command_id)
    assert command.status == pb.COMMAND_STATUS_FAILED
    assert "ended failure" in command.failure_reason
    assert "I/O error" in command.failure_reason  # the agent's own words
    assert (
        rpc_error(
            stub.GetVmTemplate, pb.GetVmTemplateRequest(template_id=reply.template.template_id)
        ).code()
        == grpc.StatusCode.NOT_FOUND
    )
    for disk_id in stub.GetVm(pb.GetVmRequest(vm_id=vm), timeout=T).vm.disk_ids:
        assert dc.disk(disk_id).status == pb.DISK_STATUS_OK
    assert dc.agent_tasks() == []
    assert_settled(dc.engine.database_url)


def test_validation_errors_are_precise_and_write_nothing(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB, disks=2)
    stub = dc.stub
    before = database_state(dc.engine.database_url)
    cases = [
        (
            stub.AddVmTemplate,
            pb.AddVmTemplateRequest(vm_id=new_id(), name="t", destination_storage_domain_id=dst),
            grpc.StatusCode.NOT_FOUND,
            "vm_id",
        ),
        (
            stub.AddVmTemplate,
            pb.AddVmTemplateRequest(vm_id=vm, name="t", destination_storage_domain_id=new_id()),
            grpc.StatusCode.NOT_FOUND,
            "destination_storage_domain_id",
        ),
        (
            stub.AddVmTemplate,
            pb.AddVmTemplateRequest(vm_id="nope", name="t", destination_storage_domain_id=dst),
            grpc.StatusCode.INVALID_ARGUMENT,
            "vm_id",
        ),
        (
            stub.AddVmTemplate,
            pb.AddVmTemplateRequest(vm_id=vm, name="", destination_storage_domain_id=dst),
            grpc.StatusCode.INVALID_ARGUMENT,
            "name",
        ),
        (
            stub.AddVmTemplate,
            pb.AddVmTemplateRequest(
                vm_id=vm, name="t", request_id="x", destination_storage_domain_id=dst
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "request_id",
        ),
        (
            stub.AddDisk,
            pb.AddDiskRequest(name="d", storage_domain_id=src, size_bytes=0),
            grpc.StatusCode.INVALID_ARGUMENT,
            "size_bytes",
        ),
        (
            stub.AddDisk,
            pb.AddDiskRequest(name="d", storage_domain_id=src, size_bytes=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "size_bytes",
        ),
        (
            stub.AddDisk,
            pb.AddDiskRequest(name="d", storage_domain_id="../etc", size_bytes=1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "storage_domain_id",
        ),
        (
            stub.AddDisk,
            pb.AddDiskRequest(name="d", storage_domain_id=new_id(), size_bytes=1),
            grpc.StatusCode.NOT_FOUND,
            "storage_domain_id",
        ),
        (
            stub.AddVm,
            pb.AddVmRequest(name="v", disk_ids=[new_id()]),
            grpc.StatusCode.NOT_FOUND,
            "disk_ids[0]",
        ),
        (
            stub.GetCommand,
            pb.GetCommandRequest(command_id=new_id()),
            grpc.StatusCode.NOT_FOUND,
            "command_id",
        ),
        (
            stub.AddStorageDomain,
            pb.AddStorageDomainRequest(name="data1"),
            grpc.StatusCode.ALREADY_EXISTS,
            "name",
        ),
        (
            stub.AddHost,
            pb.AddHostRequest(name="host1", address="127.0.0.1:1"),
            grpc.StatusCode.ALREADY_EXISTS,
            "name",
        ),
        (
            stub.AddHost,
            pb.AddHostRequest(name="other", address=dc.agents[0].address),
            grpc.StatusCode.ALREADY_EXISTS,
            "address",
        ),
        (
            stub.AddHost,
            pb.AddHostRequest(name="other", address="127.0.0.1:1"),
            grpc.StatusCode.UNAVAILABLE,
            "address",
        ),
        (
            stub.AddHost,
            pb.AddHostRequest(name="other", address="no-port"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "address",
        ),
    ]
    for call, request, code, field in cases:
        err = rpc_error(call, request)
        assert err.code() == code, (request, err.details())
        assert field in str(err.details()), (field, err.details())
    assert database_state(dc.engine.database_url) == before

    # A template name in use, and disks locked by a running command.
    first = dc.start_template(vm, "taken", dst)
    err = rpc_error(
        stub.AddVmTemplate,
        pb.AddVmTemplateRequest(vm_id=vm, name="taken", destination_storage_domain_id=dst),
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "name" in str(err.details())
    err = rpc_error(
        stub.AddVmTemplate,
        pb.AddVmTemplateRequest(vm_id=vm, name="second", destination_storage_domain_id=dst),
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "LOCKED" in str(err.details()) or "locked" in str(err.details())
    stub.CancelCommand(pb.CancelCommandRequest(command_id=first.command.command_id), timeout=T)
    wait_command(stub, first.command.command_id)

    # No host UP.
    for name in ("host1", "setup"):
        stub.SetHostMaintenance(
            pb.SetHostMaintenanceRequest(host_id=dc.hosts[name].host_id, maintenance=True),
            timeout=T,
        )
    err = rpc_error(stub.AddDisk, pb.AddDiskRequest(name="d", storage_domain_id=src, size_bytes=1))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "UP" in str(err.details())
    assert database_state(dc.engine.database_url).commands == {"CANCELLED": 1, "SUCCEEDED": 2}


def test_a_repeated_request_id_makes_one_command(make_dc) -> None:
    dc, vm, src, dst = make_dc(disks=1)
    stub = dc.stub
    request_id = new_id()
    first = dc.start_template(vm, "once", dst, request_id=request_id)
    second = dc.start_template(vm, "once", dst, request_id=request_id)
    assert second.command.command_id == first.command.command_id
    assert second.template.template_id == first.template.template_id
    err = rpc_error(
        stub.AddVmTemplate,
        pb.AddVmTemplateRequest(
            vm_id=vm, name="other-name", destination_storage_domain_id=dst, request_id=request_id
        ),
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "request_id" in str(err.details())
    wait_command(stub, first.command.command_id)
    third = dc.start_template(vm, "once", dst, request_id=request_id)  # after the end too
    assert third.command.command_id == first.command.command_id
    templates = stub.ListVmTemplates(pb.ListVmTemplatesRequest(), timeout=T).templates
    assert [t.name for t in templates] == ["once"]

    disk_request = pb.AddDiskRequest(
        name="d", storage_domain_id=src, size_bytes=4096, request_id=new_id()
    )
    one, two = (stub.AddDisk(disk_request, timeout=T) for _ in range(2))
    assert one.command.command_id == two.command.command_id
    host_request = pb.AddHostRequest(
        name="host1", address=dc.agents[0].address, request_id=new_id()
    )
    # A new request id for an existing name is a conflict; the same one is the first answer.
    assert rpc_error(stub.AddHost, host_request).code() == grpc.StatusCode.ALREADY_EXISTS


def test_unreachable_host_turns_non_responsive_and_its_commands_time_out(make_dc) -> None:
    dc, vm, src, dst = make_dc(
        throttle=MiB, engine_args=["--host-failure-polls", "3", "--task-timeout", "3"]
    )
    stub = dc.stub
    files_before = dc.image_files()
    reply = dc.start_template(vm, "stranded", dst)
    wait_command(
        stub, reply.command.command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks)
    )
    agent = dc.agents[0]
    agent.kill()
    wait_for_host(stub, pb.HOST_STATUS_NON_RESPONSIVE)
    showing = wait_command(
        stub,
        reply.command.command_id,
        lambda c: (
            all("NON_RESPONSIVE" in t.message for t in c.tasks)
            or c.status != pb.COMMAND_STATUS_ACTIVE
        ),
    )
    assert showing.status == pb.COMMAND_STATUS_ACTIVE  # shown while the timeout runs
    command = wait_command(
        stub, reply.command.command_id, lambda c: c.status != pb.COMMAND_STATUS_ACTIVE, timeout=30
    )
    assert command.status == pb.COMMAND_STATUS_FAILED
    assert "has not answered since" in command.failure_reason
    assert "task timeout 3s" in command.failure_reason
    assert len(command.tasks) == 3  # the cleanup debt waits for the host
    assert (
        rpc_error(
            stub.GetVmTemplate, pb.GetVmTemplateRequest(template_id=reply.template.template_id)
        ).code()
        == grpc.StatusCode.NOT_FOUND
    )
    agent.start()  # the host returns: the debt is paid
    wait_for_host(stub, pb.HOST_STATUS_UP)
    wait_command(stub, reply.command.command_id)
    assert dc.agent_tasks() == []
    assert dc.image_files() == files_before
    assert_settled(dc.engine.database_url)


def wait_for_host(stub, status: int, timeout: float = 20) -> None:
    import time

    deadline = time.monotonic() + timeout
    while stub.ListHosts(pb.ListHostsRequest(), timeout=T).hosts[0].status != status:
        assert time.monotonic() < deadline, f"host never became {pb.HostStatus.Name(status)}"
        time.sleep(0.1)


def test_engine_restarts_without_losing_anything(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=4 * MiB)
    stub = dc.stub
    reply = dc.start_template(vm, "survivor", dst)
    dc.engine.kill()
    dc.engine.start()
    command = wait_command(stub, reply.command.command_id)
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED
    report = stub.ReconcileOrphans(pb.ReconcileOrphansRequest(), timeout=T)
    assert (
        list(report.failed_command_ids),
        report.removed_placeholders,
        report.adopted_tasks,
        report.cleared_zombies,
    ) == ([], 0, 0, 0)
    assert_settled(dc.engine.database_url)


def test_the_engine_migrates_its_database_at_startup(make_dc) -> None:
    from sqlalchemy import inspect

    from engine_service.adapters.db import make_engine

    dc, *_ = make_dc(disks=1)
    engine = make_engine(dc.engine.database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"commands", "async_tasks", "entity_locks", "alembic_version"} <= tables


def test_repeating_add_vm_and_add_host_returns_the_first_result(make_dc, agent_factory) -> None:
    dc, vm, src, dst = make_dc(disks=1)
    disk_ids = list(dc.stub.GetVm(pb.GetVmRequest(vm_id=vm), timeout=T).vm.disk_ids)
    request = pb.AddVmRequest(name="again", disk_ids=disk_ids, request_id=new_id())
    first, second = (dc.stub.AddVm(request, timeout=5).vm for _ in range(2))
    assert first == second
    other = agent_factory("host9")
    host_request = pb.AddHostRequest(name="host9", address=other.address, request_id=new_id())
    one, two = (dc.stub.AddHost(host_request, timeout=5).host for _ in range(2))
    assert one.host_id == two.host_id
