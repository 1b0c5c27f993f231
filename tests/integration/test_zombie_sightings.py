"""The repository's zombie sightings (docs/design.md §7 step 4) over a real database, SQLite
and PostgreSQL: what the grace of a zombie counts from, kept across engine restarts."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from engine_service.adapters.repository.shared import CHUNK
from engine_service.domain.requests import Conflict
from engine_service.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import Sessions

SEEN = datetime(2030, 1, 1, 12, 0, 0, 123456)


def write(sessions: Sessions, action: str, *args: object) -> None:
    with UnitOfWork(sessions) as uow:
        getattr(uow.repo, action)(*args)
        uow.commit()


def read(sessions: Sessions, *host_ids: str) -> dict[tuple[str, str], datetime]:
    with UnitOfWork(sessions, read_only=True) as uow:
        return uow.repo.zombie_sightings(list(host_ids))


def test_sightings_are_read_by_host_with_their_instant(sessions: Sessions) -> None:
    later = SEEN + timedelta(seconds=50)
    write(sessions, "add_zombie_sightings", {("h1", "z1"): SEEN, ("h1", "z2"): later})
    write(sessions, "add_zombie_sightings", {("h2", "z1"): later})
    assert read(sessions, "h1") == {("h1", "z1"): SEEN, ("h1", "z2"): later}
    assert read(sessions, "h1", "h2", "h3") == {
        ("h1", "z1"): SEEN,
        ("h1", "z2"): later,
        ("h2", "z1"): later,
    }
    assert read(sessions) == {} and read(sessions, "h3") == {}


def test_a_sighting_is_stored_once(sessions: Sessions) -> None:
    write(sessions, "add_zombie_sightings", {("h1", "z1"): SEEN})
    with pytest.raises(Conflict):
        write(sessions, "add_zombie_sightings", {("h1", "z1"): SEEN + timedelta(seconds=1)})
    assert read(sessions, "h1") == {("h1", "z1"): SEEN}


def test_forgetting_removes_exactly_the_keys_given(sessions: Sessions) -> None:
    write(
        sessions,
        "add_zombie_sightings",
        {("h1", "z1"): SEEN, ("h1", "z2"): SEEN, ("h2", "z1"): SEEN},
    )
    write(sessions, "forget_zombie_sightings", [("h1", "z1"), ("h1", "absent"), ("h3", "z2")])
    write(sessions, "forget_zombie_sightings", [])
    assert read(sessions, "h1", "h2") == {("h1", "z2"): SEEN, ("h2", "z1"): SEEN}


def test_forgetting_a_host_leaves_the_other_hosts(sessions: Sessions) -> None:
    write(sessions, "add_zombie_sightings", {("h1", "z1"): SEEN, ("h2", "z1"): SEEN})
    write(sessions, "forget_sightings_of_host", "h1")
    assert read(sessions, "h1", "h2") == {("h2", "z1"): SEEN}


def test_many_hosts_and_sightings_in_single_statements(sessions: Sessions) -> None:
    """More hosts than one IN list holds; thousands of sightings added and forgotten at once."""
    hosts = [f"h{i:04d}" for i in range(CHUNK + 7)]
    sightings = {(h, f"z{j}"): SEEN for h in hosts for j in range(3)}
    write(sessions, "add_zombie_sightings", sightings)
    assert read(sessions, *hosts) == sightings
    write(sessions, "forget_zombie_sightings", [k for k in sightings if k[1] != "z0"])
    assert read(sessions, *hosts) == {(h, "z0"): SEEN for h in hosts}
