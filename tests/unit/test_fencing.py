"""Fencing (issue 14, item 2): ConfirmHostRebooted for a host that never comes back fails its
ACTIVE commands, writes off its cleanup debt and records who asked, when and why; then the host
can be removed. Refused while the host answers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus, Outcome
from engine_service.domain.hosts import Host, HostStatus
from engine_service.domain.tasks import TaskCleanup
from engine_service.service_layer.fencing import confirm_host_rebooted
from engine_service.service_layer.inventory import Inventory
from service_common.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.unit.world import World

REASON = "rack 4 lost power; host powered off by hand"


def dead(w: World, host: Host) -> None:
    stored = w.store.hosts[host.host_id]
    stored.status = HostStatus.NON_RESPONSIVE
    stored.failed_polls = 9
    stored.unreachable_since = utcnow() - timedelta(hours=1)


def two_hosts_and_a_template(w: World) -> tuple[Host, Host, str]:
    """A template with one copy on each host."""
    first, second, sd = w.host("host1"), w.host("host2"), w.domain()
    vm = w.vm(w.disk(sd, "a"), w.disk(sd, "b"))
    root = w.add_template(vm, sd)
    assert {t.host_id for t in w.tasks(root)} == {first.host_id, second.host_id}
    return first, second, root


def test_a_host_that_answers_cannot_be_confirmed_rebooted_and_nothing_is_written() -> None:
    w = World()
    host, _, root = two_hosts_and_a_template(w)
    w.store.hosts[host.host_id].status = HostStatus.MAINTENANCE  # in maintenance, but answering
    commits = w.uow.commits
    with pytest.raises(FailedPrecondition, match="answers its polls"):
        confirm_host_rebooted(w.uow, w.pool, host.host_id, REASON, "ops")
    assert w.uow.commits == commits and w.command(root).status is CommandStatus.ACTIVE


def test_bad_input_names_the_field() -> None:
    w = World()
    host = w.host()
    dead(w, host)
    with pytest.raises(InvalidArgument, match="reason"):
        confirm_host_rebooted(w.uow, w.pool, host.host_id, "  ", "ops")
    with pytest.raises(InvalidArgument, match="host_id"):
        confirm_host_rebooted(w.uow, w.pool, "not-a-uuid", REASON, "ops")
    with pytest.raises(NotFound, match="host_id"):
        confirm_host_rebooted(w.uow, w.pool, "0f2b6c7e-3d4a-4e5f-8a9b-1c2d3e4f5a6b", REASON, "ops")
    assert w.store.hosts[host.host_id].confirmed_rebooted_at is None


def test_confirming_a_dead_host_fails_its_commands_writes_off_its_debt_and_lets_it_go() -> None:
    w = World()
    gone, alive, root = two_hosts_and_a_template(w)
    # An older command, already failed, still owes cleanup on the dead host.
    w.store.hosts[alive.host_id].status = HostStatus.MAINTENANCE
    older = w.add_disk(next(iter(w.store.domains)), "older")
    w.store.hosts[alive.host_id].status = HostStatus.UP
    assert w.lifecycle.finish(older, Outcome(CommandStatus.FAILED, "failed by a test"))
    dead(w, gone)
    inventory = Inventory(w.uow, w.pool)
    with pytest.raises(FailedPrecondition, match="still has"):
        inventory.remove_host(gone.host_id)  # before: refused for as long as it is gone

    fenced = confirm_host_rebooted(w.uow, w.pool, gone.host_id, REASON, "ipv4:10.0.0.9:4242")

    assert (fenced.failed_commands, fenced.written_off_tasks) == (1, 2)
    command = w.command(root)
    assert command.status is CommandStatus.FAILED
    assert (
        command.failure_reason
        == f"host host1 was confirmed rebooted by ipv4:10.0.0.9:4242: {REASON}"
    )
    assert w.store.templates == {} and w.locks(root) == set()
    # Nothing is left on the fenced host; the copy on the other host is compensated as usual.
    assert [t.host_id for t in w.store.tasks.values()] == [alive.host_id]
    assert [t.cleanup for t in w.tasks(root)] == [TaskCleanup.COMPENSATE]
    stored = w.store.hosts[gone.host_id]
    assert stored.confirmed_rebooted_by == "ipv4:10.0.0.9:4242"
    assert stored.confirmed_rebooted_reason == REASON and stored.confirmed_rebooted_at is not None
    inventory.remove_host(gone.host_id)
    assert gone.host_id not in w.store.hosts


def test_what_a_fenced_host_reports_when_it_comes_back_is_unknown_to_the_engine() -> None:
    w = World()
    gone, _, root = two_hosts_and_a_template(w)
    [task] = [t for t in w.tasks(root) if t.host_id == gone.host_id]
    dead(w, gone)
    confirm_host_rebooted(w.uow, w.pool, gone.host_id, REASON, "ops")
    assert w.repo().known_among("vdsm_task_id", [task.vdsm_task_id]) == set()
    assert w.repo().known_among("task_id", [task.task_id]) == set()
