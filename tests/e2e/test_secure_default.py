"""Secure by default, with real processes: no plaintext off loopback unless `--insecure`.

Both programs refuse to start in plaintext on a non-loopback address, in one line on stderr and
exit status 2; with `--insecure` they serve there. An engine that reaches agents in plaintext
(no `--agent-tls-ca`) and has no `--insecure` refuses to add a host at a non-loopback address,
and keeps polling (with a warning at start) hosts registered at one before."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from engine_service.v1 import engine_service_pb2 as pb
from harness.enginectl import run as ctl
from service_common.addresses import is_loopback

T = 10
PROGRAMS = {
    "vdsm-agent": ["vdsm_agent.entrypoints.server", "--storage-root", "storage"],
    "engine-service": ["engine_service.entrypoints.server"],
}


def this_machines_address() -> str | None:
    """An address of this machine beyond loopback (the one its default route leaves from)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: UDP only picks a route
        except OSError:
            return None
        found = str(probe.getsockname()[0])
    return None if is_loopback(found) else found


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ENGINE_", "VDSM_AGENT_"))}


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_plaintext_off_loopback_stops_at_start_with_one_line(program: str, tmp_path: Path) -> None:
    module, *args = PROGRAMS[program]
    done = subprocess.run(
        [sys.executable, "-m", module, "--listen", "0.0.0.0:0", "--state-dir", "state", *args],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "0.0.0.0:0" in lines[0] and "not a loopback address" in lines[0]
    assert "enginectl pki init" in lines[0] and "--tls-cert" in lines[0]
    assert "--insecure" in lines[0]
    assert not (tmp_path / "state").exists()  # refused before doing anything


def test_with_insecure_both_serve_off_loopback(agent_factory, engine_factory) -> None:
    agent = agent_factory("host1", start=False, extra_args=["--insecure"])
    engine = engine_factory(start=False, extra_args=["--insecure"])
    for process in (agent, engine):
        process.host = "0.0.0.0"  # every interface; the harness dials 0.0.0.0, i.e. this host
        process.start()  # waits until its readiness is SERVING
        assert process.health("") == "SERVING"
    assert "PLAINTEXT gRPC on 0.0.0.0:" in agent.log_path.read_text()
    log = engine.log_path.read_text()
    assert "the engine API is PLAINTEXT on 0.0.0.0:" in log and "--insecure" in log


def test_an_engine_without_agent_tls_refuses_plaintext_agents_off_loopback(
    agent_factory, engine_factory
) -> None:
    agent = agent_factory("host1", start=False, extra_args=["--insecure"])
    agent.host = "0.0.0.0"
    agent.start()
    ip = this_machines_address() or "192.0.2.1"  # a TEST-NET address, refused before dialling
    address = f"{ip}:{agent.port}"
    engine = engine_factory()  # on loopback, no --agent-tls-ca, no --insecure
    with pytest.raises(grpc.RpcError) as err:
        engine.stub().AddHost(pb.AddHostRequest(name="host1", address=address), timeout=T)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = str(err.value.details())
    assert details.startswith("address: ") and address in details
    assert "--agent-tls-ca" in details and "--insecure" in details
    denied = ctl(engine.address, "host", "add", "host1", address)
    assert denied.returncode == 4 and "--agent-tls-ca" in denied.stderr
    assert not engine.stub().ListHosts(pb.ListHostsRequest(), timeout=T).hosts
    # The same agent by its loopback address is fine.
    local = f"127.0.0.1:{agent.port}"
    engine.stub().AddHost(pb.AddHostRequest(name="host1", address=local), timeout=T)


def test_hosts_registered_off_loopback_are_still_polled_with_a_warning(
    agent_factory, engine_factory
) -> None:
    ip = this_machines_address()
    if ip is None:
        pytest.skip("this machine has no address beyond loopback")
    agent = agent_factory("host1", start=False, extra_args=["--insecure"])
    agent.host = "0.0.0.0"
    agent.start()
    address = f"{ip}:{agent.port}"
    engine = engine_factory(extra_args=["--insecure"])  # accepts the plaintext agent
    engine.stub().AddHost(pb.AddHostRequest(name="host1", address=address), timeout=T)
    engine.terminate()
    engine.extra_args = []  # restarted without --insecure
    engine.start()
    assert "reached in PLAINTEXT and still polled: host1" in engine.log_path.read_text()
    restarted_at = time.time()
    deadline = time.monotonic() + 30
    while True:  # a poll after the restart reached the agent
        (host,) = engine.stub().ListHosts(pb.ListHostsRequest(), timeout=T).hosts
        seen = host.last_seen_at.seconds + host.last_seen_at.nanos / 1e9
        if host.status == pb.HOST_STATUS_UP and seen > restarted_at:
            break
        assert time.monotonic() < deadline, host
        time.sleep(0.1)
