"""Concurrent requests against one engine: exactly one wins, the loser gets the precise error,
nothing is half-written (row locks and unique constraints, not in-process locks)."""

from __future__ import annotations

import threading
import uuid

import grpc

from engine_service.v1 import engine_service_pb2 as pb
from harness.invariants import database_state
from harness.scenario import DataCenter

MiB = 1 << 20
T = 60


def race(dc: DataCenter, requests: list[pb.AddVmTemplateRequest]) -> list[object]:
    """Send the requests at the same instant; each outcome is a reply or a status code."""
    barrier = threading.Barrier(len(requests))
    outcomes: list[object] = [None] * len(requests)

    def send(i: int) -> None:
        stub = dc.engine.stub()
        barrier.wait()
        try:
            outcomes[i] = stub.AddVmTemplate(requests[i], timeout=T)
        except grpc.RpcError as exc:
            outcomes[i] = exc.code()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_two_templates_racing_for_the_same_disks(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=4 * MiB, disks=2)
    for round_no in range(5):
        outcomes = race(
            dc,
            [
                pb.AddVmTemplateRequest(
                    vm_id=vm, name=f"r{round_no}-{side}", destination_storage_domain_id=dst
                )
                for side in ("a", "b")
            ],
        )
        winners = [o for o in outcomes if isinstance(o, pb.AddVmTemplateResponse)]
        assert len(winners) == 1, outcomes
        assert grpc.StatusCode.FAILED_PRECONDITION in outcomes, outcomes
        state = database_state(dc.engine.database_url)
        assert state.commands.get("ACTIVE", 0) == 1  # only the winner's command exists
        assert state.locked_templates == 1 and state.task_rows == 2
        dc.wait_settled()
    dc.check_invariants()
    names = [
        t.name for t in dc.stub.ListVmTemplates(pb.ListVmTemplatesRequest(), timeout=T).templates
    ]
    assert len(names) == 5


def test_two_templates_racing_for_the_same_name(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=4 * MiB, disks=1)
    other_vm = dc.add_vm("vm2", [dc.add_disk(src, MiB, "other")])
    for round_no in range(5):
        name = f"golden-{round_no}"
        outcomes = race(
            dc,
            [
                pb.AddVmTemplateRequest(
                    vm_id=v,
                    name=name,
                    destination_storage_domain_id=dst,
                    request_id=str(uuid.uuid4()),
                )
                for v in (vm, other_vm)
            ],
        )
        winners = [o for o in outcomes if isinstance(o, pb.AddVmTemplateResponse)]
        assert len(winners) == 1 and grpc.StatusCode.ALREADY_EXISTS in outcomes, outcomes
        dc.wait_settled()
    dc.check_invariants()
    templates = dc.stub.ListVmTemplates(pb.ListVmTemplatesRequest(), timeout=T).templates
    assert sorted(t.name for t in templates) == [f"golden-{i}" for i in range(5)]


def test_the_same_request_sent_twice_at_once_makes_one_command(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=4 * MiB, disks=1)
    request = pb.AddVmTemplateRequest(
        vm_id=vm, name="once", destination_storage_domain_id=dst, request_id=str(uuid.uuid4())
    )
    outcomes = race(dc, [request] * 3)
    assert all(isinstance(o, pb.AddVmTemplateResponse) for o in outcomes), outcomes
    assert len({o.command.command_id for o in outcomes}) == 1  # type: ignore[attr-defined]
    dc.check_invariants()
