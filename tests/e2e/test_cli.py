"""enginectl against a real engine and agent: output, --json and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from importlib.metadata import version

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
    header = listed.stdout.splitlines()[0].split()
    assert header == ["HOST_ID", "NAME", "ADDRESS", "STATUS", "TASKS"]
    domain = json.loads(ctl(address, "--json", "domain", "add", "data1").stdout)
    sd = domain["storage_domain"]["storage_domain_id"]
    disk = ctl(address, "disk", "add", "boot", "--domain", sd, "--size", "2MiB", "--wait")
    assert disk.returncode == 0, disk.stdout + disk.stderr
    assert "SUCCEEDED" in disk.stdout
    disks = json.loads(ctl(address, "--json", "disk", "list").stdout)["disks"]
    assert [(d["name"], d["size_bytes"], d["status"]) for d in disks] == [
        ("boot", 2 * MiB, "DISK_STATUS_OK")
    ]
    # --json after the command too, with every field: zero and empty ones included.
    listed_after = ctl(address, "disk", "list", "--json")
    assert listed_after.returncode == 0, listed_after.stderr
    assert json.loads(listed_after.stdout) == {"disks": disks, "next_page_token": ""}
    vm = json.loads(
        ctl(address, "--json", "vm", "add", "web", "--disk", disks[0]["disk_id"]).stdout
    )["vm"]["vm_id"]
    made = ctl(
        address, "template", "add", "--vm", vm, "--name", "golden", "--domain", sd, "--watch"
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert "SUCCEEDED" in made.stdout and "100%" in made.stdout
    commands = json.loads(ctl(address, "command", "list", "-o", "json").stdout)["commands"]
    assert [c["action_type"] for c in commands] == ["AddVmTemplate", "AddDisk"]
    assert all(c["failure_reason"] == "" and c["parent_command_id"] == "" for c in commands)
    assert [c["progress_percent"] for c in commands] == [100, 100]
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


@pytest.mark.parametrize(
    ("module", "prog"),
    [
        ("engine_service.entrypoints.cli", "enginectl"),
        ("engine_service.entrypoints.server", "engine-service"),
        ("vdsm_agent.entrypoints.server", "vdsm-agent"),
    ],
)
def test_every_program_has_a_version(module: str, prog: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{prog} {version('durable-virt-tasks')}\n"


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
