"""Choosing the host a placeholder goes to, and trusting a recent read of the hosts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from engine_service.adapters.repository import Repository
from engine_service.domain.clock import utcnow
from engine_service.domain.history import CommandEvent, EventKind
from engine_service.domain.hosts import Host, least_busy
from service_common.errors import FailedPrecondition

if TYPE_CHECKING:
    from engine_service.service_layer.plans import Pending
    from engine_service.service_layer.unit_of_work import UnitOfWorkFactory

HOST_SNAPSHOT_SECONDS = 1.0
log = logging.getLogger(__name__)


class HostPicker:
    """Picks the UP host with the fewest tasks in flight, counting the ones just picked."""

    def __init__(self, repo: Repository) -> None:
        self.hosts, self.load = repo.up_hosts_with_load()
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


def host_for(uow_factory: UnitOfWorkFactory, task: Pending, hosts: HostSnapshot) -> Host | None:
    """The host a placeholder is about to be sent to. One that is no longer UP (it went
    NON_RESPONSIVE or into maintenance since the placeholder was written) is swapped for
    the least busy UP host: this task was never sent anywhere, so moving it is safe.
    None if the placeholder is gone.

    While `hosts` (read when the command was submitted or read back) is younger than
    HOST_SNAPSHOT_SECONDS and says the host is UP, it is trusted: the tasks of a command
    go out within milliseconds, and a task sent to a host that has just gone down fails
    like any other. Otherwise the placeholder and its host are read again."""
    fresh = hosts.up(task.host_id)
    if fresh is not None:
        return fresh
    with uow_factory() as uow:
        placeholder = uow.repo.task(task.task_id)
        if placeholder is None:
            return None
        hosts.refresh(uow.repo.hosts())
        host = hosts.hosts[placeholder.host_id]
        if hosts.reachable(host):
            return host
        try:
            target = hosts.hosts[HostPicker(uow.repo)()]
        except FailedPrecondition:
            raise FailedPrecondition(
                f"no host is UP to run task {task.task_id} "
                f"(its host {host.name} is {host.status.value})"
            ) from None
        uow.repo.move_task(task.task_id, target.host_id)
        moved = f"from host {host.name} ({host.status.value}) to {target.name}, unsent"
        uow.repo.add_events(
            [
                CommandEvent(
                    placeholder.root_command_id,
                    utcnow(),
                    EventKind.TASK_MOVED,
                    moved,
                    task.task_id,
                    target.host_id,
                )
            ]
        )
        uow.commit()
    log.warning(
        "task %s moved from host %s (%s) to host %s before it was sent",
        task.task_id,
        host.name,
        host.status.value,
        target.name,
        extra={"task_id": task.task_id, "host": target.name},
    )
    return target
