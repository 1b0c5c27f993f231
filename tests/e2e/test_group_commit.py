"""Concurrent submissions to a real engine process: on SQLite their write units share COMMITs
(adapters/group_commit.py, seen in the engine's metric), and an engine killed in the middle of
them loses no submission it answered, on either backend."""

from __future__ import annotations

import threading
import uuid

import grpc

from engine_service.v1 import engine_service_pb2 as pb
from harness.ports import free_port
from tests.e2e.test_operations import scrape

T = 60


def _submit_until_refused(dc, src: str, answered: list[str], rounds: int | None = None) -> None:
    """AddDisk requests back to back (each with its own request id) until the engine stops
    answering, or `rounds` of them; the command ids answered go into `answered`."""
    stub = dc.engine.stub()
    i = 0
    while rounds is None or i < rounds:
        request = pb.AddDiskRequest(
            name=f"g-{uuid.uuid4().hex[:8]}",
            storage_domain_id=src,
            size_bytes=1 << 20,
            request_id=str(uuid.uuid4()),
        )
        try:
            reply = stub.AddDisk(request, timeout=T)
        except grpc.RpcError:
            return
        answered.append(reply.command.command_id)
        i += 1


def _clients(count: int, target, *args) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=args, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def test_concurrent_submissions_share_commits_and_a_kill_loses_none_answered(
    make_dc, database_url: str
) -> None:
    port = free_port()
    dc, vm, src, dst = make_dc(disks=1, engine_args=["--metrics-listen", f"127.0.0.1:{port}"])
    answered: list[str] = []
    for thread in _clients(16, _submit_until_refused, dc, src, answered, 4):
        thread.join(120)
    assert len(answered) == 64
    samples = scrape(port)
    if database_url.startswith("sqlite"):
        units, commits = (
            samples["engine_write_group_units_sum"],
            samples["engine_write_group_units_count"],
        )
        assert units >= 64 and commits < units, (units, commits)  # some COMMIT held several
    else:
        assert samples.get("engine_write_group_units_count", 0) == 0  # PostgreSQL: no groups

    during: list[str] = []
    threads = _clients(12, _submit_until_refused, dc, src, during)
    while len(during) < 20:
        threading.Event().wait(0.01)
    dc.engine.kill()  # units are in flight: some waiting for a group's COMMIT
    for thread in threads:
        thread.join(T)
    dc.engine.start()
    for command_id in answered + during:  # every answered submission is durable
        reply = dc.stub.GetCommand(pb.GetCommandRequest(command_id=command_id), timeout=T)
        assert reply.command.command_id == command_id
    dc.check_invariants()
