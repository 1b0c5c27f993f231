"""enginectl against a real engine and agent: output, --json and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from harness.enginectl import run as ctl
from harness.scenario import DataCenter

MiB = 1 << 20


@pytest.fixture
def dc(agent_factory, engine_factory) -> DataCenter:
    return DataCenter(engine_factory(), [agent_factory("host1")])


def test_a_session_with_enginectl(dc: DataCenter) -> None:
    address, agent = dc.engine.address, dc.agents[0]
    added = ctl(address, "--json", "host", "add", "host1", agent.address)
    assert added.returncode == 0, added.stderr
    host = json.loads(added.stdout)["host"]
    assert host["status"] == "HOST_STATUS_UP" and host["address"] == agent.address
    listed = ctl(address, "host", "list")
    assert listed.returncode == 0 and "host1" in listed.stdout and "UP" in listed.stdout
    domain = json.loads(ctl(address, "--json", "domain", "add", "data1").stdout)
    sd = domain["storage_domain"]["storage_domain_id"]
    disk = ctl(address, "disk", "add", "boot", "--domain", sd, "--size", "2MiB", "--wait")
    assert disk.returncode == 0, disk.stdout + disk.stderr
    assert "SUCCEEDED" in disk.stdout
    disks = json.loads(ctl(address, "--json", "disk", "list").stdout)["disks"]
    assert [(d["name"], d["size_bytes"], d["status"]) for d in disks] == [
        ("boot", str(2 * MiB), "DISK_STATUS_OK")
    ]
    vm = json.loads(
        ctl(address, "--json", "vm", "add", "web", "--disk", disks[0]["disk_id"]).stdout
    )["vm"]["vm_id"]
    made = ctl(
        address, "template", "add", "--vm", vm, "--name", "golden", "--domain", sd, "--watch"
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert "SUCCEEDED" in made.stdout and "100%" in made.stdout
    commands = json.loads(ctl(address, "--json", "command", "list").stdout)["commands"]
    assert [c["action_type"] for c in commands] == ["AddVmTemplate", "AddDisk"]
    succeeded = json.loads(
        ctl(address, "--json", "command", "list", "--status", "succeeded").stdout
    )["commands"]
    assert len(succeeded) == 2
    shown = ctl(address, "command", "get", commands[0]["command_id"])
    assert shown.returncode == 0 and "CreateImageTemplate" in shown.stdout
    report = json.loads(ctl(address, "--json", "reconcile").stdout)
    assert report.get("failed_command_ids", []) == []


def test_exit_codes_and_human_errors(dc: DataCenter) -> None:
    address = dc.engine.address
    cases = [
        (("disk", "get", str(uuid.uuid4())), 3, "NOT_FOUND"),
        (("disk", "get", "not-a-uuid"), 2, "INVALID_ARGUMENT"),
        (("host", "add", "ghost", "127.0.0.1:1"), 5, "UNAVAILABLE"),
        (("disk", "add", "x", "--domain", str(uuid.uuid4()), "--size", "lots"), 2, "size"),
        (("command", "cancel", str(uuid.uuid4())), 3, "NOT_FOUND"),
    ]
    for args, code, words in cases:
        done = ctl(address, *args)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert words in done.stderr
        assert "Traceback" not in done.stderr
    unreachable = ctl("127.0.0.1:1", "host", "list")
    assert unreachable.returncode == 5 and "UNAVAILABLE" in unreachable.stderr


def test_help_has_examples() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine_service.entrypoints.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Examples:" in done.stdout and "template add" in done.stdout
    assert "Exit codes" in done.stdout


def test_shell_completion_is_available() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine_service.entrypoints.cli"],
        env={**os.environ, "_ENGINECTL_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "complete" in done.stdout and "_ENGINECTL_COMPLETE" in done.stdout
