"""Failing many ACTIVE commands at once, set-based: the commands of a host that stopped
answering (after --task-timeout), of a host an operator confirmed rebooted, the ones older than
--command-timeout, and reconciliation's orphans. Each is a handful of statements in one
transaction, whatever the number of commands (docs/design.md §7 and §12)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine_service import observability as metrics
from engine_service.adapters.repository import Repository
from engine_service.domain import history
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import (
    CommandBatch,
    CommandSelection,
    CommandStatus,
    CreatedBefore,
    OnHosts,
    Outcome,
)
from engine_service.domain.history import EventKind
from engine_service.domain.tasks import TaskCleanup
from engine_service.service_layer.commands.base import CommandBase
from engine_service.service_layer.polling import PollSettings
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("engine_service.service_layer.async_task_manager")

# How many ids of a failed batch are logged.
LOGGED_IDS = 5


@dataclass(frozen=True)
class FailedBatch:
    """What failing one selection did: the batch, how many of each type, placeholders deleted."""

    batch: CommandBatch
    types: dict[str, int]
    removed_placeholders: int
    ages: dict[str, list[float]]  # action type -> seconds from acceptance to this end

    @property
    def count(self) -> int:
        return sum(self.types.values())


def fail_active_commands(
    repo: Repository,
    selection: CommandSelection,
    outcome: Outcome,
    now: datetime,
    keep_hosts: Iterable[str] = (),
) -> FailedBatch:
    """End FAILED every ACTIVE top-level command `selection` selects, with its children: settle
    what each type created, delete the placeholders that never reached an agent (except on
    `keep_hosts`, kept as debt), mark the other tasks for compensation and release the locks.
    The caller commits, then calls `counted`."""
    batch = repo.end_active_commands(selection, outcome, now)
    repo.add_batch_event(batch, EventKind.ENDED, history.ended_message(outcome), now)
    # One read of the batch gives both its types (for their hooks and the metrics) and ages.
    types: dict[str, int] = {}
    ages: dict[str, list[float]] = {}
    for action_type, created_at in repo.created_times_in(batch):
        types[action_type] = types.get(action_type, 0) + 1
        ages.setdefault(action_type, []).append(max((now - created_at).total_seconds(), 0.0))
    for action_type in types:
        CommandBase.type_named(action_type).fail_many(repo, batch.of_type(action_type))
    removed = repo.settle_tasks_of(batch, TaskCleanup.COMPENSATE, keep_hosts=keep_hosts)
    repo.release_locks_of(batch)
    return FailedBatch(batch, types, removed, ages)


def counted(failed: FailedBatch) -> None:
    """Count a committed batch in the metrics."""
    status = CommandStatus.FAILED.value
    for action_type, count in failed.types.items():
        metrics.COMMANDS_ENDED.labels(action_type, status).inc(count)
    for action_type, ages in failed.ages.items():
        histogram = metrics.COMMAND_SECONDS.labels(action_type, status)
        for age in ages:
            histogram.observe(age)


class Reaper:
    """The bounds the poll loop enforces: commands on a host silent for longer than the task
    timeout, and commands older than the command timeout, end FAILED."""

    def __init__(self, uow: UnitOfWorkFactory, settings: PollSettings) -> None:
        self.uow = uow
        self.settings = settings

    def fail_commands_on_dead_hosts(self) -> list[str]:
        """Commands with tasks on a host that has not answered for longer than the task
        timeout, whatever its status: one batch per host, all in one transaction."""
        now = utcnow()
        timeout = self.settings.task_timeout
        with self.uow(read_only=True) as uow:
            dead = [h for h in uow.repo.unreachable_hosts() if h.tasks_timed_out(now, timeout)]
            if not dead or not uow.repo.active_tasks([h.host_id for h in dead]):
                return []
        with self.uow() as uow:
            failed = {
                host.name: fail_active_commands(
                    uow.repo,
                    OnHosts((host.host_id,)),
                    Outcome(CommandStatus.FAILED, host.timeout_reason(timeout)),
                    now,
                )
                for host in dead
            }
            ids = [i for f in failed.values() for i in uow.repo.command_ids_in(f.batch)]
            uow.commit()
        for host_name, batch in failed.items():
            counted(batch)
            if batch.count:
                log.warning(
                    "failed %d command(s) on host %s, silent past the task timeout of %gs: %s",
                    batch.count,
                    host_name,
                    timeout,
                    ", ".join(ids[:LOGGED_IDS]) + (", ..." if len(ids) > LOGGED_IDS else ""),
                    extra={"host": host_name},
                )
        return ids

    def fail_commands_past_timeout(self) -> list[str]:
        """ACTIVE commands accepted more than --command-timeout seconds ago (0: never)."""
        timeout = self.settings.command_timeout
        if not timeout:
            return []
        now = utcnow()
        cutoff = now - timedelta(seconds=timeout)
        with self.uow(read_only=True) as uow:
            oldest = uow.repo.oldest_active_root_created_at()
        if oldest is None or oldest >= cutoff:
            return []
        reason = (
            f"command timeout: still ACTIVE {timeout:g}s after it was accepted "
            "(--command-timeout); its tasks are stopped and its work compensated"
        )
        with self.uow() as uow:
            failed = fail_active_commands(
                uow.repo, CreatedBefore(cutoff), Outcome(CommandStatus.FAILED, reason), now
            )
            ids = uow.repo.command_ids_in(failed.batch)
            uow.commit()
        counted(failed)
        log.warning(
            "failed %d command(s) past the command timeout of %gs: %s",
            failed.count,
            timeout,
            ", ".join(ids[:LOGGED_IDS]) + (", ..." if len(ids) > LOGGED_IDS else ""),
        )
        return ids
