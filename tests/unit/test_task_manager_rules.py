"""AsyncTaskManager's ending rules (docs/design.md §4 step 6, invariant I3): commands whose tasks
decide them end in one commit; commands stuck on a host NON_RESPONSIVE for longer than the task
timeout fail. The manager is built over fakes and never started."""

from __future__ import annotations

from datetime import timedelta

from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus
from engine_service.domain.hosts import Host, HostStatus
from engine_service.domain.inventory import DiskStatus
from engine_service.domain.tasks import TaskCleanup
from service_common.vdsm_tasks import TaskResult, TaskState
from tests.unit.world import World

TIMEOUT = 300.0


def make_world() -> tuple[World, Host, str]:
    w = World(task_timeout=TIMEOUT)
    return w, w.host(), w.domain()


def template(w: World, sd: str, disks: int = 2) -> str:
    vm = w.vm(*(w.disk(sd, f"d{i}") for i in range(disks)), name=f"vm{len(w.store.vms)}")
    return w.add_template(vm, sd, f"tpl{len(w.store.templates)}")


def go_dead(w: World, host: Host, seconds_ago: float) -> None:
    stored = w.store.hosts[host.host_id]
    stored.status = HostStatus.NON_RESPONSIVE
    stored.unreachable_since = utcnow() - timedelta(seconds=seconds_ago)


def test_a_command_whose_tasks_all_succeeded_ends_succeeded() -> None:
    w, host, sd = make_world()
    root = w.add_disk(sd)
    for task in w.tasks(root):
        w.finish_on_agent(task)
    w.record_poll(host)
    assert w.manager().end_decided_commands() == [root]
    assert w.command(root).status is CommandStatus.SUCCEEDED
    assert [d.status for d in w.store.disks.values()] == [DiskStatus.OK]
    assert [t.cleanup for t in w.tasks(root)] == [TaskCleanup.CLEAR]


def test_one_failed_task_fails_the_command_while_the_others_still_run() -> None:
    w, host, sd = make_world()
    root = template(w, sd)
    failed, _running = w.tasks(root)
    w.finish_on_agent(failed, TaskResult.FAILURE, "no space")
    w.record_poll(host)
    assert w.manager().end_decided_commands() == [root]
    command = w.command(root)
    assert command.status is CommandStatus.FAILED
    assert command.failure_reason == f"task {failed.task_id} ended failure: no space"
    assert w.store.templates == {}
    assert {t.cleanup for t in w.tasks(root)} == {TaskCleanup.COMPENSATE}


def test_a_command_with_one_task_still_running_stays_open() -> None:
    w, host, sd = make_world()
    root = template(w, sd)
    w.finish_on_agent(w.tasks(root)[0])
    w.record_poll(host)
    commits = w.uow.commits
    assert w.manager().end_decided_commands() == []
    assert w.command(root).status is CommandStatus.ACTIVE and w.uow.commits == commits


def test_every_decided_command_ends_in_one_commit() -> None:
    w, host, sd = make_world()
    roots = [w.add_disk(sd, f"d{i}") for i in range(3)]
    for root in roots[:2]:
        w.finish_on_agent(w.tasks(root)[0])
    w.record_poll(host)
    commits = w.uow.commits
    assert sorted(w.manager().end_decided_commands()) == sorted(roots[:2])
    assert w.uow.commits == commits + 1
    assert w.command(roots[2]).status is CommandStatus.ACTIVE


def test_an_ended_command_is_not_decided_again() -> None:
    w, host, sd = make_world()
    root = w.add_disk(sd)
    w.finish_on_agent(w.tasks(root)[0], TaskResult.FAILURE)
    w.record_poll(host)
    manager = w.manager()
    assert manager.end_decided_commands() == [root]
    assert manager.end_decided_commands() == []


def test_commands_on_a_host_dead_past_the_task_timeout_fail() -> None:
    w, host, sd = make_world()
    root = w.add_disk(sd)
    go_dead(w, host, TIMEOUT + 1)
    assert w.manager().fail_commands_on_dead_hosts() == [root]
    command = w.command(root)
    assert command.status is CommandStatus.FAILED
    assert command.failure_reason.startswith(f"host host1 ({host.address}) has not answered since")
    assert command.failure_reason.endswith("task timeout 300s")
    [debt] = w.tasks(root)
    assert debt.cleanup is TaskCleanup.COMPENSATE  # cleaned up when the host answers


def test_commands_on_a_host_dead_within_the_task_timeout_wait() -> None:
    w, host, sd = make_world()
    root = w.add_disk(sd)
    go_dead(w, host, TIMEOUT - 5)
    assert w.manager().fail_commands_on_dead_hosts() == []
    assert w.command(root).status is CommandStatus.ACTIVE


def test_commands_on_other_hosts_are_not_failed_with_a_dead_host() -> None:
    w, dead, sd = make_world()
    doomed = w.add_disk(sd, "a")
    alive = w.host("host2")
    w.store.hosts[dead.host_id].status = HostStatus.MAINTENANCE  # the next goes to host2
    spared = w.add_disk(sd, "b")
    go_dead(w, dead, TIMEOUT * 2)
    assert w.manager().fail_commands_on_dead_hosts() == [doomed]
    assert w.tasks(spared)[0].host_id == alive.host_id
    assert w.command(spared).status is CommandStatus.ACTIVE


def test_a_finished_but_uncleared_task_on_a_dead_host_still_fails_its_command() -> None:
    """docs/design.md §3: the command's outcome cannot be settled without that host."""
    w, first, sd = make_world()
    second = w.host("host2")
    root = template(w, sd)  # one copy on each host
    on_first = [t for t in w.tasks(root) if t.host_id == first.host_id]
    assert len(on_first) == 1 and {t.host_id for t in w.tasks(root)} == {
        first.host_id,
        second.host_id,
    }
    w.finish_on_agent(on_first[0])
    w.record_poll(first, second)
    go_dead(w, first, TIMEOUT + 1)
    assert w.store.tasks[on_first[0].task_id].state is TaskState.FINISHED
    assert w.manager().fail_commands_on_dead_hosts() == [root]
