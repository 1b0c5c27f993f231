"""Active and standby engines on one database: exactly one serves; when it dies, the standby
reconciles and takes over within a bounded time."""

from __future__ import annotations

import time

import grpc

from engine_service.v1 import engine_service_pb2 as pb
from harness.engine_client import wait_command
from harness.enginectl import run as ctl

MiB = 1 << 20
T = 30


def test_standby_takes_over_when_the_active_engine_dies(make_dc, engine_factory) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB)
    active = dc.engine
    standby = engine_factory("standby", start=False)
    standby.start(wait=False)
    assert standby.wait_listening() == "NOT_SERVING"
    time.sleep(1.0)  # a standby stays a standby
    assert standby.health() == "NOT_SERVING" and active.health() == "SERVING"
    try:
        standby.stub().ListHosts(pb.ListHostsRequest(), timeout=T)
        raise AssertionError("a standby must not answer the API")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAVAILABLE

    both = f"{active.address},{standby.address}"
    listed = ctl(both, "host", "list")
    assert listed.returncode == 0 and "host1" in listed.stdout

    reply = dc.start_template(vm, "survives-failover", dst)
    wait_command(
        dc.stub, reply.command.command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks)
    )
    active.kill()
    killed_at = time.monotonic()
    standby.wait_serving(timeout=30)
    takeover = time.monotonic() - killed_at
    assert takeover < 10, f"the standby took {takeover:.1f}s to serve"
    dc.engine = standby
    command = wait_command(dc.stub, reply.command.command_id)
    assert command.status == pb.COMMAND_STATUS_SUCCEEDED, command.failure_reason
    dc.check_invariants()
    assert ctl(both, "command", "get", reply.command.command_id).returncode == 0
    print(f"standby served {takeover:.1f}s after the active engine was killed")


def test_a_second_engine_never_works_beside_the_active_one(make_dc, engine_factory) -> None:
    dc, vm, src, dst = make_dc(disks=1)
    second = engine_factory("second", start=False)
    second.start(wait=False)
    assert second.wait_listening() == "NOT_SERVING"
    assert second.terminate() == 0  # a standby stops cleanly too
    assert "standing by" in second.log_path.read_text()
