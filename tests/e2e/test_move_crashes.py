"""The crash matrix on MoveDisk (docs/design.md §6, §16): the engine dies at each of its crash
points, `between_phases` included, is started again, and then: the disk is OK, its bytes are
the ones it had, it is in the domain the outcome says, and no other image is left (no
half-made copy, no source kept after the move), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from engine_service.service_layer.reconciliation import ORPHAN_REASON
from engine_service.v1 import engine_service_pb2 as pb

MiB = 1 << 20
T = 30

# Point -> (the move's final status, where the disk ends: "src" or "dst"); None: no command.
EXPECTED = {
    "placeholders_uncommitted": None,
    "after_placeholders_commit": (pb.COMMAND_STATUS_FAILED, "src"),
    "after_agent_accept": (pb.COMMAND_STATUS_SUCCEEDED, "dst"),  # its one task was adopted
    "after_vdsm_id_commit": (pb.COMMAND_STATUS_SUCCEEDED, "dst"),
    "between_phases": (pb.COMMAND_STATUS_FAILED, "dst"),  # the copy was recorded: kept
    "before_end_commit": (pb.COMMAND_STATUS_SUCCEEDED, "dst"),
    "before_clear": (pb.COMMAND_STATUS_SUCCEEDED, "dst"),
}


@pytest.mark.parametrize("point", list(EXPECTED))
def test_a_move_survives_an_engine_crash_at(make_dc, point: str) -> None:
    dc, _, src, dst = make_dc(disks=1, throttle=8 * MiB)
    disk = dc.disk(dc.add_disk(src, 2 * MiB, "moving"))
    source = dc.image_path(disk)
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    files_before = dc.image_files()
    dc.engine.kill()
    dc.engine.start(crash_at=point)
    try:
        dc.stub.MoveDisk(
            pb.MoveDiskRequest(disk_id=disk.disk_id, destination_storage_domain_id=dst),
            timeout=T,
        )
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
    dc.engine.wait_crashed()
    dc.engine.start()

    commands = dc.check_invariants()  # settled; no lock, task or stray image left
    moves = [c for c in commands if c.action_type == "MoveDisk"]
    final = dc.disk(disk.disk_id)
    assert final.status == pb.DISK_STATUS_OK
    image = dc.image_path(final)
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before, "the bytes survive"
    expected = EXPECTED[point]
    if expected is None:
        assert moves == [] and final.storage_domain_id == src
        assert dc.image_files() == files_before
        return
    status, where = expected
    (move,) = moves
    assert move.status == status, move.failure_reason
    assert final.storage_domain_id == (src if where == "src" else dst)
    assert source.exists() == (where == "src"), "one image of the disk, wherever it is"
    if point == "between_phases":
        assert move.failure_reason == ORPHAN_REASON
