"""Zombies (docs/design.md §7 step 4): agent tasks whose request id the engine does not know
are stopped and, after --zombie-grace from when a poll first saw them, deleted and cleared.
The grace clock is injected."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from engine_service.domain.clock import utcnow
from engine_service.domain.hosts import Host
from engine_service.domain.tasks import new_id
from engine_service.service_layer.cleanup import Cleaner
from engine_service.service_layer.commands.add_disk import AddDisk
from engine_service.service_layer.polling import PollResult
from engine_service.service_layer.zombies import ZombieTracker
from service_common.vdsm_tasks import TaskResult, TaskState
from tests.unit.fakes import FakeAgentClient
from tests.unit.world import World, status

GRACE = 60.0


class Clock:
    """Now, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def tracker(w: World | None = None) -> tuple[ZombieTracker, Clock]:
    w = w or World(zombie_grace=GRACE)
    clock = Clock()
    cleaner = Cleaner(w.uow, w.pool, w.settings)
    return ZombieTracker(w.uow, w.pool, w.settings, cleaner, clock), clock


def zombie_world(
    state: TaskState = TaskState.FINISHED,
) -> tuple[World, Host, FakeAgentClient, str, ZombieTracker, Clock]:
    """A host whose agent runs a task nobody in the engine asked for."""
    w = World(zombie_grace=GRACE)
    host, sd = w.host(), w.domain()
    agent = w.agent(host)
    result = TaskResult.SUCCESS if state is TaskState.FINISHED else TaskResult.NONE
    vdsm_id = agent.add_task(new_id(), "CreateVolume", (sd, new_id()), state, result)
    zombies, clock = tracker(w)
    return w, host, agent, vdsm_id, zombies, clock


def seen(host: Host, agent: FakeAgentClient) -> PollResult:
    return PollResult(
        statuses={host.host_id: dict(agent.statuses)}, asked_at={host.host_id: utcnow()}
    )


def test_nothing_is_due_before_the_grace_period() -> None:
    zombies, clock = tracker()
    unknown = {"h1": [status("z1")]}
    assert zombies.due(unknown) == {}
    clock.advance(GRACE - 1)
    assert zombies.due(unknown) == {}


def test_a_zombie_is_due_once_the_grace_period_has_passed() -> None:
    zombies, clock = tracker()
    zombies.due({"h1": [status("z1")]})
    clock.advance(GRACE)
    assert zombies.due({"h1": [status("z1"), status("z2")]}) == {"h1": [status("z1")]}


def test_a_zombie_no_longer_reported_is_forgotten_and_its_grace_starts_again() -> None:
    zombies, clock = tracker()
    zombies.due({"h1": [status("z1")]})
    clock.advance(GRACE / 2)
    zombies.due({"h1": []})
    clock.advance(GRACE)
    assert zombies.due({"h1": [status("z1")]}) == {}
    clock.advance(GRACE)
    assert zombies.due({"h1": [status("z1")]}) == {"h1": [status("z1")]}


def test_the_grace_of_a_task_is_kept_per_host() -> None:
    zombies, clock = tracker()
    zombies.due({"h1": [status("z1")]})
    clock.advance(GRACE)
    due = zombies.due({"h1": [status("z1")], "h2": [status("z1")]})
    assert due == {"h1": [status("z1")]}


def test_a_finished_zombie_past_its_grace_is_deleted_and_cleared() -> None:
    w, host, agent, vdsm_id, zombies, clock = zombie_world()
    info = agent.infos[vdsm_id]
    assert zombies.handle(seen(host, agent)) == 0
    clock.advance(GRACE)
    assert zombies.handle(seen(host, agent)) == 1
    assert agent.deleted_images == [(info.storage_domain_id, info.image_id)]
    assert agent.called("clear_task") == [(vdsm_id,)] and agent.statuses == {}


def test_a_running_zombie_past_its_grace_is_stopped_not_cleared() -> None:
    w, host, agent, vdsm_id, zombies, clock = zombie_world(TaskState.RUNNING)
    zombies.handle(seen(host, agent))
    clock.advance(GRACE)
    assert zombies.handle(seen(host, agent)) == 0
    assert agent.called("stop_task") == [(vdsm_id,)] and agent.called("clear_task") == []


def test_a_zombie_within_its_grace_is_left_alone() -> None:
    w, host, agent, vdsm_id, zombies, clock = zombie_world(TaskState.RUNNING)
    zombies.handle(seen(host, agent))
    clock.advance(GRACE - 1)
    zombies.handle(seen(host, agent))
    assert [m for a, m, _ in w.agents.calls] == []


def test_the_image_of_a_zombie_that_a_disk_owns_is_never_deleted() -> None:
    w, host, agent, vdsm_id, zombies, clock = zombie_world()
    info = agent.infos[vdsm_id]
    disk = w.disk(info.storage_domain_id)
    w.store.disks[disk.disk_id].image_id = info.image_id
    zombies.handle(seen(host, agent))
    clock.advance(GRACE)
    assert zombies.handle(seen(host, agent)) == 1
    assert agent.deleted_images == [] and agent.called("clear_task") == [(vdsm_id,)]


