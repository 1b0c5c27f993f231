"""Restart safety (docs/design.md §5, §6, §7): real processes die at named points and at random
moments; after a restart, the invariants are checked from outside."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter

import grpc
import pytest

from engine_service.service_layer.reconciliation import ORPHAN_REASON
from engine_service.v1 import engine_service_pb2 as pb
from harness.engine_client import wait_command
from harness.invariants import database_state
from harness.scenario import DataCenter

MiB = 1 << 20
T = 30


def start_template(dc: DataCenter, vm: str, name: str, dst: str) -> str | None:
    """AddVmTemplate; the command id, or None if the engine died before answering."""
    try:
        return dc.start_template(vm, name, dst).command.command_id
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
        return None


def only_template_command(dc: DataCenter) -> pb.Command:
    found = [c for c in dc.commands() if c.action_type == "AddVmTemplate"]
    assert len(found) == 1, found
    return found[0]


def startup_report(dc: DataCenter) -> pb.ReconcileReport:
    reply = dc.stub.ReconcileOrphans(pb.ReconcileOrphansRequest(), timeout=T)
    this_run = (
        list(reply.failed_command_ids),
        reply.removed_placeholders,
        reply.adopted_tasks,
        reply.cleared_zombies,
    )
    assert this_run == ([], 0, 0, 0)  # startup already did everything: the RPC finds nothing
    return reply.startup_report


# Expected outcome per engine crash point (docs/design.md §6, with --orphans=fail): the
# command's final status, and the startup report as (failed, removed placeholders, adopted).
DURING_SUBMIT = {
    "placeholders_uncommitted": (None, (0, 0, 0)),
    "after_placeholders_commit": (pb.COMMAND_STATUS_FAILED, (1, 3, 0)),
    "after_agent_accept": (pb.COMMAND_STATUS_FAILED, (1, 2, 1)),
    "after_vdsm_id_commit": (pb.COMMAND_STATUS_SUCCEEDED, (0, 0, 0)),
}
DURING_POLLING = ("before_end_commit", "before_clear")


@pytest.mark.parametrize("point", list(DURING_SUBMIT))
def test_engine_crash_during_submission(make_dc, point: str) -> None:
    dc, vm, src, dst = make_dc(throttle=8 * MiB)
    files_before = dc.image_files()
    dc.engine.kill()
    dc.engine.start(crash_at=point)
    assert start_template(dc, vm, "tpl", dst) is None
    dc.engine.wait_crashed()
    dc.engine.start()
    expected_status, expected_report = DURING_SUBMIT[point]
    report = startup_report(dc)
    assert (
        len(report.failed_command_ids),
        report.removed_placeholders,
        report.adopted_tasks,
    ) == expected_report
    commands = dc.check_invariants()
    templates = [c for c in commands if c.action_type == "AddVmTemplate"]
    if expected_status is None:  # nothing was persisted, and no agent task started
        assert templates == []
        assert dc.image_files() == files_before
        return
    (command,) = templates
    assert command.status == expected_status, command.failure_reason
    if expected_status == pb.COMMAND_STATUS_FAILED:
        assert list(report.failed_command_ids) == [command.command_id]
        assert command.failure_reason == ORPHAN_REASON
        assert dc.image_files() == files_before  # the adopted copy was deleted too
        listed = dc.stub.ListVmTemplates(pb.ListVmTemplatesRequest(), timeout=T).templates
        assert list(listed) == []
    else:
        (template,) = dc.stub.ListVmTemplates(pb.ListVmTemplatesRequest(), timeout=T).templates
        assert template.status == pb.TEMPLATE_STATUS_OK


@pytest.mark.parametrize("point", DURING_POLLING)
def test_engine_crash_while_ending_or_clearing(make_dc, point: str) -> None:
    dc, vm, src, dst = make_dc(throttle=8 * MiB)
    dc.engine.kill()
    dc.engine.start(crash_at=point)
    command_id = start_template(dc, vm, "tpl", dst)
    assert command_id is not None
    dc.engine.wait_crashed()
    if point == "before_end_commit":  # the end was not committed
        state = database_state(dc.engine.database_url)
        assert state.commands.get("ACTIVE") == 1 and state.locks > 0
    dc.engine.start()
    commands = dc.check_invariants()
    assert [c.status for c in commands if c.action_type == "AddVmTemplate"] == [
        pb.COMMAND_STATUS_SUCCEEDED
    ]
    (template,) = dc.stub.ListVmTemplates(pb.ListVmTemplatesRequest(), timeout=T).templates
    assert template.status == pb.TEMPLATE_STATUS_OK
    assert len(template.disk_ids) == 3


def test_engine_crash_mid_reconcile_changes_nothing(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=8 * MiB)
    files_before = dc.image_files()
    dc.engine.kill()
    dc.engine.start(crash_at="after_placeholders_commit")
    start_template(dc, vm, "tpl", dst)
    dc.engine.wait_crashed()
    before = database_state(dc.engine.database_url)
    assert before.commands.get("ACTIVE") == 1 and before.placeholders == 3
    dc.engine.start(crash_at="mid_reconcile", wait=False)
    dc.engine.wait_crashed()
    assert database_state(dc.engine.database_url) == before  # the transaction never committed
    dc.engine.start()
    report = startup_report(dc)
    assert (len(report.failed_command_ids), report.removed_placeholders) == (1, 3)
    dc.check_invariants()
    assert only_template_command(dc).status == pb.COMMAND_STATUS_FAILED
    assert dc.image_files() == files_before


def test_agent_crash_after_task_persist_the_retry_finds_the_same_task(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=8 * MiB)
    host = dc.agents[0]
    dc.restart_agent(host, crash_at="after_task_persist")
    answer: list[str | None] = []
    submit = threading.Thread(target=lambda: answer.append(start_template(dc, vm, "tpl", dst)))
    submit.start()
    host.wait_crashed()
    host.start()  # back while the engine retries with the same request id
    submit.join(60)
    assert answer and answer[0] is not None
    command = wait_command(dc.stub, answer[0], lambda c: c.status != pb.COMMAND_STATUS_ACTIVE)
    # The first copy was interrupted by the crash: it failed the command cleanly.
    assert command.status == pb.COMMAND_STATUS_FAILED
    assert "cleanFailure" in command.failure_reason
    dc.check_invariants()
    assert "ACTIVE" not in database_state(dc.engine.database_url).commands


def test_agent_killed_mid_copy_fails_and_compensates_and_the_engine_stays_healthy(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=2 * MiB)
    files_before = dc.image_files()
    host = dc.agents[0]
    dc.restart_agent(host, crash_at="mid_copy")
    command_id = start_template(dc, vm, "tpl", dst)
    assert command_id is not None
    host.wait_crashed()
    assert any(name.endswith(".partial") for name in dc.image_files())
    host.start()
    command = wait_command(dc.stub, command_id)
    assert command.status == pb.COMMAND_STATUS_FAILED
    assert "cleanFailure" in command.failure_reason and "restart" in command.failure_reason
    assert dc.engine.health() == "SERVING"
    dc.check_invariants()
    assert dc.image_files() == files_before


def test_a_task_the_agent_lost_fails_its_command(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB)
    files_before = dc.image_files()
    command_id = start_template(dc, vm, "tpl", dst)
    assert command_id is not None
    host = dc.agents[0]
    host.kill()
    for record in (host.state_dir / "tasks").iterdir():
        record.unlink()  # the host forgot everything it had accepted
    host.start()
    command = wait_command(dc.stub, command_id)
    assert command.status == pb.COMMAND_STATUS_FAILED
    assert "no longer knows" in command.failure_reason
    dc.check_invariants()
    assert dc.image_files() == files_before  # its partial files were removed by compensation


def test_unreachable_host_at_restart_leaves_durable_debt_paid_when_it_returns(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=MiB)
    files_before = dc.image_files()
    dc.engine.kill()
    dc.engine.start(crash_at="after_agent_accept")
    start_template(dc, vm, "tpl", dst)
    dc.engine.wait_crashed()
    host = dc.agents[0]
    host.kill()  # the host is down when the engine restarts
    dc.engine.start()
    report = startup_report(dc)
    assert len(report.failed_command_ids) == 1  # the seed's rule: failed
    assert report.removed_placeholders == 0  # kept as debt: one of them did reach the host
    command = only_template_command(dc)
    assert command.status == pb.COMMAND_STATUS_FAILED and len(command.tasks) == 3
    host.start()
    dc.check_invariants()
    assert dc.image_files() == files_before


def test_orphans_resubmit_policy_completes_the_command(make_dc) -> None:
    dc, vm, src, dst = make_dc(throttle=8 * MiB, engine_args=["--orphans", "resubmit"])
    dc.engine.kill()
    dc.engine.start(crash_at="after_agent_accept")
    start_template(dc, vm, "tpl", dst)
    dc.engine.wait_crashed()
    dc.engine.start()
    report = startup_report(dc)
    assert (list(report.failed_command_ids), report.adopted_tasks) == ([], 1)
    dc.check_invariants()
    assert only_template_command(dc).status == pb.COMMAND_STATUS_SUCCEEDED


def test_zombies_are_stopped_and_cleared_after_their_grace(make_dc) -> None:
    from vdsm_agent.v1 import agent_service_pb2 as apb

    dc, vm, src, dst = make_dc(engine_args=["--zombie-grace", "1"])
    files_before = dc.image_files()
    host = dc.agents[0]
    stray = (
        host.stub()
        .CreateVolume(
            apb.CreateVolumeRequest(
                request_id=str(uuid.uuid4()),
                storage_domain_id=dst,
                image_id=str(uuid.uuid4()),
                size_bytes=4096,
            ),
            timeout=T,
        )
        .task_id
    )
    deadline = time.monotonic() + 20
    while dc.agent_tasks() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dc.agent_tasks() == [] and dc.image_files() == files_before
    assert f"zombie task {stray}" in dc.engine.log_path.read_text()
    for _ in range(2):
        reply = dc.stub.ReconcileOrphans(pb.ReconcileOrphansRequest(), timeout=T)
        assert (
            list(reply.failed_command_ids),
            reply.removed_placeholders,
            reply.adopted_tasks,
            reply.cleared_zombies,
        ) == ([], 0, 0, 0)


def test_randomized_engine_kills_during_a_stream_of_commands(make_dc) -> None:
    seed = int(os.environ.get("SOAK_SEED", random.randrange(1 << 32)))
    rounds, budget = (
        int(os.environ.get("SOAK_ROUNDS", 50)),
        float(os.environ.get("SOAK_SECONDS", 60)),
    )
    print(f"soak seed {seed} (replay with SOAK_SEED={seed})")
    rng = random.Random(seed)
    dc, vm, src, dst = make_dc(hosts=2, throttle=16 * MiB, disk_bytes=MiB)
    started = time.monotonic()
    done = 0
    made_disks: list[str] = []  # shared by the rounds: earlier rounds' disks are OK by now
    for round_no in range(rounds):
        if time.monotonic() - started > budget:
            break
        stream = CommandStream(
            dc, vm, src, dst, random.Random(rng.random()), f"r{round_no}", made_disks
        )
        stream.start()
        time.sleep(rng.uniform(0.05, 0.6))  # a random moment of the stream
        dc.engine.kill()
        stream.join(60)
        dc.engine.start()
        try:
            dc.check_invariants(timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"soak seed {seed}, round {round_no}: {exc}") from exc
        done += 1
    outcomes = Counter(
        pb.CommandStatus.Name(c.status).removeprefix("COMMAND_STATUS_") for c in dc.commands()
    )
    reasons = Counter(c.failure_reason.split(":")[0] for c in dc.commands() if c.failure_reason)
    kinds = Counter(c.action_type for c in dc.commands())
    print(
        f"soak seed {seed}: {done} round(s) in {time.monotonic() - started:.0f}s, invariants "
        f"held after every restart; commands {dict(outcomes)} of types {dict(kinds)}; failure "
        f"reasons {dict(reasons)}"
    )
    assert done >= 5


class CommandStream(threading.Thread):
    """Sends AddVmTemplate, AddDisk, MoveDisk and RemoveDisk requests back to back until the
    engine dies; the moves and removals take disks the stream made."""

    def __init__(
        self,
        dc: DataCenter,
        vm: str,
        src: str,
        dst: str,
        rng: random.Random,
        prefix: str,
        made: list[str],
    ) -> None:
        super().__init__(daemon=True)
        self.dc, self.vm, self.src, self.dst, self.rng, self.prefix = dc, vm, src, dst, rng, prefix
        self.made = made

    def run(self) -> None:
        made = self.made
        for i in range(200):
            roll = self.rng.random()
            try:
                if roll < 0.4:
                    self.dc.start_template(self.vm, f"{self.prefix}-{i}", self.dst)
                elif roll < 0.7 or not made:
                    made.append(
                        self.dc.add_disk(self.src, 1 << 20, f"{self.prefix}-{i}", wait=False)
                    )
                elif roll < 0.85:
                    where = self.rng.choice([self.src, self.dst])
                    request = pb.MoveDiskRequest(
                        disk_id=self.rng.choice(made), destination_storage_domain_id=where
                    )
                    self.dc.stub.MoveDisk(request, timeout=T)
                else:
                    request_rm = pb.RemoveDiskRequest(
                        disk_id=made.pop(self.rng.randrange(len(made)))
                    )
                    self.dc.stub.RemoveDisk(request_rm, timeout=T)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    return  # the engine died under this request
                # Disks locked (or in place already), or removed by a failed AddDisk.
                assert exc.code() in (
                    grpc.StatusCode.FAILED_PRECONDITION,
                    grpc.StatusCode.NOT_FOUND,
                ), exc
