"""A client in another language, built only from the .proto files: Node.js with @grpc/grpc-js
and @grpc/proto-loader (installed here from the npm registry). Skipped where Node.js is absent.
It speaks TLS with a bearer token, follows ListHosts' pages and follows WatchCommand."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine_service.v1 import engine_service_pb2 as pb
from harness.engine_client import wait_command
from harness.scenario import DataCenter
from service_common.tls import ClientTls, init_pki

MiB = 1 << 20
TOKEN = "node-client-token-0123456789"
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


def run(
    node: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENGINECTL_")}
    return subprocess.run(
        [node, str(CLIENT / "engine_client.js"), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**clean, **(env or {})},
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


def test_the_nodejs_client_speaks_tls_with_a_token_and_follows_pages(
    node, agent_factory, engine_factory, tmp_path
) -> None:
    pki = init_pki(tmp_path / "pki")
    engine = engine_factory(
        start=False,
        extra_args=[
            "--tls-cert",
            str(pki["engine"]),
            "--tls-key",
            str(pki["engine_key"]),
            "--api-token",
            TOKEN,
        ],
    )
    engine.client_tls, engine.token = ClientTls(pki["ca"]), TOKEN
    engine.start()
    dc = DataCenter(engine, [agent_factory(f"host{i}") for i in range(3)])
    dc.register_hosts()
    ca = ("--tls-ca", str(pki["ca"]))
    # Three hosts, two a page: the client follows next_page_token to the last one.
    listed = run(node, *ca, "--token", TOKEN, "--page-size", "2", engine.address, "list-hosts")
    assert listed.returncode == 0, listed.stderr
    assert [h["name"] for h in json.loads(listed.stdout)["hosts"]] == ["host0", "host1", "host2"]
    # The same from the environment, at the engine's page size.
    by_env = run(
        node,
        engine.address,
        "list-hosts",
        env={"ENGINECTL_TLS_CA": str(pki["ca"]), "ENGINECTL_TOKEN": TOKEN},
    )
    assert by_env.returncode == 0, by_env.stderr
    assert len(json.loads(by_env.stdout)["hosts"]) == 3
    # No token, or a wrong one: UNAUTHENTICATED.
    for token in ((), ("--token", "wrong-token-0123456789")):
        denied = run(node, *ca, *token, engine.address, "list-hosts")
        assert denied.returncode == 2, denied.stdout
        assert json.loads(denied.stderr)["code"] == 16  # UNAUTHENTICATED
    # Plaintext to a TLS engine does not get through.
    plaintext = run(node, "--token", TOKEN, "--timeout", "5", engine.address, "list-hosts")
    assert plaintext.returncode == 2 and json.loads(plaintext.stderr)["code"] == 14  # UNAVAILABLE
    # Plaintext off loopback is refused before dialling, unless --insecure.
    refused = run(node, "192.0.2.1:50051", "list-hosts")
    assert refused.returncode == 2 and "not loopback" in json.loads(refused.stderr)["details"]


def test_the_nodejs_client_watches_a_command_to_its_end(node, make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=2 * MiB)
    reply = dc.start_template(vm, "watched", dst)
    watched = run(node, dc.engine.address, "watch", reply.command.command_id)
    assert watched.returncode == 0, watched.stderr
    updates = [json.loads(line) for line in watched.stdout.splitlines()]
    assert updates[0]["status"] == "COMMAND_STATUS_ACTIVE"
    progress = [u["progress_percent"] for u in updates]
    assert progress == sorted(progress) and len(set(progress)) > 2, progress
    assert updates[-1]["status"] == "COMMAND_STATUS_SUCCEEDED" and progress[-1] == 100
    # A command that ends otherwise (here CANCELLED): exit status 1.
    other = dc.start_template(vm, "cancelled", dst).command.command_id
    dc.stub.CancelCommand(pb.CancelCommandRequest(command_id=other), timeout=10)
    ended = run(node, dc.engine.address, "watch", other)
    assert ended.returncode == 1, ended.stderr
    assert json.loads(ended.stdout.splitlines()[-1])["status"] == "COMMAND_STATUS_CANCELLED"
