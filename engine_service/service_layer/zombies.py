"""Zombies (docs/design.md §7, step 4): agent tasks whose request id the engine does not know.
After a grace period they are stopped, their output deleted if no disk owns it, and cleared."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from engine_service import observability as metrics
from engine_service.adapters.agent_client import AgentPool, AgentRejected, AgentUnavailable
from engine_service.domain.clock import utcnow
from engine_service.domain.hosts import Host
from engine_service.domain.tasks import ReportedStatus
from engine_service.service_layer.cleanup import Cleaner
from engine_service.service_layer.polling import PollResult, PollSettings
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory
from service_common.vdsm_tasks import TaskState

log = logging.getLogger("engine_service.service_layer.async_task_manager")


def unknown_statuses(result: PollResult, known: set[str]) -> dict[str, list[ReportedStatus]]:
    """Per host, the reported tasks whose agent id the engine does not hold."""
    return {
        host_id: [s for vdsm_id, s in statuses.items() if vdsm_id not in known]
        for host_id, statuses in result.statuses.items()
    }


class ZombieTracker:
    """Keeps when each unknown agent task was first seen (table zombie_sightings, so that the
    grace outlives slow polls and restarts) and clears those past their grace. The poll thread
    and reconciliation both call `handle`: a lock makes them take turns."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        agents: AgentPool,
        settings: PollSettings,
        cleaner: Cleaner,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.uow = uow
        self.agents = agents
        self.settings = settings
        self.cleaner = cleaner
        self.clock = clock
        self.lock = threading.Lock()

    def due(self, unknown: dict[str, list[ReportedStatus]]) -> dict[str, list[ReportedStatus]]:
        """Store when each unknown task was first seen, forget the sightings that a host which
        answered (a key of `unknown`) no longer reports, and return, per host, the tasks whose
        grace has passed. A host missing from `unknown` (its answer is late) keeps its
        sightings. Called by `handle`, under the lock."""
        now = self.clock()
        grace = timedelta(seconds=self.settings.zombie_grace)
        seen = {(host_id, s.vdsm_task_id) for host_id, found in unknown.items() for s in found}
        with self.uow(read_only=True) as uow:
            first_seen = uow.repo.zombie_sightings(list(unknown))
        new = {key: now for key in seen - first_seen.keys()}
        gone = first_seen.keys() - seen
        if new or gone:
            with self.uow() as uow:
                uow.repo.forget_zombie_sightings(gone)
                uow.repo.add_zombie_sightings(new)
                uow.commit()
        first_seen.update(new)
        return {
            host_id: due
            for host_id, found in unknown.items()
            if (due := [s for s in found if now - first_seen[(host_id, s.vdsm_task_id)] >= grace])
        }

    def handle(self, result: PollResult) -> int:
        """Act on the zombies this poll saw; returns how many were cleared."""
        with self.lock:
            with self.uow(read_only=True) as uow:
                hosts = {h.host_id: h for h in uow.repo.hosts()}
                # Only the agents' ids are looked up, in chunks: memory follows what the agents
                # report, not the size of the engine's tables.
                asked = [
                    v
                    for statuses in result.statuses.values()
                    for v in statuses
                    if v not in result.known
                ]
                known = result.known | uow.repo.known_among("vdsm_task_id", asked)
            cleared = [
                (host_id, vdsm_task_id)
                for host_id, due in self.due(unknown_statuses(result, known)).items()
                for vdsm_task_id in self._clear(hosts[host_id], due)
            ]
            if cleared:
                with self.uow() as uow:
                    uow.repo.forget_zombie_sightings(cleared)
                    uow.commit()
        return len(cleared)

    def _clear(self, host: Host, due: list[ReportedStatus]) -> list[str]:
        """Stop the running zombies, delete and clear the finished ones; returns the agent
        ids cleared."""
        client = self.agents.get(host.address)
        cleared: list[str] = []
        try:
            infos = {i.vdsm_task_id: i for i in client.all_info(self.settings.agent_deadline)}
            with self.uow(read_only=True) as uow:
                known_requests = uow.repo.known_among(
                    "task_id",
                    [infos[s.vdsm_task_id].request_id for s in due if s.vdsm_task_id in infos],
                )
            for status in due:
                info = infos.get(status.vdsm_task_id)
                if info is None or info.request_id in known_requests:
                    continue  # gone already, or being adopted right now
                what = f"zombie task {status.vdsm_task_id} (request {info.request_id}, {info.verb})"
                if status.state is not TaskState.FINISHED:
                    log.warning(
                        "%s on host %s: stopping it", what, host.name, extra={"host": host.name}
                    )
                    client.stop_task(status.vdsm_task_id)
                    continue
                self.cleaner.delete_image(client, info.storage_domain_id, info.image_id)
                client.clear_task(status.vdsm_task_id)
                cleared.append(status.vdsm_task_id)
                metrics.RECONCILED.labels("cleared_zombies").inc()
                log.warning("%s on host %s: cleared", what, host.name, extra={"host": host.name})
        except (AgentUnavailable, AgentRejected) as exc:
            log.warning("zombie cleanup on host %s interrupted: %s", host.name, exc)
        return cleared
