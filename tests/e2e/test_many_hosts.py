"""A data center of several hosts, one agent each, sharing one storage root (docs/design.md
§2, §3, §7): dispatch, per-host polling, maintenance, removal and failure isolation."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import grpc
import pytest

from engine_service.v1 import engine_service_pb2 as pb
from harness.engine_client import wait_command
from harness.scenario import DataCenter

MiB = 1 << 20
T = 30


def maintenance(dc: DataCenter, name: str, on: bool) -> None:
    dc.stub.SetHostMaintenance(
        pb.SetHostMaintenanceRequest(host_id=dc.hosts[name].host_id, maintenance=on), timeout=T
    )


def only_up(dc: DataCenter, *names: str) -> None:
    """Steer new tasks: every host but `names` in maintenance."""
    for host in dc.hosts:
        maintenance(dc, host, host not in names)


def hosts_of(command: pb.Command, dc: DataCenter) -> Counter[str]:
    by_id = {h.host_id: name for name, h in dc.hosts.items()}
    return Counter(by_id[t.host_id] for t in command.tasks)


def test_a_template_of_six_disks_spreads_over_three_hosts(make_dc) -> None:
    dc, vm, src, dst = make_dc(hosts=3, throttle=4 * MiB, disks=6, disk_bytes=MiB)
    reply = dc.start_template(vm, "spread", dst)
    # Least busy first: six copies over three idle hosts is two each; each task says where.
    assert hosts_of(reply.command, dc) == Counter({"host1": 2, "host2": 2, "host3": 2})
    listed = {
        h.name: h.tasks_in_flight for h in dc.stub.ListHosts(pb.ListHostsRequest(), timeout=T).hosts
    }
    assert listed == {"host1": 2, "host2": 2, "host3": 2, "setup": 0}
    command = wait_command(dc.stub, reply.command.command_id)
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    dc.check_invariants()


def test_a_dead_host_fails_only_the_commands_on_it(make_dc) -> None:
    dc, vm, src, dst = make_dc(
        hosts=3, throttle=MiB, disks=2, disk_bytes=2 * MiB, engine_args=["--task-timeout", "3"]
    )
    other_vm = dc.add_vm("vm2", [dc.add_disk(src, 2 * MiB, f"b{i}") for i in range(2)])
    files_before = dc.image_files()
    only_up(dc, "host1")
    doomed = dc.start_template(vm, "on-host1", dst)
    only_up(dc, "host2")
    healthy = dc.start_template(other_vm, "on-host2", dst)
    only_up(dc, "host1", "host2", "host3")
    assert set(hosts_of(doomed.command, dc)) == {"host1"}
    assert set(hosts_of(healthy.command, dc)) == {"host2"}
    wait_command(
        dc.stub, doomed.command.command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks)
    )
    host1 = next(a for a in dc.agents if a.workdir.name == "host1")
    host1.kill()
    failed = wait_command(
        dc.stub,
        doomed.command.command_id,
        lambda c: c.status != pb.COMMAND_STATUS_ACTIVE,
        timeout=40,
    )
    assert failed.status == pb.COMMAND_STATUS_FAILED
    assert "host host1" in failed.failure_reason
    succeeded = wait_command(dc.stub, healthy.command.command_id)
    assert succeeded.status == pb.COMMAND_STATUS_SUCCEEDED, succeeded.failure_reason
    host1.start()  # the host returns: what the failed command left there is cleaned up
    dc.check_invariants()
    copies = {
        c
        for t in dc.stub.ListVmTemplates(pb.ListVmTemplatesRequest(), timeout=T).templates
        for c in t.disk_ids
    }
    assert len(copies) == 2  # only the healthy template's copies exist
    assert len(dc.image_files() - files_before) == 2


def test_maintenance_takes_no_new_tasks_and_lets_running_ones_finish(make_dc) -> None:
    dc, vm, src, dst = make_dc(hosts=2, throttle=MiB, disks=2, disk_bytes=2 * MiB)
    only_up(dc, "host1")
    first = dc.start_template(vm, "first", dst)
    assert set(hosts_of(first.command, dc)) == {"host1"}
    only_up(dc, "host2")  # host1 goes into maintenance while its copies run
    hosts = {h.name: h for h in dc.stub.ListHosts(pb.ListHostsRequest(), timeout=T).hosts}
    assert hosts["host1"].status == pb.HOST_STATUS_MAINTENANCE
    extra = dc.stub.AddDisk(
        pb.AddDiskRequest(name="x", storage_domain_id=src, size_bytes=MiB), timeout=T
    )
    assert set(hosts_of(extra.command, dc)) == {"host2"}
    done = wait_command(dc.stub, first.command.command_id)
    assert done.status == pb.COMMAND_STATUS_SUCCEEDED  # polled and ended in maintenance
    assert wait_command(dc.stub, extra.command.command_id).status == pb.COMMAND_STATUS_SUCCEEDED
    maintenance(dc, "host1", False)
    hosts = {h.name: h for h in dc.stub.ListHosts(pb.ListHostsRequest(), timeout=T).hosts}
    assert hosts["host1"].status == pb.HOST_STATUS_UP
    assert hosts["host1"].last_seen_at.seconds > 0
    dc.check_invariants()


def test_a_host_with_tasks_cannot_be_removed(make_dc) -> None:
    dc, vm, src, dst = make_dc(hosts=1, throttle=MiB, disks=1, disk_bytes=2 * MiB)
    reply = dc.start_template(vm, "busy", dst)
    host_id = dc.hosts["host1"].host_id
    with pytest.raises(grpc.RpcError) as err:
        dc.stub.RemoveHost(pb.RemoveHostRequest(host_id=host_id), timeout=T)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "task" in str(err.value.details())
    wait_command(dc.stub, reply.command.command_id)
    dc.stub.RemoveHost(pb.RemoveHostRequest(host_id=host_id), timeout=T)
    names = [h.name for h in dc.stub.ListHosts(pb.ListHostsRequest(), timeout=T).hosts]
    assert names == ["setup"]
    with pytest.raises(grpc.RpcError) as err:
        dc.stub.RemoveHost(pb.RemoveHostRequest(host_id=host_id), timeout=T)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_hung_host_does_not_delay_the_others(make_dc) -> None:
    # A deadline far above the time the work needs: if polls waited for the hung host, every
    # cycle would take 20 s and the healthy command could not end in time.
    dc, vm, src, dst = make_dc(
        hosts=2, throttle=8 * MiB, disks=2, disk_bytes=MiB, engine_args=["--agent-deadline", "20"]
    )
    only_up(dc, "host1")
    host2 = next(a for a in dc.agents if a.workdir.name == "host2")
    assert host2.proc is not None
    os.kill(host2.proc.pid, signal.SIGSTOP)  # alive, listening, never answering
    try:
        started = time.monotonic()
        reply = dc.start_template(vm, "unhindered", dst)
        command = wait_command(dc.stub, reply.command.command_id, timeout=15)
        assert command.status == pb.COMMAND_STATUS_SUCCEEDED
        assert time.monotonic() - started < 15
    finally:
        os.kill(host2.proc.pid, signal.SIGCONT)
    dc.check_invariants()


def test_resubmit_moves_never_started_children_to_an_up_host(make_dc) -> None:
    from sqlalchemy import update

    from engine_service.adapters.db import make_engine
    from engine_service.adapters.orm import HostRow

    dc, vm, src, dst = make_dc(
        hosts=2, throttle=8 * MiB, disks=2, disk_bytes=MiB, engine_args=["--orphans", "resubmit"]
    )
    only_up(dc, "host1")
    dc.engine.kill()
    dc.engine.start(crash_at="after_placeholders_commit")
    with pytest.raises(grpc.RpcError):
        dc.start_template(vm, "resubmitted", dst)
    dc.engine.wait_crashed()
    # While the engine is down, an operator moves host1 into maintenance and host2 out of it.
    db = make_engine(dc.engine.database_url)
    with db.begin() as connection:
        for name, status in (("host1", "MAINTENANCE"), ("host2", "UP")):
            connection.execute(update(HostRow).where(HostRow.name == name).values(status=status))
    db.dispose()
    dc.engine.start()
    reply = dc.stub.ReconcileOrphans(pb.ReconcileOrphansRequest(), timeout=T)
    assert list(reply.startup_report.failed_command_ids) == []
    (command,) = [c for c in dc.check_invariants() if c.action_type == "AddVmTemplate"]
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    log = dc.engine.log_path.read_text()
    assert log.count("moved from host host1 (MAINTENANCE) to host host2") == 2
