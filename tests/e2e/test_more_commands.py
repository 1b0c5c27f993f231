"""RemoveDisk, MoveDisk, RemoveVmTemplate and AddVmFromTemplate against real processes: bytes
on the shared storage, cancels mid-phase, an agent failing in each phase, and the invariants
(docs/design.md §16)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from engine_service.v1 import engine_service_pb2 as pb
from harness import enginectl
from harness.engine_client import wait_command
from harness.scenario import DataCenter

MiB = 1 << 20
T = 30


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def history(dc: DataCenter, command_id: str) -> list[str]:
    request = pb.ListCommandEventsRequest(command_id=command_id, page_size=500)
    return [e.kind for e in dc.stub.ListCommandEvents(request, timeout=T).events]


@contextmanager
def undeletable(path: Path) -> Iterator[None]:
    """The file cannot be unlinked (chattr +i) until the block ends: an agent's removal of it
    fails, as on a storage that refuses it."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is needed to make a file undeletable")
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a file immutable here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def loose_disk(dc: DataCenter, sd: str, name: str = "loose", size: int = 2 * MiB) -> pb.Disk:
    return dc.disk(dc.add_disk(sd, size, name))


# -- MoveDisk -------------------------------------------------------------------------------


def test_a_disk_moves_with_its_bytes_and_leaves_nothing_behind(make_dc) -> None:
    dc, _, src, dst = make_dc(disks=1)
    disk = loose_disk(dc, src)
    before, source = digest(dc.image_path(disk)), dc.image_path(disk)

    reply = dc.stub.MoveDisk(
        pb.MoveDiskRequest(disk_id=disk.disk_id, destination_storage_domain_id=dst), timeout=T
    )
    assert reply.disk.status == pb.DISK_STATUS_LOCKED
    done = wait_command(dc.stub, reply.command.command_id)

    assert done.status == pb.COMMAND_STATUS_SUCCEEDED, done.failure_reason
    assert [c.action_type for c in done.child_commands] == ["CopyDiskImage", "RemoveImage"]
    moved = dc.disk(disk.disk_id)
    assert (moved.storage_domain_id, moved.status) == (dst, pb.DISK_STATUS_OK)
    assert digest(dc.image_path(moved)) == before
    assert not source.exists(), "the source image is removed"
    kinds = history(dc, done.command_id)
    assert kinds.count("phase_ended") == 1 and kinds.index("phase_ended") < kinds.index("ended")
    dc.check_invariants()


def test_a_move_cancelled_while_copying_stays_where_it_was(make_dc) -> None:
    dc, _, src, dst = make_dc(disks=1, throttle=4 * MiB)
    disk = loose_disk(dc, src, size=16 * MiB)
    before = digest(dc.image_path(disk))
    reply = dc.stub.MoveDisk(
        pb.MoveDiskRequest(disk_id=disk.disk_id, destination_storage_domain_id=dst), timeout=T
    )
    wait_command(dc.stub, reply.command.command_id, lambda c: any(t.vdsm_task_id for t in c.tasks))

    dc.stub.CancelCommand(pb.CancelCommandRequest(command_id=reply.command.command_id), timeout=T)
    done = wait_command(dc.stub, reply.command.command_id)

    assert done.status == pb.COMMAND_STATUS_CANCELLED
    kept = dc.disk(disk.disk_id)
    assert (kept.storage_domain_id, kept.image_id, kept.status) == (
        src,
        disk.image_id,
        pb.DISK_STATUS_OK,
    )
    assert digest(dc.image_path(kept)) == before
    dc.check_invariants()  # no half-made copy left in the destination