def test_a_task_of_the_engine_is_no_zombie() -> None:
    w = World(zombie_grace=GRACE)
    host = w.host()
    root = w.add_disk(w.domain())
    zombies, clock = tracker(w)
    agent = w.agent(host)
    agent.report(str(w.tasks(root)[0].vdsm_task_id), TaskState.FINISHED, TaskResult.SUCCESS)
    zombies.handle(seen(host, agent))
    clock.advance(GRACE * 2)
    assert zombies.handle(seen(host, agent)) == 0 and agent.called("clear_task") == []


def test_a_task_whose_request_id_is_a_placeholder_is_being_adopted_not_a_zombie() -> None:
    w = World(zombie_grace=GRACE)
    host, sd = w.host(), w.domain()
    root = w.commit_only(AddDisk.create("d", sd, 1), host)
    [placeholder] = w.tasks(root)
    agent = w.agent(host)
    agent.add_task(
        placeholder.task_id, "CreateVolume", (sd, placeholder.image_id), TaskState.FINISHED
    )
    zombies, clock = tracker(w)
    zombies.handle(seen(host, agent))
    clock.advance(GRACE)
    assert zombies.handle(seen(host, agent)) == 0 and agent.deleted_images == []


# -- the grace across slow hosts, restarts and threads (issue 14 item 5) --------------------------


def test_the_grace_of_a_host_that_answers_every_other_poll_runs_on_until_it_is_cleared() -> None:
    """A host slower than one interval is missing from every other PollResult (its call still
    in flight): its sightings are kept meanwhile, those of a host that answered are not."""
    w, host, agent, vdsm_id, zombies, clock = zombie_world()
    other = w.host("host2")
    stray = w.agent(other).add_task(new_id(), "CreateVolume", (w.domain("sd2"), new_id()))
    cleared_at = []
    for cycle in range(10):
        result = PollResult(statuses={other.host_id: {}}, asked_at={other.host_id: utcnow()})
        if cycle % 2 == 0:
            result.statuses[host.host_id] = dict(agent.statuses)
        if cycle == 0:
            result.statuses[other.host_id] = dict(w.agent(other).statuses)
        if zombies.handle(result):
            cleared_at.append(cycle)
        clock.advance(GRACE / 6)
    assert cleared_at == [6] and agent.called("clear_task") == [(vdsm_id,)]
    # host2 answered without its stray task at cycle 1: that sighting was forgotten then, while
    # host1's was kept through its silent cycles; clearing the zombie forgot its sighting.
    assert (other.host_id, stray) not in w.store.zombie_sightings
    assert w.store.zombie_sightings == {}


def test_the_grace_continues_across_an_engine_restart() -> None:
    """Seen 50 s before a restart with a 60 s grace: due 10 s after it, not 60."""
    w, host, agent, vdsm_id, zombies, clock = zombie_world()
    assert zombies.handle(seen(host, agent)) == 0
    clock.advance(GRACE - 10)
    restarted = ZombieTracker(w.uow, w.pool, w.settings, Cleaner(w.uow, w.pool, w.settings), clock)
    assert restarted.handle(seen(host, agent)) == 0
    clock.advance(10)
    assert restarted.handle(seen(host, agent)) == 1
    assert agent.called("clear_task") == [(vdsm_id,)]


class ReportingLock:
    """A lock that says, before waiting for it, that someone is trying to take it."""

    def __init__(self, trying: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._trying = trying

    def __enter__(self) -> ReportingLock:
        self._trying()
        self._lock.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


def test_two_handle_calls_at_once_do_not_interleave() -> None:
    """The poll thread and reconciliation both call handle. The first call blocks in its first
    unit of work until the second has arrived (at the lock, or without one at its own first
    unit of work); then every unit of work of one call comes before every one of the other."""
    w, host, agent, vdsm_id, zombies, clock = zombie_world()
    zombies.handle(seen(host, agent))
    clock.advance(GRACE)
    second_arrived, first_blocked = threading.Event(), threading.Event()
    units: list[str] = []

    def arrive() -> None:
        if threading.current_thread().name == "second":
            second_arrived.set()

    def unit_of_work(read_only: bool = False) -> Any:
        units.append(threading.current_thread().name)
        arrive()
        if units.count("first") == 1 and threading.current_thread().name == "first":
            first_blocked.set()
            assert second_arrived.wait(10), "the second call never arrived"
        return w.uow(read_only)

    zombies.uow = unit_of_work
    zombies.lock = cast(Any, ReportingLock(arrive))
    cleared: list[int] = []
    result = seen(host, agent)
    first = threading.Thread(target=lambda: cleared.append(zombies.handle(result)), name="first")
    second = threading.Thread(target=lambda: cleared.append(zombies.handle(result)), name="second")
    first.start()
    assert first_blocked.wait(10)
    second.start()
    first.join(10)
    second.join(10)
    assert units == sorted(units) and set(units) == {"first", "second"}
    assert sorted(cleared) == [0, 1] and agent.called("clear_task") == [(vdsm_id,)]
