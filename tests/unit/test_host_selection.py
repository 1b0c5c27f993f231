"""HostPicker (the least busy UP host, counting the ones just picked) and HostSnapshot (a read
of the hosts trusted for HOST_SNAPSHOT_SECONDS), docs/design.md §4 steps 3 and 4."""

from __future__ import annotations

from typing import Any

import pytest

from engine_service.domain.clock import utcnow
from engine_service.domain.hosts import Host, HostStatus
from engine_service.domain.tasks import AsyncTask, TaskPlan, Verb
from engine_service.service_layer.host_selection import (
    HOST_SNAPSHOT_SECONDS,
    HostPicker,
    HostSnapshot,
)
from service_common.errors import FailedPrecondition
from tests.unit.fakes import FakeRepository, Store

PLAN = TaskPlan(Verb.CREATE_VOLUME, {"storage_domain_id": "sd", "image_id": "img"})


def repo_with(*hosts: Host, load: dict[str, int] | None = None) -> Any:
    """A repository over these hosts, each with `load` tasks (typed Any: it stands in for
    the SQL Repository)."""
    store = Store(hosts={h.host_id: h for h in hosts})
    for host_id, count in (load or {}).items():
        for _ in range(count):
            task = AsyncTask.placeholder(PLAN, "c", "c", host_id, utcnow())
            store.tasks[task.task_id] = task
    return FakeRepository(store)


def host(name: str, status: HostStatus = HostStatus.UP) -> Host:
    return Host(f"id-{name}", name, f"{name}:54321", status)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_picker_takes_the_up_host_with_the_fewest_tasks() -> None:
    repo = repo_with(host("a"), host("b"), host("c"), load={"id-a": 2, "id-b": 1, "id-c": 3})
    assert HostPicker(repo)() == "id-b"


def test_the_picker_breaks_ties_by_name() -> None:
    repo = repo_with(host("zeta"), host("alpha"), host("mid"))
    assert HostPicker(repo)() == "id-alpha"


def test_the_picker_counts_the_hosts_it_just_picked() -> None:
    picker = HostPicker(repo_with(host("a"), host("b"), load={"id-b": 1}))
    assert [picker() for _ in range(5)] == ["id-a", "id-a", "id-b", "id-a", "id-b"]


def test_the_picker_never_takes_a_host_that_is_not_up() -> None:
    repo = repo_with(
        host("a", HostStatus.MAINTENANCE),
        host("b", HostStatus.NON_RESPONSIVE),
        host("c"),
        load={"id-c": 9},
    )
    picker = HostPicker(repo)
    assert {picker() for _ in range(3)} == {"id-c"}


def test_without_an_up_host_the_picker_is_a_failed_precondition() -> None:
    with pytest.raises(FailedPrecondition, match="no host is UP"):
        HostPicker(repo_with(host("a", HostStatus.MAINTENANCE)))


def test_a_fresh_snapshot_is_trusted_until_host_snapshot_seconds() -> None:
    clock = Clock()
    snapshot = HostSnapshot([host("a")], clock)
    clock.now += HOST_SNAPSHOT_SECONDS
    assert snapshot.up("id-a") is not None
    clock.now += 0.001
    assert snapshot.up("id-a") is None


def test_a_snapshot_does_not_vouch_for_a_host_that_is_not_up_or_unknown() -> None:
    snapshot = HostSnapshot([host("a", HostStatus.MAINTENANCE)], Clock())
    assert snapshot.up("id-a") is None and snapshot.up("id-other") is None


def test_refreshing_a_snapshot_starts_its_second_again() -> None:
    clock = Clock()
    snapshot = HostSnapshot([host("a", HostStatus.NON_RESPONSIVE)], clock)
    clock.now += 5
    snapshot.refresh([host("a")])
    assert snapshot.up("id-a") is not None


def test_an_up_host_is_reachable() -> None:
    assert HostSnapshot([], Clock()).reachable(host("a")) is True


def test_a_non_responsive_host_that_just_accepted_a_task_counts_as_reachable() -> None:
    clock = Clock()
    snapshot = HostSnapshot([], clock)
    snapshot.answered("id-a")
    clock.now += HOST_SNAPSHOT_SECONDS
    assert snapshot.reachable(host("a", HostStatus.NON_RESPONSIVE)) is True
    clock.now += 0.001
    assert snapshot.reachable(host("a", HostStatus.NON_RESPONSIVE)) is False


def test_a_non_responsive_host_that_accepted_nothing_is_not_reachable() -> None:
    snapshot = HostSnapshot([], Clock())
    snapshot.answered("id-b")
    assert snapshot.reachable(host("a", HostStatus.NON_RESPONSIVE)) is False


def test_a_host_in_maintenance_is_not_reachable_even_if_it_just_answered() -> None:
    snapshot = HostSnapshot([], Clock())
    snapshot.answered("id-a")
    assert snapshot.reachable(host("a", HostStatus.MAINTENANCE)) is False
