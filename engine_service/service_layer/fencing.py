"""Fencing (issue 14, item 2; docs/design.md §7): an operator confirms that a host which stopped
answering has been rebooted, its processes gone. oVirt calls it "Confirm 'Host has been
Rebooted'". Without it, a host that never comes back keeps its commands' cleanup debt forever,
RemoveHost refuses it, and WatchCommand on its failed commands never closes.

In one transaction: the host's ACTIVE commands end FAILED (set-based, like reconciliation), the
task rows still on the host are written off (nothing is ever sent there for them again), and who
asked, when and why is kept on the host. Then, best effort, the images its failed tasks wrote are
deleted through an UP host, since the storage is shared. If the host does come back, whatever its
agent still reports is unknown to the engine: zombies, stopped and cleared after their grace."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from engine_service.adapters.agent_client import AgentPool, AgentRejected, AgentUnavailable
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus, OnHosts, Outcome
from engine_service.domain.history import EventKind
from engine_service.domain.hosts import HostAnswering, HostStatus
from engine_service.service_layer.failing import counted, fail_active_commands
from engine_service.service_layer.liveness import LastSeen
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory
from engine_service.service_layer.views import HostView
from service_common.errors import FailedPrecondition, InvalidArgument, NotFound
from service_common.ids import require_uuid

log = logging.getLogger(__name__)

MAX_REASON = 1000


@dataclass(frozen=True)
class Fenced:
    """What confirming a host rebooted did."""

    host: HostView
    failed_commands: int
    written_off_tasks: int


def require_reason(field: str, value: str) -> str:
    if not value or not value.strip():
        raise InvalidArgument(field, "is required: say how you know the host is down")
    if len(value) > MAX_REASON:
        raise InvalidArgument(field, f"is {len(value)} characters; at most {MAX_REASON}")
    return value.strip()


def confirm_host_rebooted(
    uow: UnitOfWorkFactory,
    agents: AgentPool,
    host_id: str,
    reason: str,
    by: str,
    agent_deadline: float = 3.0,
    last_seen: LastSeen | None = None,
) -> Fenced:
    """Fail the host's ACTIVE commands, write off its tasks and record the confirmation, in
    one transaction; then delete, through another host, the images its failed tasks wrote.
    FAILED_PRECONDITION while the host answers its polls (when it last did: `last_seen`)."""
    host_id = require_uuid("host_id", host_id)
    reason = require_reason("reason", reason)
    now = utcnow()
    with uow() as unit:
        repo = unit.repo
        host = repo.host(host_id, for_update=True)
        if host is None:
            raise NotFound(f"host_id: no host {host_id}")
        if last_seen is not None:
            host.last_seen_at = last_seen.newest(host)
        try:
            host.confirm_rebooted(now, by, reason)
        except HostAnswering as exc:
            raise FailedPrecondition(str(exc)) from None
        failed = fail_active_commands(
            repo, OnHosts((host_id,)), Outcome(CommandStatus.FAILED, host.fencing_reason()), now
        )
        owed = repo.images_owed_on(host_id)
        repo.add_events_for_tasks_on_host(
            host_id, EventKind.TASK_WRITTEN_OFF, f"written off: {host.fencing_reason()}", now
        )
        written_off = repo.delete_tasks_on_host(host_id)
        repo.save_fencing(host)
        unit.commit()
    counted(failed)
    log.warning(
        "host %s confirmed rebooted by %s (%s): failed %d command(s), wrote off %d task(s)",
        host.name,
        by,
        reason,
        failed.count,
        written_off,
        extra={"host": host.name},
    )
    deleted = _compensate_elsewhere(uow, agents, owed, agent_deadline)
    if owed:
        log.warning(
            "host %s: deleted %d of the %d image(s) its failed tasks wrote, through another "
            "host (shared storage); what is left is cleared as zombies if it comes back",
            host.name,
            deleted,
            len(owed),
            extra={"host": host.name},
        )
    return Fenced(HostView(host, 0), failed.count, written_off)


def _compensate_elsewhere(
    uow: UnitOfWorkFactory,
    agents: AgentPool,
    images: list[tuple[str, str]],
    agent_deadline: float,
) -> int:
    """Best effort, after the commit: delete through an UP host (the storage is shared) what
    the fenced host's failed tasks wrote, unless a disk owns it. The fenced host is down, so
    nothing is writing there any more. Returns how many were deleted."""
    with uow(read_only=True) as unit:
        up = unit.repo.hosts_with_status(HostStatus.UP)
        owned = {image for image in images if unit.repo.disk_with_image(*image) is not None}
    if not up:
        return 0
    client = agents.get(up[0].address)
    deleted = 0
    for sd_id, image_id in images:
        if (sd_id, image_id) in owned:
            continue
        try:
            client.delete_image(sd_id, image_id)
            deleted += 1
        except AgentRejected as exc:
            deleted += exc.not_found
        except AgentUnavailable as exc:
            log.warning("compensation after fencing interrupted: %s", exc)
            break
    return deleted
