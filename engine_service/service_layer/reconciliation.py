"""Reconciliation (docs/design.md §7): at startup, before the engine serves, and on demand.

1. For every placeholder without an agent id, its host's agent is asked for the task by request
   id (one GetAllTasksInfo per host, with a deadline). Found: adopted. Not found: an orphan.
2. A command with an orphan is failed in ONE transaction: orphans deleted, command and children
   FAILED, locks released, entities settled. Its adopted tasks are then stopped, compensated and
   cleared by the async task manager.
3. (The manager's polls resume for placeholders with agent ids; a task the agent no longer knows
   fails its command.)
4. Zombie agent tasks are stopped and cleared after their grace period.
5. A host that does not answer: its placeholders count as orphans (the seed's rule), but they
   stay on record as cleanup debt, looked up and paid when the host answers again.

Running it again changes nothing: the second report is all zeros.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from engine_service import observability as metrics
from engine_service.adapters.agent_client import AgentPool, AgentRejected, AgentUnavailable
from engine_service.crash import crash_point
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus, OrphanQuery, Outcome
from engine_service.domain.hosts import Host
from engine_service.domain.tasks import TaskCleanup
from engine_service.service_layer.async_task_manager import AsyncTaskManager
from engine_service.service_layer.commands.base import CommandBase
from engine_service.service_layer.lifecycle import CommandLifecycle
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory

log = logging.getLogger(__name__)

ORPHAN_REASON = "engine restarted before the task reached the host"


@dataclass
class ReconcileReport:
    """What one reconciliation did."""

    failed_command_ids: list[str] = field(default_factory=list)
    removed_placeholders: int = 0
    adopted_tasks: int = 0
    cleared_zombies: int = 0


class Reconciler:
    """Adopts the placeholders that reached an agent and fails the commands of the others."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        agents: AgentPool,
        lifecycle: CommandLifecycle,
        manager: AsyncTaskManager,
        lookup_deadline: float = 3.0,
        orphans: str = "fail",
    ) -> None:
        self.uow = uow
        self.agents = agents
        self.lifecycle = lifecycle
        self.manager = manager
        self.lookup_deadline = lookup_deadline
        self.orphans = orphans
        self.startup_report = ReconcileReport()

    def reconcile(self) -> ReconcileReport:
        report = self._reconcile_placeholders()
        if self.orphans == "resubmit":
            self._resubmit()
        report.cleared_zombies = self.manager.zombies.handle(self.manager.peek_hosts())
        for what in ("removed_placeholders", "adopted_tasks"):
            metrics.RECONCILED.labels(what).inc(getattr(report, what))
        metrics.RECONCILED.labels("failed_commands").inc(len(report.failed_command_ids))
        if report != ReconcileReport():
            failed = report.failed_command_ids
            log.warning(
                "reconciliation: failed %d command(s) %s, removed %d placeholder(s), "
                "adopted %d task(s), cleared %d zombie(s)",
                len(failed),
                failed[:5] + (["..."] if len(failed) > 5 else []),
                report.removed_placeholders,
                report.adopted_tasks,
                report.cleared_zombies,
            )
        return report

    def _reconcile_placeholders(self) -> ReconcileReport:
        """Steps 1, 2 and 5, with set-based statements: the work per orphaned command is a few
        rows in a handful of statements, whatever the number of commands."""
        cutoff = utcnow()  # placeholders written later belong to submissions under way
        with self.uow(read_only=True) as uow:
            hosts = uow.repo.hosts_with_placeholders(cutoff)
        if not hosts:
            return ReconcileReport()
        known, unreachable = self._look_up(hosts)
        # After the lookups: a command is marked executing before its placeholders commit, so
        # one still being submitted is left alone.
        orphans = OrphanQuery(
            cutoff,
            frozenset(self.lifecycle.executing()),
            # With resubmit, only a child on an unreachable host (it might have started) fails
            # its command; with fail, every orphan does (the seed's rule).
            tuple(unreachable) if self.orphans == "resubmit" else None,
        )
        with self.uow(read_only=True) as uow:
            adopt = {
                task_id: answer[task_id]
                for answer in known.values()
                for task_id in uow.repo.placeholders_among(list(answer))
            }
        return self._settle(adopt, orphans, unreachable)

    def _look_up(self, hosts: list[Host]) -> tuple[dict[str, dict[str, str]], list[str]]:
        """Step 1: ask each host once for the request ids it knows (request id -> agent task
        id, per host id); the hosts that did not answer."""
        known: dict[str, dict[str, str]] = {}
        unreachable: list[str] = []
        for host in hosts:
            try:
                infos = self.agents.get(host.address).all_info(self.lookup_deadline)
                known[host.host_id] = {i.request_id: i.vdsm_task_id for i in infos}
            except (AgentUnavailable, AgentRejected) as exc:
                log.warning(
                    "host %s did not answer the reconciliation lookup: %s",
                    host.name,
                    exc,
                    extra={"host": host.name},
                )
                unreachable.append(host.host_id)
        return known, unreachable

    def _settle(
        self, adopt: dict[str, str], orphans: OrphanQuery, unreachable: list[str]
    ) -> ReconcileReport:
        """Step 2: one transaction for everything."""
        report = ReconcileReport()
        with self.uow() as uow:
            now = utcnow()
            for task_id, vdsm_task_id in adopt.items():
                if uow.repo.set_vdsm_task_id(task_id, vdsm_task_id, now):
                    report.adopted_tasks += 1
            if self.orphans == "resubmit" and not unreachable:
                uow.commit()  # nothing to fail: confirmed orphans are resubmitted
                return report
            batch = uow.repo.fail_orphaned_commands(
                orphans, Outcome(CommandStatus.FAILED, ORPHAN_REASON), now
            )
            types = uow.repo.action_types_in(batch)
            for action_type in types:
                CommandBase.type_named(action_type).fail_many(uow.repo, batch.of_type(action_type))
            # Step 5: placeholders on an unreachable host are kept as debt, not deleted.
            report.removed_placeholders = uow.repo.settle_tasks_of(
                batch, TaskCleanup.COMPENSATE, keep_hosts=unreachable
            )
            uow.repo.release_locks_of(batch)
            report.failed_command_ids = uow.repo.command_ids_in(batch)
            crash_point("mid_reconcile")
            uow.commit()
        for action_type, count in types.items():
            metrics.COMMANDS_ENDED.labels(action_type, CommandStatus.FAILED.value).inc(count)
        return report

    def _resubmit(self) -> None:
        """--orphans=resubmit: start the placeholders again under the same request ids."""
        with self.uow(read_only=True) as uow:
            roots = {t.root_command_id for t in uow.repo.active_placeholders()}
        for root_id in roots - self.lifecycle.executing():
            self.lifecycle.execute(root_id)
