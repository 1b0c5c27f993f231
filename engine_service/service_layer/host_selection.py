"""Choosing the host a placeholder goes to, and trusting a recent read of the hosts."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from engine_service.adapters.repository import Repository
from engine_service.domain.hosts import Host, HostStatus, least_busy
from service_common.errors import FailedPrecondition

HOST_SNAPSHOT_SECONDS = 1.0


class HostPicker:
    """Picks the UP host with the fewest tasks in flight, counting the ones just picked."""

    def __init__(self, repo: Repository) -> None:
        self.load = repo.tasks_per_host()
        self.hosts = repo.hosts_with_status(HostStatus.UP)
        if not self.hosts:
            raise FailedPrecondition("no host is UP: add a host or take one out of maintenance")

    def __call__(self) -> str:
        host = least_busy(self.hosts, self.load)
        assert host is not None  # every host in self.hosts is UP
        self.load[host.host_id] = self.load.get(host.host_id, 0) + 1
        return host.host_id


class HostSnapshot:
    """The hosts as read at one moment, trusted for HOST_SNAPSHOT_SECONDS."""

    def __init__(self, hosts: Sequence[Host], clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.answered_at: dict[str, float] = {}  # host id -> when it last accepted a task
        self.refresh(hosts)

    def refresh(self, hosts: Sequence[Host]) -> None:
        self.taken = self.clock()
        self.hosts = {h.host_id: h for h in hosts}

    def answered(self, host_id: str) -> None:
        """The host has just accepted one of the command's tasks."""
        self.answered_at[host_id] = self.clock()

    def reachable(self, host: Host) -> bool:
        """UP, or marked NON_RESPONSIVE by the poller although it accepted one of the
        command's tasks within HOST_SNAPSHOT_SECONDS: an agent that restarted while this
        command was being sent answers before the next poll marks it UP again."""
        if host.is_up:
            return True
        answered = self.answered_at.get(host.host_id)
        return (
            host.is_non_responsive
            and answered is not None
            and self.clock() - answered <= HOST_SNAPSHOT_SECONDS
        )

    def up(self, host_id: str) -> Host | None:
        """The host, if the snapshot is fresh and has it UP."""
        if self.clock() - self.taken > HOST_SNAPSHOT_SECONDS:
            return None
        host = self.hosts.get(host_id)
        return host if host is not None and host.is_up else None