def test_an_agent_dying_mid_copy_fails_the_move_and_keeps_the_source(make_dc) -> None:
    dc, _, src, dst = make_dc(disks=1, throttle=4 * MiB)
    disk = loose_disk(dc, src, size=16 * MiB)
    before = digest(dc.image_path(disk))
    reply = dc.stub.MoveDisk(
        pb.MoveDiskRequest(disk_id=disk.disk_id, destination_storage_domain_id=dst), timeout=T
    )
    wait_command(
        dc.stub, reply.command.command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks)
    )

    dc.restart_agent(dc.agents[0])  # kill -9 mid-copy: its copy task ends failed
    done = wait_command(dc.stub, reply.command.command_id)

    assert done.status == pb.COMMAND_STATUS_FAILED
    kept = dc.disk(disk.disk_id)
    assert (kept.storage_domain_id, kept.status) == (src, pb.DISK_STATUS_OK)
    assert digest(dc.image_path(kept)) == before
    dc.check_invariants()


def test_a_source_that_cannot_be_removed_fails_the_move_with_the_disk_moved(make_dc) -> None:
    """Phase 2 fails on the agent: the disk is its verified copy already, so it stays moved;
    compensation removes the source once the storage lets it."""
    dc, _, src, dst = make_dc(disks=1)
    disk = loose_disk(dc, src)
    before, source = digest(dc.image_path(disk)), dc.image_path(disk)
    with undeletable(source):
        reply = dc.stub.MoveDisk(
            pb.MoveDiskRequest(disk_id=disk.disk_id, destination_storage_domain_id=dst),
            timeout=T,
        )
        done = wait_command(dc.stub, reply.command.command_id, lambda c: c.status != 1)
        assert done.status == pb.COMMAND_STATUS_FAILED
        assert "RemoveImage" in done.failure_reason or "ended failure" in done.failure_reason
        moved = dc.disk(disk.disk_id)
        assert (moved.storage_domain_id, moved.status) == (dst, pb.DISK_STATUS_OK)
        assert digest(dc.image_path(moved)) == before
        assert source.exists()
    dc.check_invariants()  # compensation has removed the source since
    assert not source.exists()


# -- RemoveDisk ---------------------------------------------------------------------------


def test_a_disk_is_removed_and_one_in_use_is_refused(make_dc) -> None:
    dc, vm, src, _ = make_dc(disks=1)
    disk = loose_disk(dc, src)
    image = dc.image_path(disk)

    reply = dc.stub.RemoveDisk(pb.RemoveDiskRequest(disk_id=disk.disk_id), timeout=T)
    done = wait_command(dc.stub, reply.command.command_id)

    assert done.status == pb.COMMAND_STATUS_SUCCEEDED
    assert not image.exists()
    with pytest.raises(grpc.RpcError) as gone:
        dc.disk(disk.disk_id)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    in_vm = dc.stub.GetVm(pb.GetVmRequest(vm_id=vm), timeout=T).vm.disk_ids[0]
    with pytest.raises(grpc.RpcError) as refused:
        dc.stub.RemoveDisk(pb.RemoveDiskRequest(disk_id=in_vm), timeout=T)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "used by VM" in str(refused.value.details())
    dc.check_invariants()


def test_a_removal_the_storage_refuses_fails_and_is_finished_by_compensation(make_dc) -> None:
    dc, _, src, _ = make_dc(disks=1)
    disk = loose_disk(dc, src)
    image = dc.image_path(disk)
    with undeletable(image):
        reply = dc.stub.RemoveDisk(pb.RemoveDiskRequest(disk_id=disk.disk_id), timeout=T)
        done = wait_command(dc.stub, reply.command.command_id, lambda c: c.status != 1)
        assert done.status == pb.COMMAND_STATUS_FAILED
        assert image.exists()
    dc.check_invariants()  # the disk is gone and, the file deletable again, so is its image
    assert not image.exists()


# -- templates -----------------------------------------------------------------------------


def make_template(dc: DataCenter, vm: str, dst: str, name: str = "golden") -> pb.VmTemplate:
    reply = dc.start_template(vm, name, dst)
    done = wait_command(dc.stub, reply.command.command_id)
    assert done.status == pb.COMMAND_STATUS_SUCCEEDED, done.failure_reason
    return dc.stub.GetVmTemplate(
        pb.GetVmTemplateRequest(template_id=reply.template.template_id), timeout=T
    ).template


