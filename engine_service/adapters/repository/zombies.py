"""Zombie sightings: when a poll first saw each agent task the engine does not know, per host.
The grace period of a zombie counts from here, across slow polls and engine restarts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import bindparam, select

from engine_service.adapters.orm import ZOMBIE_SIGHTINGS
from engine_service.adapters.repository.shared import Part, chunks

_FORGET = ZOMBIE_SIGHTINGS.delete().where(
    ZOMBIE_SIGHTINGS.c.host_id == bindparam("host"),
    ZOMBIE_SIGHTINGS.c.vdsm_task_id == bindparam("agent_id"),
)


class ZombieQueries(Part):
    """The zombie_sightings table, keyed by (host id, agent task id)."""

    def zombie_sightings(self, host_ids: Sequence[str]) -> dict[tuple[str, str], datetime]:
        """When each zombie of these hosts was first seen."""
        table, found = ZOMBIE_SIGHTINGS, {}
        for chunk in chunks(list(host_ids)):
            query = select(table.c.host_id, table.c.vdsm_task_id, table.c.first_seen_at)
            for host_id, agent_id, at in self.db.execute(query.where(table.c.host_id.in_(chunk))):
                found[(host_id, agent_id)] = at
        return found

    def add_zombie_sightings(self, sightings: Mapping[tuple[str, str], datetime]) -> None:
        """New sightings, in one executemany (a key stored already is a Conflict)."""
        self._insert(
            ZOMBIE_SIGHTINGS,
            [
                {"host_id": host_id, "vdsm_task_id": agent_id, "first_seen_at": at}
                for (host_id, agent_id), at in sightings.items()
            ],
        )

    def forget_zombie_sightings(self, keys: Iterable[tuple[str, str]]) -> None:
        """Forget these (host id, agent task id) sightings, in one executemany."""
        values = [{"host": host_id, "agent_id": agent_id} for host_id, agent_id in keys]
        if values:
            self.db.execute(_FORGET, values)

    def forget_sightings_of_host(self, host_id: str) -> None:
        """Every sighting on a host (when it is removed)."""
        self.db.execute(ZOMBIE_SIGHTINGS.delete().where(ZOMBIE_SIGHTINGS.c.host_id == host_id))
