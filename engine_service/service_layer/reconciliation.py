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
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine_service import observability as metrics
from engine_service.adapters.agent_client import AgentPool, AgentRejected, AgentUnavailable
from engine_service.crash import crash_point
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus, OrphanQuery, Outcome
from engine_service.domain.history import EventKind
from engine_service.domain.hosts import Host
from engine_service.service_layer.async_task_manager import AsyncTaskManager
from engine_service.service_layer.failing import counted, fail_active_commands
from engine_service.service_layer.lifecycle import CommandLifecycle
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory
from service_common.spans import spanned

log = logging.getLogger(__name__)

ORPHAN_REASON = "engine restarted before the task reached the host"
SWEPT_REASON = (
    "the task never reached its host: its submission stopped on an engine error and the "
    "sweeper found it unsent"
)


LISTED_IDS = 1000  # failed command ids a report lists; ListCommands lists the rest


@dataclass
class ReconcileReport:
    """What one reconciliation did. Its size is bounded whatever the number of commands it
    failed: `failed_command_ids` lists the first LISTED_IDS of them (oldest first), and
    ListCommands(FAILED, ended at `failed_at`) lists them all."""

    failed_command_ids: list[str] = field(default_factory=list)
    removed_placeholders: int = 0
    adopted_tasks: int = 0
    cleared_zombies: int = 0
    failed_commands: int = 0  # all of them
    failed_at: datetime | None = None  # when, in one transaction; None if none

    def __str__(self) -> str:
        shown = self.failed_command_ids[:5]
        more = ["..."] if self.failed_commands > len(shown) else []
        at = f" at {self.failed_at.isoformat()}" if self.failed_at else ""
        return (
            f"failed {self.failed_commands} command(s) {shown + more}{at}, removed "
            f"{self.removed_placeholders} placeholder(s), adopted {self.adopted_tasks} task(s), "
            f"cleared {self.cleared_zombies} zombie(s)"
        )


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
        self.startup_at: datetime | None = None  # when the startup one ran (Engine.start)
        # The latest `reconcile()` (at startup or on demand) and when it ended; the console
        # shows it beside the startup one.
        self.last_report: ReconcileReport | None = None
        self.last_at: datetime | None = None
        # One pass over the placeholders at a time: the sweeper (poll thread) and an RPC.
        self._placeholders = threading.Lock()

    @spanned("reconcile")
    def reconcile(self) -> ReconcileReport:
        with self._placeholders:
            report = self._reconcile_placeholders()
            if self.orphans == "resubmit":
                self._resubmit()
        report.cleared_zombies = self.manager.zombies.handle(self.manager.peek_hosts())
        for what in ("removed_placeholders", "adopted_tasks"):
            metrics.RECONCILED.labels(what).inc(getattr(report, what))
        metrics.RECONCILED.labels("failed_commands").inc(report.failed_commands)
        if report != ReconcileReport():
            log.warning("reconciliation: %s", report)
        self.last_report, self.last_at = report, utcnow()
        return report

    @spanned("reconcile.sweep")
    def sweep(self, older_than: float) -> ReconcileReport:
        """The in-process sweeper (issue 14): placeholders left unsent for more than
        `older_than` seconds by a command this process is not executing (its `execute` raised
        something other than an agent error, say) are looked up by request id and adopted, or
        their command failed, without waiting for a restart. One read when there is none."""
        cutoff = utcnow() - timedelta(seconds=older_than)
        with self._placeholders:
            report = self._reconcile_placeholders(cutoff, SWEPT_REASON)
            if self.orphans == "resubmit":
                self._resubmit()
        if report.failed_command_ids or report.adopted_tasks:
            log.warning(
                "sweeper: placeholders unsent for over %gs: failed %d command(s) %s, "
                "adopted %d task(s)",
                older_than,
                report.failed_commands,
                report.failed_command_ids[:5],
                report.adopted_tasks,
            )
        return report

    def _reconcile_placeholders(
        self, cutoff: datetime | None = None, reason: str = ORPHAN_REASON
    ) -> ReconcileReport:
        """Steps 1, 2 and 5, with set-based statements: the work per orphaned command is a few
        rows in a handful of statements, whatever the number of commands. Only placeholders
        written before `cutoff` (default: now) are looked at."""
        # Placeholders written later belong to submissions under way.
        cutoff = cutoff or utcnow()
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
        return self._settle(adopt, orphans, unreachable, reason)

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
        self,
        adopt: dict[str, str],
        orphans: OrphanQuery,
        unreachable: list[str],
        reason: str = ORPHAN_REASON,
    ) -> ReconcileReport:
        """Step 2: one transaction for everything."""
        report = ReconcileReport()
        with self.uow() as uow:
            now = utcnow()
            adopted = [
                task_id
                for task_id, vdsm_task_id in adopt.items()
                if uow.repo.set_vdsm_task_id(task_id, vdsm_task_id, now)
            ]
            report.adopted_tasks = len(adopted)
            uow.repo.add_events_for_tasks(
                adopted, EventKind.TASK_ADOPTED, "found on its host by request id: agent task ", now
            )
            if self.orphans == "resubmit" and not unreachable:
                uow.commit()  # nothing to fail: confirmed orphans are resubmitted
                return report
            # Step 5: placeholders on an unreachable host are kept as debt, not deleted.
            failed = fail_active_commands(
                uow.repo,
                orphans,
                Outcome(CommandStatus.FAILED, reason),
                now,
                keep_hosts=unreachable,
            )
            batch = failed.batch
            report.removed_placeholders = failed.removed_placeholders
            # Bounded: a reply of 100,000 ids would pass gRPC's 4 MiB message limit.
            report.failed_commands = failed.count
            report.failed_command_ids = uow.repo.command_ids_in(batch, limit=LISTED_IDS)
            report.failed_at = batch.ended_at if report.failed_commands else None
            crash_point("mid_reconcile")
            uow.commit()
        counted(failed)
        return report

    def _resubmit(self) -> None:
        """--orphans=resubmit: start the placeholders again under the same request ids."""
        with self.uow(read_only=True) as uow:
            roots = {t.root_command_id for t in uow.repo.active_placeholders()}
        for root_id in roots - self.lifecycle.executing():
            self.lifecycle.execute(root_id)