def test_a_vm_from_a_template_holds_its_bytes_and_the_template_is_then_removed(make_dc) -> None:
    dc, vm, src, dst = make_dc(disks=2)
    template = make_template(dc, vm, dst)
    template_bytes = [digest(dc.image_path(dc.disk(d))) for d in template.disk_ids]

    made = dc.stub.AddVmFromTemplate(
        pb.AddVmFromTemplateRequest(
            template_id=template.template_id, name="clone", destination_storage_domain_id=src
        ),
        timeout=T,
    )
    done = wait_command(dc.stub, made.command.command_id)
    assert done.status == pb.COMMAND_STATUS_SUCCEEDED, done.failure_reason
    clone = dc.stub.GetVm(pb.GetVmRequest(vm_id=made.vm.vm_id), timeout=T).vm
    assert [digest(dc.image_path(dc.disk(d))) for d in clone.disk_ids] == template_bytes

    template_files = [dc.image_path(dc.disk(d)) for d in template.disk_ids]
    removal = dc.stub.RemoveVmTemplate(
        pb.RemoveVmTemplateRequest(template_id=template.template_id), timeout=T
    )
    gone = wait_command(dc.stub, removal.command.command_id)
    assert gone.status == pb.COMMAND_STATUS_SUCCEEDED
    assert not any(f.exists() for f in template_files)
    with pytest.raises(grpc.RpcError) as missing:
        dc.stub.GetVmTemplate(pb.GetVmTemplateRequest(template_id=template.template_id), timeout=T)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    # The clone is a copy: it outlives its template.
    assert [digest(dc.image_path(dc.disk(d))) for d in clone.disk_ids] == template_bytes
    dc.check_invariants()


def test_a_vm_from_a_template_cancelled_mid_copy_leaves_nothing(make_dc) -> None:
    dc, vm, src, dst = make_dc(disks=2, throttle=4 * MiB, disk_bytes=8 * MiB)
    template = make_template(dc, vm, dst)
    files_before = dc.image_files()
    made = dc.stub.AddVmFromTemplate(
        pb.AddVmFromTemplateRequest(
            template_id=template.template_id, name="clone", destination_storage_domain_id=src
        ),
        timeout=T,
    )
    wait_command(
        dc.stub, made.command.command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks)
    )

    dc.stub.CancelCommand(pb.CancelCommandRequest(command_id=made.command.command_id), timeout=T)
    done = wait_command(dc.stub, made.command.command_id)

    assert done.status == pb.COMMAND_STATUS_CANCELLED
    with pytest.raises(grpc.RpcError) as missing:
        dc.stub.GetVm(pb.GetVmRequest(vm_id=made.vm.vm_id), timeout=T)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    dc.check_invariants()
    assert dc.image_files() == files_before


# -- the CLI verbs ---------------------------------------------------------------------------


def test_the_cli_moves_removes_and_clones(make_dc) -> None:
    dc, vm, src, dst = make_dc(disks=1)
    disk = loose_disk(dc, src)
    address = dc.engine.address

    moved = enginectl.run(address, "disk", "move", disk.disk_id, "--domain", dst, "--wait")
    assert moved.returncode == 0, moved.stderr
    assert "SUCCEEDED" in moved.stdout and dc.disk(disk.disk_id).storage_domain_id == dst

    template = make_template(dc, vm, dst)
    made = enginectl.run(
        address,
        "--json",
        "vm",
        "from-template",
        template.template_id,
        "--name",
        "clone",
        "--domain",
        src,
    )
    assert made.returncode == 0, made.stderr
    reply = json.loads(made.stdout)
    assert reply["vm"]["name"] == "clone" and reply["command"]["action_type"] == "AddVmFromTemplate"
    wait_command(dc.stub, reply["command"]["command_id"])

    removed = enginectl.run(address, "template", "remove", template.template_id, "--wait")
    assert removed.returncode == 0 and "SUCCEEDED" in removed.stdout, removed.stderr
    gone = enginectl.run(address, "disk", "remove", disk.disk_id, "--wait")
    assert gone.returncode == 0 and "SUCCEEDED" in gone.stdout, gone.stderr
    refused = enginectl.run(address, "disk", "remove", disk.disk_id)
    assert refused.returncode == 3 and "NOT_FOUND" in refused.stderr  # exit code of NOT_FOUND
    dc.check_invariants()


