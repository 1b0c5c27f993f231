"""Retention (`--retention`): ended commands older than the cutoff go with their children and
request ids, in bounded transactions; what is ACTIVE, still owes cleanup or is newer stays."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from engine_service.adapters.writers import in_background
from engine_service.domain.commands import CommandRecord, CommandStatus
from engine_service.domain.inventory import EntityKind, EntityLock
from engine_service.domain.requests import StoredRequest
from engine_service.domain.tasks import AsyncTask, new_id
from engine_service.service_layer.retention import MAX_INTERVAL, Pruner
from tests.unit.world import World

NOW = datetime(2026, 1, 31, 12, 0)
DAY = 86400.0
RETENTION = 30 * DAY
FAILED, SUCCEEDED, ACTIVE = CommandStatus.FAILED, CommandStatus.SUCCEEDED, CommandStatus.ACTIVE


def command(
    w: World,
    age_days: float,
    status: CommandStatus = FAILED,
    children: int = 1,
    rpc: str = "AddDisk",
) -> str:
    """A top-level command that ended `age_days` ago (created a day before; ACTIVE ones never
    ended), with `children` children and a client request id made when it was created."""
    created = NOW - timedelta(days=age_days + 1)
    ended = None if status is ACTIVE else NOW - timedelta(days=age_days)
    root = CommandRecord(new_id(), rpc, {}, None, None, status, "", created, ended)
    w.store.commands[root.command_id] = root
    for _ in range(children):
        child = CommandRecord(new_id(), "CreateVolume", {}, root.command_id, None, status)
        child.created_at, child.ended_at = created, ended
        w.store.commands[child.command_id] = child
    request(w, root.command_id, created, rpc)
    return root.command_id


def request(w: World, result_id: str, created: datetime, rpc: str = "AddHost") -> tuple[str, str]:
    key = (rpc, new_id())
    w.store.requests[key] = StoredRequest(*key, "fingerprint", result_id, created)
    return key


def owe_cleanup(w: World, root_id: str) -> None:
    """A task row left: the command ended, its cleanup on the host is still owed."""
    host = w.host(f"h-{root_id[:8]}")
    task = AsyncTask(new_id(), root_id, root_id, host.host_id, "CreateVolume", {}, "sd", "img")
    w.store.tasks[task.task_id] = task


def pruner(w: World, retention: float = RETENTION, batch: int = 500) -> Pruner:
    return Pruner(w.uow, retention, batch=batch, clock=lambda: NOW)


def family(w: World, root_id: str) -> set[str]:
    return {
        c.command_id for c in w.store.commands.values() if root_id in (c.command_id, c.parent_id)
    }


def test_ended_commands_older_than_the_retention_go_with_children_and_request_ids() -> None:
    w = World()
    old = [command(w, 31, status) for status in (FAILED, SUCCEEDED, CommandStatus.CANCELLED)]
    template = command(w, 40, SUCCEEDED, children=3, rpc="AddVmTemplate")
    report = pruner(w).prune_once()
    assert (report["commands"], report["child_commands"], report["client_requests"]) == (4, 6, 4)
    assert report.transactions == 1 and w.uow.commits == 1
    assert w.store.commands == {} and w.store.requests == {}
    assert all(not family(w, root) for root in [*old, template])


def test_what_is_newer_active_or_still_owes_cleanup_is_kept() -> None:
    w = World()
    newer = command(w, 29)
    active = command(w, 90, ACTIVE)  # accepted 91 days ago and still running
    owing = command(w, 60)
    owe_cleanup(w, owing)
    gone = command(w, 31)
    kept = {c.command_id for c in w.store.commands.values()} - family(w, gone)
    pruner(w).prune_once()
    assert set(w.store.commands) == kept
    assert {r.result_id for r in w.store.requests.values()} == {newer, active}
    assert w.command(owing).status is FAILED and [t.root_command_id for t in w.tasks(owing)]


def test_a_request_id_of_an_active_command_is_kept_however_old_others_go_after_the_cutoff() -> None:
    w = World()
    active = command(w, 365, ACTIVE)
    host_request = request(w, new_id(), NOW - timedelta(days=31))  # AddHost: not a command
    fresh_request = request(w, new_id(), NOW - timedelta(days=29))
    report = pruner(w).prune_once()
    assert report["client_requests"] == 1 and report["commands"] == 0
    assert host_request not in w.store.requests and fresh_request in w.store.requests
    assert [r.result_id for r in w.store.requests.values() if r.rpc == "AddDisk"] == [active]


def test_a_leftover_lock_does_not_stop_the_prune() -> None:
    w = World()
    root = command(w, 31)
    w.store.locks[(EntityKind.DISK, "d")] = EntityLock(EntityKind.DISK, "d", root)
    pruner(w).prune_once()
    assert w.store.commands == {} and w.store.locks == {}


def test_a_pass_deletes_in_bounded_transactions_oldest_first() -> None:
    w = World()
    for i in range(1200):
        command(w, 31 + i / 1000, children=0)
    ended = {c.command_id: c.ended_at or NOW for c in w.store.commands.values()}
    report = pruner(w, batch=500).prune_once()
    assert report.transactions == 3 and w.uow.commits == 3
    assert [len(s.commands) for s in w.uow.snapshots] == [700, 200, 0]
    left = set(w.uow.snapshots[0].commands)
    assert max(ended[c] for c in set(ended) - left) < min(ended[c] for c in left)  # oldest first
    assert report["commands"] == 1200 and report["client_requests"] == 1200


def test_a_full_batch_of_stray_request_ids_takes_another_transaction() -> None:
    w = World()
    for _ in range(5):
        request(w, new_id(), NOW - timedelta(days=40))
    report = pruner(w, batch=2).prune_once()
    assert report["client_requests"] == 5 and report.transactions == 3
    assert w.store.requests == {}


def test_stopping_ends_a_pass_between_two_transactions() -> None:
    w = World()
    for _ in range(1200):
        command(w, 31, children=0)
    p = pruner(w, batch=500)
    w.uow.on_commit.append(p.stop)  # told to stop while its first transaction commits
    report = p.prune_once()
    assert report.transactions == 1 and len(w.store.commands) == 700


def test_the_pruners_passes_are_the_engines_own_work_not_a_clients() -> None:
    """Its write units take turns with the clients' and never join their group commit
    (adapters/writers.py, adapters/group_commit.py): a long pass never holds a client's answer."""
    w = World()
    command(w, 31)
    p = Pruner(w.uow, RETENTION, first_delay=0, clock=lambda: NOW)
    seen: list[bool] = []

    def committing() -> None:
        seen.append(in_background())
        p._stop.set()

    w.uow.on_commit.append(committing)
    p._run()  # the thread's loop, here in the test's thread: one pass, then told to stop
    assert seen == [True] and not in_background()


