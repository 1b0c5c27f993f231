"""Active and standby engines on one database: exactly one serves; when it dies, the standby
reconciles and takes over within a bounded time. A standby is live (`""` SERVING), not ready
(`engine_service.v1.EngineService` NOT_SERVING), so a liveness probe leaves it alone."""

from __future__ import annotations

import time

import grpc
import pytest

from engine_service.v1 import engine_service_pb2 as pb
from harness.engine_client import wait_command
from harness.enginectl import run as ctl
from harness.processes import EngineProcess
from service_common import health_probe
from service_common.health_probe import check

MiB = 1 << 20
T = 30
LIVENESS = ""
READINESS = "engine_service.v1.EngineService"


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


def wait_standing_by(engine: EngineProcess, timeout: float = T) -> None:
    """Until the engine logs that it stands by (its server has started, the lease is taken)."""
    deadline = time.monotonic() + timeout
    while "standing by" not in engine.log_path.read_text() or not engine.learn_port():
        assert engine.running, engine.log_tail()
        assert time.monotonic() < deadline, engine.log_tail()
        time.sleep(0.05)


def probe_exit(*argv: str) -> object:
    """`grpc-health-probe ARGV`'s exit status, as a container health check sees it."""
    with pytest.raises(SystemExit) as exited:
        health_probe.main(list(argv))
    return exited.value.code


def test_a_standby_is_live_but_not_ready_until_the_active_engine_stops(
    make_dc, engine_factory
) -> None:
    dc, *_ = make_dc(disks=1)
    active = dc.engine
    standby = engine_factory("standby", start=False)
    standby.start(wait=False)
    wait_standing_by(standby)
    # The standby: live, so a liveness probe leaves it alone; not ready, so no one routes to it.
    assert check(standby.address, LIVENESS) == "SERVING"
    assert check(standby.address, READINESS) == "NOT_SERVING"
    assert probe_exit(standby.address) == 0
    assert probe_exit(standby.address, "--service", READINESS) == 1
    # The active engine: both.
    assert check(active.address, LIVENESS) == "SERVING"
    assert check(active.address, READINESS) == "SERVING"
    assert probe_exit(active.address, "--service", READINESS) == 0
    # The harness waits on readiness for the engine; `wait_listening` returns it.
    assert standby.wait_listening() == "NOT_SERVING" and active.health() == "SERVING"

    assert active.terminate() == 0  # a graceful stop releases the lease
    standby.wait_serving(timeout=T)
    dc.engine = standby
    assert check(standby.address, READINESS) == "SERVING"
    assert check(standby.address, LIVENESS) == "SERVING"
    assert standby.stub().ListHosts(pb.ListHostsRequest(), timeout=T).hosts
