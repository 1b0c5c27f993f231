"""The nemesis's checker, run once everything has healed: what was lost, what is stuck, what
leaked, and the one line that sums a run up."""

from __future__ import annotations

import collections
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from durable_virt_tasks_client import CallError, EngineClient, pb
from harness.invariants import database_state, history_disagreements, storage_debris
from harness.nemesis.datacenter import DataCenter
from harness.nemesis.schedule import SETTLE_BOUND
from harness.nemesis.workload import Workload, is_command


@dataclass
class Outcome:
    """What a run found: its faults by kind, its commands by status, and what was lost,
    stuck or leaked (each a line for a person; a run is ok when all three are empty)."""

    seed: int
    faults: collections.Counter[str]
    commands: collections.Counter[str]
    lost: list[str]
    stuck: list[str]
    leaked: list[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.stuck or self.leaked)

    def last_line(self) -> str:
        faults = ", ".join(f"{k}={n}" for k, n in sorted(self.faults.items()))
        statuses = " ".join(
            f"{s}={self.commands.get(s, 0)}" for s in ("SUCCEEDED", "FAILED", "CANCELLED")
        )
        return (
            f"nemesis: seed {self.seed}, {sum(self.faults.values())} faults ({faults}), "
            f"{sum(self.commands.values())} commands ({statuses}), lost {len(self.lost)}, "
            f"stuck {len(self.stuck)}, leaked {len(self.leaked)}"
        )


def check(
    dc: DataCenter,
    workload: Workload,
    faults: collections.Counter[str],
    seed: int,
    say: Callable[[str], None],
) -> Outcome:
    client = workload.client
    lost: list[str] = []
    stuck: list[str] = []
    leaked: list[str] = []
    # Every create: once more with its request id. The same command comes back for those
    # that had one; those whose outcome was never learnt get theirs now (made now, or found).
    for create in workload.creates:
        if create.command_id.startswith("refused:"):
            continue
        try:
            workload.send(create)
        except AssertionError as error:
            lost.append(str(error))
        except CallError as error:
            if error.code == grpc.StatusCode.NOT_FOUND:
                lost.append(f"{create.kind} {create.request_id}: {error.message}")
    deadline = time.monotonic() + SETTLE_BOUND
    commands = _settle(client, deadline)
    stuck = [
        f"{c.command_id} {c.action_type} {pb.CommandStatus.Name(c.status)} "
        f"with {len(c.tasks)} task(s)"
        for c in commands
        if c.status == pb.COMMAND_STATUS_ACTIVE or c.tasks
    ]
    known = {c.command_id: c for c in commands}
    for create in workload.creates:
        if is_command(create.command_id) and create.command_id not in known:
            lost.append(f"{create.kind} command {create.command_id} is unknown to the engine")
    lost += _bytes_lost(dc, client, commands)
    leaked += _leftovers(dc, client, deadline)
    counted = collections.Counter(pb.CommandStatus.Name(c.status)[15:] for c in commands)
    outcome = Outcome(seed, faults, counted, lost, stuck, leaked)
    for label, problems in (("lost", lost), ("stuck", stuck), ("leaked", leaked)):
        for problem in problems[:20]:
            say(f"nemesis: {label}: {problem}")
    return outcome


def _settle(client: EngineClient, deadline: float) -> list[pb.Command]:
    while True:
        commands = list(client.commands(page_size=500))
        busy = [c for c in commands if c.status == pb.COMMAND_STATUS_ACTIVE or c.tasks]
        if not busy or time.monotonic() > deadline:
            return commands
        time.sleep(0.5)


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return f"missing {path.name}"


def _bytes_lost(dc: DataCenter, client: EngineClient, commands: list[pb.Command]) -> list[str]:
    lost: list[str] = []
    vm_bytes: dict[str, list[str]] = {}
    for command in commands:
        if command.status != pb.COMMAND_STATUS_SUCCEEDED:
            continue
        if command.action_type == "AddDisk":
            disk = client.get_disk(command.target_id)
            if disk.status != pb.DISK_STATUS_OK or not dc.image(disk).is_file():
                lost.append(f"disk {disk.disk_id} of a SUCCEEDED AddDisk has no OK image")
        elif command.action_type == "AddVmTemplate":
            template = client.get_vm_template(command.target_id)
            if template.vm_id not in vm_bytes:
                vm = client.get_vm(template.vm_id)
                vm_bytes[template.vm_id] = sorted(
                    _digest(dc.image(client.get_disk(d))) for d in vm.disk_ids
                )
            copies = sorted(_digest(dc.image(client.get_disk(d))) for d in template.disk_ids)
            if template.status != pb.TEMPLATE_STATUS_OK or copies != vm_bytes[template.vm_id]:
                lost.append(f"template {template.template_id}: its copies differ from its VM's")
    return lost


def _leftovers(dc: DataCenter, client: EngineClient, deadline: float) -> list[str]:
    assert dc.engine is not None
    url = dc.engine.database_url
    # Zombies (tasks no command asked for) are cleared after their grace period.
    while True:
        tasks = dc.agent_tasks()
        debris = storage_debris(url, dc.storage)
        if (not tasks and not debris) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    leaked = [f"task left on an agent: {t}" for t in tasks]
    leaked += [f"file on storage that is no OK image: {d}" for d in debris]
    state = database_state(url)
    for name, count in (
        ("task rows", state.task_rows),
        ("placeholders", state.placeholders),
        ("entity locks", state.locks),
        ("LOCKED disks", state.locked_disks),
        ("LOCKED templates", state.locked_templates),
    ):
        if count:
            leaked.append(f"{count} {name} left in the database")
    leaked += [f"history: {p}" for p in history_disagreements(url)]
    report = client.reconcile_orphans()
    for name in ("failed_commands", "removed_placeholders", "adopted_tasks", "cleared_zombies"):
        if getattr(report, name):
            leaked.append(f"ReconcileOrphans after healing: {name}={getattr(report, name)}")
    return leaked