def test_nothing_to_prune_commits_nothing() -> None:
    w = World()
    command(w, 1)
    writers = w.uow.writers_opened
    assert pruner(w).prune_once().transactions == 0 and w.uow.commits == 0
    assert w.uow.writers_opened == writers  # an idle pass never takes the writer's lock


def test_retention_zero_keeps_everything_and_starts_no_thread() -> None:
    w = World()
    command(w, 3650)
    request(w, new_id(), NOW - timedelta(days=3650))
    before = (dict(w.store.commands), dict(w.store.requests))
    p = pruner(w, retention=0)
    assert not p.enabled and p.prune_once().transactions == 0
    p.start()
    assert p._thread is None
    assert (w.store.commands, w.store.requests) == before and w.uow.commits == 0


def test_a_retention_beyond_the_calendar_prunes_nothing() -> None:
    w = World()
    command(w, 3650)
    assert pruner(w, retention=1e12).prune_once().transactions == 0


@pytest.mark.parametrize(("retention", "interval"), [(RETENTION, MAX_INTERVAL), (100.0, 10.0)])
def test_passes_come_every_tenth_of_the_retention_at_most_a_minute_apart(
    retention: float, interval: float
) -> None:
    assert Pruner(World().uow, retention).interval == interval


def test_what_a_pass_prunes_is_counted_in_engine_pruned_total() -> None:
    def value(what: str) -> float:
        return REGISTRY.get_sample_value("engine_pruned_total", {"what": what}) or 0.0

    w = World()
    command(w, 31, children=2)
    before = {what: value(what) for what in ("commands", "child_commands", "client_requests")}
    pruner(w).prune_once()
    assert {what: value(what) - before[what] for what in before} == {
        "commands": 1.0,
        "child_commands": 2.0,
        "client_requests": 1.0,
    }
