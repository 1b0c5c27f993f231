"""A command's history with real processes (issue 17): a template whose copies break when their
host's agent dies mid-copy tells, after the fact, which host, which task, what the agent said,
the end, the compensation and the clearing; `enginectl command history` prints it, as text and
as JSON."""

from __future__ import annotations

import json

from engine_service.v1 import engine_service_pb2 as pb
from harness.engine_client import wait_command
from harness.enginectl import run as ctl

MiB = 1 << 20
T = 30


def test_the_history_of_a_template_whose_copies_broke(make_dc) -> None:
    dc, vm, _, dst = make_dc(throttle=2 * MiB, disks=2)
    host = dc.agents[0]
    host_id = dc.hosts[host.workdir.name].host_id
    dc.restart_agent(host, crash_at="mid_copy")
    command_id = dc.start_template(vm, "broken", dst).command.command_id
    host.wait_crashed()
    host.start()
    assert wait_command(dc.stub, command_id).status == pb.COMMAND_STATUS_FAILED
    dc.check_invariants()  # settled, and every history agrees with its command

    events = list(
        dc.stub.ListCommandEvents(
            pb.ListCommandEventsRequest(command_id=command_id), timeout=T
        ).events
    )
    kinds = [e.kind for e in events]
    assert kinds[:3] == ["accepted", "placeholder", "placeholder"]
    assert kinds.count("task_accepted") == 2 and kinds.count("ended") == 1
    finished = [e for e in events if e.kind == "task_finished"]
    assert finished and all(e.host_id == host_id and e.task_id for e in finished)
    assert any("cleanFailure" in e.message and "restart" in e.message for e in finished)
    [end] = [e for e in events if e.kind == "ended"]
    assert end.message.startswith("FAILED: task ") and "cleanFailure" in end.message
    cleared = [e for e in events if e.kind == "task_cleared"]
    assert len(cleared) == 2 and all("compensation" in e.message for e in cleared)
    assert kinds.index("ended") < kinds.index("task_cleared")
    assert [e.event_id for e in events] == sorted(e.event_id for e in events)

    text = ctl(dc.engine.address, "command", "history", command_id)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == len(events) and "accepted" in lines[0] and "task_cleared" in lines[-1]
    as_json = ctl(dc.engine.address, "--json", "command", "history", command_id)
    assert as_json.returncode == 0, as_json.stderr
    assert [e["kind"] for e in json.loads(as_json.stdout)["events"]] == kinds

    # The host is fine again: the retry succeeds, and each history names the other.
    retried = ctl(dc.engine.address, "--json", "command", "retry", command_id)
    assert retried.returncode == 0, retried.stderr
    new_id = json.loads(retried.stdout)["command"]["command_id"]
    assert wait_command(dc.stub, new_id).status == pb.COMMAND_STATUS_SUCCEEDED
    old_events = dc.stub.ListCommandEvents(
        pb.ListCommandEventsRequest(command_id=command_id), timeout=T
    ).events
    assert old_events[-1].kind == "retried_as" and new_id in old_events[-1].message
    new_events = dc.stub.ListCommandEvents(
        pb.ListCommandEventsRequest(command_id=new_id), timeout=T
    ).events
    assert "retry_of" in [e.kind for e in new_events]
    assert [e.kind for e in new_events][-1] == "task_cleared"
    dc.check_invariants()


def test_listing_filters_bulk_cancel_and_retry_from_the_cli(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB, disks=1, disk_bytes=MiB)
    address = dc.engine.address
    # The two disks take 64 s at the throttle: still running when the cancel comes after six
    # CLI calls, each a new Python process (8 MiB, 8 s, was not enough on a loaded machine).
    disks = [
        dc.stub.AddDisk(
            pb.AddDiskRequest(name=f"slow{i}", storage_domain_id=src, size_bytes=64 * MiB),
            timeout=T,
        ).command.command_id
        for i in range(2)
    ]
    template = dc.start_template(vm, "kept", dst).command.command_id

    def listed(*args: str) -> set[str]:
        done = ctl(address, "--json", "command", "list", *args)
        assert done.returncode == 0, done.stderr
        return {c["command_id"] for c in json.loads(done.stdout).get("commands", [])}

    assert listed("--type", "AddDisk", "--status", "active") == set(disks)
    assert listed("--type", "AddVmTemplate") == {template}
    host_id = dc.hosts[dc.agents[0].workdir.name].host_id
    assert set(disks) <= listed("--host", host_id)
    bad = ctl(address, "command", "list", "--type", "Reboot")
    assert bad.returncode != 0 and "action_type" in bad.stderr
    cancelled = ctl(address, "command", "cancel", "--all", "--type", "AddDisk", "--yes")
    assert cancelled.returncode == 0, cancelled.stderr
    assert listed("--type", "AddDisk", "--status", "cancelled") == set(disks)
    assert wait_command(dc.stub, template).status == pb.COMMAND_STATUS_SUCCEEDED
    assert listed("--status", "cancelled", "--error", "CANCELLED BY A CLIENT") == set(disks)
    again = ctl(address, "--json", "command", "retry", disks[0])
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["command"]["action_type"] == "AddDisk"
    refused = ctl(address, "command", "retry", template)
    assert refused.returncode != 0 and "FAILED_PRECONDITION" in refused.stderr