def test_a_removal_cancelled_before_its_host_answered_still_removes_the_disk(make_dc) -> None:
    """The host's agent is paused: RemoveDisk's task is sent but not accepted yet when the
    command is cancelled. The removal is never undone: when the agent wakes up and accepts it
    late, the disk is gone and so is its image."""
    dc, _, src, _ = make_dc(disks=1)
    disk = loose_disk(dc, src)
    image = dc.image_path(disk)
    agent = dc.agents[0]
    assert agent.proc is not None
    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        caller = threading.Thread(
            target=lambda: dc.stub.RemoveDisk(
                pb.RemoveDiskRequest(disk_id=disk.disk_id), timeout=60
            ),
            daemon=True,
        )
        caller.start()  # blocks in the engine: its start call waits for the paused agent
        request = pb.ListCommandsRequest(action_type="RemoveDisk")
        deadline = time.monotonic() + 30
        while not (found := dc.stub.ListCommands(request, timeout=T).commands):
            assert time.monotonic() < deadline, "the removal was never accepted"
            time.sleep(0.05)
        dc.stub.CancelCommand(pb.CancelCommandRequest(command_id=found[0].command_id), timeout=T)
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
    caller.join(timeout=90)
    done = wait_command(dc.stub, found[0].command_id)

    assert done.status == pb.COMMAND_STATUS_CANCELLED
    with pytest.raises(grpc.RpcError) as gone:
        dc.disk(disk.disk_id)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    dc.check_invariants()
    assert not image.exists()


def test_a_template_removal_the_storage_refuses_still_removes_the_template(make_dc) -> None:
    dc, vm, _, dst = make_dc(disks=2)
    template = make_template(dc, vm, dst)
    files = [dc.image_path(dc.disk(d)) for d in template.disk_ids]
    with undeletable(files[0]):
        reply = dc.stub.RemoveVmTemplate(
            pb.RemoveVmTemplateRequest(template_id=template.template_id), timeout=T
        )
        done = wait_command(dc.stub, reply.command.command_id, lambda c: c.status != 1)
        assert done.status == pb.COMMAND_STATUS_FAILED
        with pytest.raises(grpc.RpcError) as gone:
            dc.stub.GetVmTemplate(
                pb.GetVmTemplateRequest(template_id=template.template_id), timeout=T
            )
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    dc.check_invariants()
    assert not any(f.exists() for f in files)


def test_an_agent_dying_while_cloning_a_template_fails_it_and_leaves_nothing(make_dc) -> None:
    dc, vm, src, dst = make_dc(disks=2, throttle=4 * MiB, disk_bytes=8 * MiB)
    template = make_template(dc, vm, dst)
    files_before = dc.image_files()
    made = dc.stub.AddVmFromTemplate(
        pb.AddVmFromTemplateRequest(
            template_id=template.template_id, name="clone", destination_storage_domain_id=src
        ),
        timeout=T,
    )
    wait_command(
        dc.stub, made.command.command_id, lambda c: any(t.progress_percent > 0 for t in c.tasks)
    )

    dc.restart_agent(dc.agents[0])
    done = wait_command(dc.stub, made.command.command_id)

    assert done.status == pb.COMMAND_STATUS_FAILED
    with pytest.raises(grpc.RpcError) as missing:
        dc.stub.GetVm(pb.GetVmRequest(vm_id=made.vm.vm_id), timeout=T)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    dc.check_invariants()
    assert dc.image_files() == files_before
