"""A poll in which nothing changed writes nothing (docs/design.md §4 step 5; liveness.py): no
writing unit is even opened. A host's last answer is kept in memory and written with a change of
its durable state, or once the stored one is `last_seen_every` seconds old; the views show the
newest. No thread is started."""

from __future__ import annotations

from engine_service.adapters.agent_client import AgentPool
from engine_service.domain.clock import utcnow
from engine_service.domain.hosts import Host, HostStatus
from engine_service.service_layer.inventory import Inventory
from engine_service.service_layer.polling import Poller, PollResult
from service_common.vdsm_tasks import TaskState
from tests.unit.world import World


def answers(*hosts: tuple[Host, World]) -> PollResult:
    """What one poll of these hosts' agents sees."""
    result = PollResult()
    for host, w in hosts:
        result.asked_at[host.host_id] = utcnow()
        result.statuses[host.host_id] = dict(w.agent(host).statuses)
    return result


def silence(host: Host) -> PollResult:
    return PollResult(asked_at={host.host_id: utcnow()}, unreachable={host.host_id: "refused"})


def writes(w: World, poller: Poller, result: PollResult, *hosts: Host) -> int:
    """Record a poll; how many writing units it opened (each one commits once at most)."""
    before = w.uow.writers_opened
    poller.record([h.host_id for h in hosts], result)
    return w.uow.writers_opened - before


def test_a_poll_that_changes_nothing_opens_no_writing_unit() -> None:
    w = World()
    host = w.host()
    [task] = w.tasks(w.add_disk(w.domain()))
    poller = w.poller()
    assert writes(w, poller, answers((host, w)), host) == 1  # the first answer is stored
    stored = w.store.hosts[host.host_id].last_seen_at
    commits = w.uow.commits
    for _ in range(3):
        assert writes(w, poller, answers((host, w)), host) == 0
    assert w.uow.commits == commits and w.store.hosts[host.host_id].last_seen_at == stored
    assert w.store.tasks[task.task_id].vdsm_task_id is not None  # a task in flight, unchanged
    shown = Inventory(w.uow, w.pool, last_seen=poller.last_seen).hosts()[0].host
    assert stored is not None and shown.last_seen_at is not None and shown.last_seen_at > stored


def test_a_task_that_moved_is_written_and_its_host_row_left_alone() -> None:
    w = World()
    host = w.host()
    [task] = w.tasks(w.add_disk(w.domain()))
    poller = w.poller()
    writes(w, poller, answers((host, w)), host)
    stored = w.store.hosts[host.host_id].last_seen_at
    assert task.vdsm_task_id is not None
    w.agent(host).report(task.vdsm_task_id, TaskState.RUNNING, progress=50)
    assert writes(w, poller, answers((host, w)), host) == 1
    assert w.store.tasks[task.task_id].progress_percent == 50
    assert w.store.hosts[host.host_id].last_seen_at == stored


def test_a_stored_last_answer_is_written_again_once_it_is_due() -> None:
    w = World(last_seen_every=0)
    host = w.host()
    poller = w.poller()
    assert [writes(w, poller, answers((host, w)), host) for _ in range(2)] == [1, 1]
    w = World(last_seen_every=3600)
    host = w.host()
    poller = w.poller()
    assert [writes(w, poller, answers((host, w)), host) for _ in range(2)] == [1, 0]


def test_failed_polls_are_written_until_the_host_stops_answering_and_not_after() -> None:
    w = World(host_failure_polls=2)
    host = w.host()
    poller = w.poller()
    writes(w, poller, answers((host, w)), host)
    seen = w.store.hosts[host.host_id].last_seen_at
    assert [writes(w, poller, silence(host), host) for _ in range(4)] == [1, 1, 0, 0]
    stored = w.store.hosts[host.host_id]
    assert (stored.status, stored.failed_polls) == (HostStatus.NON_RESPONSIVE, 2)
    assert stored.unreachable_since is not None and stored.last_seen_at == seen
    assert writes(w, poller, answers((host, w)), host) == 1  # it came back: written
    stored = w.store.hosts[host.host_id]
    assert (stored.status, stored.failed_polls, stored.unreachable_since) == (
        HostStatus.UP,
        0,
        None,
    )


def test_a_hosts_row_is_written_with_its_newest_answer_and_an_operators_change_kept() -> None:
    w = World(host_failure_polls=1)
    host = w.host()
    poller = w.poller()
    writes(w, poller, answers((host, w)), host)
    writes(w, poller, answers((host, w)), host)  # not written: in memory only
    newest = poller.last_seen.newest(w.store.hosts[host.host_id])
    w.store.hosts[host.host_id].status = HostStatus.MAINTENANCE  # an operator, meanwhile
    assert writes(w, poller, silence(host), host) == 1  # it stopped answering
    stored = w.store.hosts[host.host_id]
    assert stored.status is HostStatus.MAINTENANCE and stored.unreachable_since is not None
    assert stored.last_seen_at == newest  # the answer only memory had is written with it


def test_the_views_show_a_stored_answer_newer_than_memory() -> None:
    w = World()
    host = w.host(last_seen_at=utcnow())
    inventory = Inventory(w.uow, AgentPool(), last_seen=w.poller().last_seen)
    assert inventory.host(host.host_id).host.last_seen_at == host.last_seen_at
