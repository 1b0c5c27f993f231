"""A host that never comes back (issue 14, items 1 and 2), with real processes: a host in
maintenance that dies is shown as not answering; ConfirmHostRebooted (refused while it answers)
fails its commands, writes off what it owed, closes their WatchCommand and lets RemoveHost
succeed; when the machine does come back, what its agent still holds is cleared as zombies."""

from __future__ import annotations

import subprocess
import sys
import time

import grpc
import pytest

from engine_service.v1 import engine_service_pb2 as pb
from harness.engine_client import wait_command
from harness.invariants import storage_debris
from harness.scenario import DataCenter

MiB = 1 << 20
T = 30
REASON = "host1 lost its power supply; confirmed off at the PDU"


def only_up(dc: DataCenter, *names: str) -> None:
    for name, host in dc.hosts.items():
        dc.stub.SetHostMaintenance(
            pb.SetHostMaintenanceRequest(host_id=host.host_id, maintenance=name not in names),
            timeout=T,
        )


def host_named(dc: DataCenter, name: str) -> pb.Host:
    return next(
        h for h in dc.stub.ListHosts(pb.ListHostsRequest(), timeout=T).hosts if h.name == name
    )


def wait_not_answering(dc: DataCenter, name: str, timeout: float = 20.0) -> pb.Host:
    deadline = time.monotonic() + timeout
    while True:
        host = host_named(dc, name)
        if host.HasField("unreachable_since"):
            return host
        if time.monotonic() > deadline:
            raise TimeoutError(f"host {name} still answering after {timeout}s: {host}")
        time.sleep(0.1)


def test_a_dead_host_in_maintenance_is_fenced_removed_and_its_leftovers_cleared(make_dc) -> None:
    dc, vm, src, dst = make_dc(
        hosts=2,
        throttle=MiB,
        disks=2,
        disk_bytes=4 * MiB,
        engine_args=["--task-timeout", "3600", "--zombie-grace", "1"],
    )
    only_up(dc, "host1")
    doomed = dc.start_template(vm, "doomed", dst)
    only_up(dc, "host2")  # host1 is in maintenance while its copies run
    command_id = doomed.command.command_id
    wait_command(dc.stub, command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks))
    host1_id = dc.hosts["host1"].host_id
    confirm = pb.ConfirmHostRebootedRequest(host_id=host1_id, reason=REASON)
    with pytest.raises(grpc.RpcError) as refused:
        dc.stub.ConfirmHostRebooted(confirm, timeout=T)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "answers its polls" in str(refused.value.details())

    agent1 = next(a for a in dc.agents if a.workdir.name == "host1")
    agent1.kill()
    dead = wait_not_answering(dc, "host1")
    assert dead.status == pb.HOST_STATUS_MAINTENANCE  # still in maintenance, and shown silent

    reply = dc.stub.ConfirmHostRebooted(confirm, timeout=T)
    assert (reply.failed_commands, reply.written_off_tasks) == (1, 2)
    assert reply.host.confirmed_rebooted_reason == REASON
    assert reply.host.confirmed_rebooted_by and reply.host.tasks_in_flight == 0
    failed = dc.stub.GetCommand(pb.GetCommandRequest(command_id=command_id), timeout=T).command
    assert failed.status == pb.COMMAND_STATUS_FAILED and not failed.tasks
    assert "was confirmed rebooted" in failed.failure_reason and REASON in failed.failure_reason
    watched = list(dc.stub.WatchCommand(pb.WatchCommandRequest(command_id=command_id), timeout=10))
    assert len(watched) == 1  # it closes: nothing is left to clean on a host that is gone
    dc.stub.RemoveHost(pb.RemoveHostRequest(host_id=host1_id), timeout=T)
    # The storage is shared: what the dead host wrote was deleted through host2.
    assert storage_debris(dc.engine.database_url, dc.storage_root) == []

    # The machine comes back after all: re-added, its agent's tasks are nobody's: zombies.
    agent1.start()
    del dc.hosts["host1"]
    dc.register_hosts()
    dc.check_invariants(timeout=60)


def test_enginectl_host_confirm_rebooted_refuses_a_host_that_answers(make_dc) -> None:
    dc, _, _, _ = make_dc(hosts=1, disks=1, disk_bytes=MiB)
    host_id = dc.hosts["host1"].host_id
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine_service.entrypoints.cli",
            "--address",
            dc.engine.address,
            "host",
            "confirm-rebooted",
            host_id,
            "--reason",
            REASON,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, done.stdout
    assert "FAILED_PRECONDITION" in done.stderr and "answers its polls" in done.stderr
