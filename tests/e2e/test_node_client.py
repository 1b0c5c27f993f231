"""A client in another language, built only from the .proto files: Node.js with @grpc/grpc-js
and @grpc/proto-loader (installed here from the npm registry). Skipped where Node.js is absent."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from engine_service.v1 import engine_service_pb2 as pb
from harness.engine_client import wait_command
from harness.scenario import DataCenter

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "node"


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js (node and npm) is not installed: the Node.js client is not tested")
    if not (CLIENT / "node_modules" / "@grpc" / "grpc-js").exists():
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"],
            cwd=CLIENT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm install failed: {done.stderr[-2000:]}")
    return node


def run(node: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(CLIENT / "engine_client.js"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_nodejs_client_adds_a_host_and_reads_commands(
    node, agent_factory, engine_factory
) -> None:
    agent = agent_factory("host1")
    dc = DataCenter(engine_factory(), [agent])
    added = run(node, dc.engine.address, "add-host", "host1", agent.address)
    assert added.returncode == 0, added.stderr
    host = json.loads(added.stdout)["host"]
    assert host["name"] == "host1" and host["status"] == "HOST_STATUS_UP"
    again = run(node, dc.engine.address, "add-host", "host1", agent.address)
    assert again.returncode == 2 and json.loads(again.stderr)["code"] == 6  # ALREADY_EXISTS

    dc.hosts["host1"] = pb.Host(host_id=host["host_id"], name="host1")
    sd = dc.add_domain("data1")
    disk_reply = dc.stub.AddDisk(
        pb.AddDiskRequest(name="d", storage_domain_id=sd, size_bytes=4096), timeout=30
    )
    wait_command(dc.stub, disk_reply.command.command_id)
    listed = run(node, dc.engine.address, "list-commands", "COMMAND_STATUS_SUCCEEDED")
    assert listed.returncode == 0, listed.stderr
    commands = json.loads(listed.stdout)["commands"]
    assert [(c["action_type"], c["status"]) for c in commands] == [
        ("AddDisk", "COMMAND_STATUS_SUCCEEDED")
    ]
    assert commands[0]["child_commands"][0]["action_type"] == "CreateVolume"
    one = json.loads(run(node, dc.engine.address, "get-command", commands[0]["command_id"]).stdout)
    assert one["command"]["progress_percent"] == 100
