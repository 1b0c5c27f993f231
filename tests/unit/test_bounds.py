"""The bounds the poll loop enforces (issue 14, items 1, 7 and 8; docs/design.md §12): a host
that stops answering in any status times its commands out; a dead host's commands fail
set-based, in one commit; a command older than --command-timeout ends FAILED and is
compensated. The manager is built over fakes and never started."""

from __future__ import annotations

from datetime import timedelta

from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus
from engine_service.domain.hosts import Host, HostStatus
from engine_service.domain.tasks import TaskCleanup
from service_common.vdsm_tasks import TaskState
from tests.unit.world import World

TIMEOUT = 300.0


def stop_answering(w: World, host: Host, seconds_ago: float, status: HostStatus) -> None:
    stored = w.store.hosts[host.host_id]
    stored.status = status
    stored.failed_polls = 3
    stored.unreachable_since = utcnow() - timedelta(seconds=seconds_ago)


def age(w: World, root: str, seconds: float) -> None:
    """Make a command (and its children) `seconds` older."""
    for command in w.store.commands.values():
        if command.command_id == root or command.parent_id == root:
            command.created_at -= timedelta(seconds=seconds)


# -- item 1: liveness in every status -------------------------------------------------------


def test_commands_on_a_host_in_maintenance_that_stopped_answering_time_out() -> None:
    w = World(task_timeout=TIMEOUT)
    host, sd = w.host(), w.domain()
    root = w.add_disk(sd)
    stop_answering(w, host, TIMEOUT + 1, HostStatus.MAINTENANCE)
    assert w.manager().fail_commands_on_dead_hosts() == [root]
    command = w.command(root)
    assert command.status is CommandStatus.FAILED
    assert command.failure_reason.endswith(f"task timeout {TIMEOUT:g}s")


def test_a_host_put_in_maintenance_while_non_responsive_keeps_its_clock() -> None:
    w = World(task_timeout=TIMEOUT, host_failure_polls=1)
    host, sd = w.host(), w.domain()
    root = w.add_disk(sd)
    w.agent(host).down = True
    w.record_poll(host)  # NON_RESPONSIVE from now
    stored = w.store.hosts[host.host_id]
    assert stored.status is HostStatus.NON_RESPONSIVE
    stored.set_maintenance(True)  # the operator's move must not stop its clock
    w.record_poll(host)  # still silent
    since = w.store.hosts[host.host_id].unreachable_since
    assert since is not None
    w.store.hosts[host.host_id].unreachable_since = since - timedelta(seconds=TIMEOUT)
    assert w.manager().fail_commands_on_dead_hosts() == [root]


# -- item 7: set-based -------------------------------------------------------------------


def test_a_dead_hosts_commands_fail_in_one_commit_whatever_their_number() -> None:
    w = World(task_timeout=TIMEOUT)
    dead, sd = w.host(), w.domain()
    roots = [w.add_disk(sd, f"d{i}") for i in range(40)]
    stop_answering(w, dead, TIMEOUT + 1, HostStatus.NON_RESPONSIVE)
    commits = w.uow.commits
    assert sorted(w.manager().fail_commands_on_dead_hosts()) == sorted(roots)
    assert w.uow.commits == commits + 1
    assert {w.command(r).status for r in roots} == {CommandStatus.FAILED}
    assert {c.status for r in roots for c in w.children(r)} == {CommandStatus.FAILED}
    assert w.store.locks == {} and w.store.disks == {}
    assert {t.cleanup for t in w.store.tasks.values()} == {TaskCleanup.COMPENSATE}


def test_nothing_is_written_while_no_dead_host_has_active_commands() -> None:
    w = World(task_timeout=TIMEOUT)
    dead, sd = w.host(), w.domain()
    root = w.add_disk(sd)
    stop_answering(w, dead, TIMEOUT + 1, HostStatus.NON_RESPONSIVE)
    manager = w.manager()
    assert manager.fail_commands_on_dead_hosts() == [root]
    commits = w.uow.commits
    assert manager.fail_commands_on_dead_hosts() == []
    assert w.uow.commits == commits


def test_two_dead_hosts_each_give_their_own_reason() -> None:
    w = World(task_timeout=TIMEOUT)
    first, sd = w.host("host1"), w.domain()
    one = w.add_disk(sd, "a")
    w.store.hosts[first.host_id].status = HostStatus.MAINTENANCE  # the next goes to host2
    second = w.host("host2")
    two = w.add_disk(sd, "b")
    stop_answering(w, first, TIMEOUT + 1, HostStatus.NON_RESPONSIVE)
    stop_answering(w, second, TIMEOUT + 1, HostStatus.NON_RESPONSIVE)
    assert sorted(w.manager().fail_commands_on_dead_hosts()) == sorted([one, two])
    assert w.command(one).failure_reason.startswith("host host1 ")
    assert w.command(two).failure_reason.startswith("host host2 ")


# -- item 8: --command-timeout -----------------------------------------------------------


def test_a_command_past_the_command_timeout_fails_and_its_running_tasks_are_stopped() -> None:
    w = World(command_timeout=3600)
    host, sd = w.host(), w.domain()
    vm = w.vm(w.disk(sd, "a"), w.disk(sd, "b"))
    root = w.add_template(vm, sd)
    young = w.add_disk(sd, "young")
    age(w, root, 3601)
    manager = w.manager()
    assert manager.fail_commands_past_timeout() == [root]
    command = w.command(root)
    assert command.status is CommandStatus.FAILED
    assert command.failure_reason.startswith("command timeout: still ACTIVE 3600s after")
    assert "--command-timeout" in command.failure_reason
    assert w.store.templates == {} and w.locks(root) == set()
    assert {t.cleanup for t in w.tasks(root)} == {TaskCleanup.COMPENSATE}
    assert w.command(young).status is CommandStatus.ACTIVE
    # Compensation: the next cleanup stops the copies still running on the agent.
    result = w.record_poll(host)
    manager.clean_up(result)
    stopped = {args[0] for args in w.agent(host).called("stop_task")}
    assert stopped == {t.vdsm_task_id for t in w.tasks(root)}
    for task in w.tasks(root):
        assert task.vdsm_task_id is not None
        w.agent(host).report(task.vdsm_task_id, TaskState.FINISHED)
    manager.clean_up(w.record_poll(host))
    assert w.tasks(root) == []
    assert len(w.agent(host).deleted_images) == 2


def test_a_command_within_the_command_timeout_is_left_alone_without_a_write() -> None:
    w = World(command_timeout=3600)
    w.host()
    root = w.add_disk(w.domain())
    age(w, root, 3500)
    commits = w.uow.commits
    assert w.manager().fail_commands_past_timeout() == []
    assert w.command(root).status is CommandStatus.ACTIVE and w.uow.commits == commits


def test_a_command_timeout_of_zero_disables_it() -> None:
    w = World(command_timeout=0)
    w.host()
    root = w.add_disk(w.domain())
    age(w, root, 10 * 365 * 86400)
    assert w.manager().fail_commands_past_timeout() == []
    assert w.command(root).status is CommandStatus.ACTIVE
