"""Reconciliation (design section 6): at startup, before the engine serves, and on demand.

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
from collections import defaultdict
from dataclasses import dataclass, field

from engine_service import observability as metrics
from engine_service.adapters.agent_client import AgentPool, AgentRejected, AgentUnavailable
from engine_service.adapters.orm import CommandRow, utcnow
from engine_service.crash import crash_point
from engine_service.domain.model import CommandStatus, Outcome
from engine_service.service_layer.async_task_manager import AsyncTaskManager
from engine_service.service_layer.commands.base import end_command
from engine_service.service_layer.lifecycle import CommandLifecycle
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory

log = logging.getLogger(__name__)

ORPHAN_REASON = "engine restarted before the task reached the host"


@dataclass
class ReconcileReport:
    failed_command_ids: list[str] = field(default_factory=list)
    removed_placeholders: int = 0
    adopted_tasks: int = 0
    cleared_zombies: int = 0


class Reconciler:
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
        report.cleared_zombies = self.manager.zombies.handle(self.manager.poll_hosts())
        for what in ("removed_placeholders", "adopted_tasks"):
            metrics.RECONCILED.labels(what).inc(getattr(report, what))
        metrics.RECONCILED.labels("failed_commands").inc(len(report.failed_command_ids))
        if report != ReconcileReport():
            log.warning(
                "reconciliation: failed %d command(s) %s, removed %d placeholder(s), "
                "adopted %d task(s), cleared %d zombie(s)",
                len(report.failed_command_ids),
                report.failed_command_ids,
                report.removed_placeholders,
                report.adopted_tasks,
                report.cleared_zombies,
            )
        return report

    def _reconcile_placeholders(self) -> ReconcileReport:
        report = ReconcileReport()
        with self.uow() as uow:
            hosts = {h.host_id: h for h in uow.repo.hosts()}
            seen = [
                (t.task_id, t.host_id, t.root_command_id) for t in uow.repo.active_placeholders()
            ]
        # After the read: a command is marked executing before its placeholders commit, so
        # any placeholder seen above whose command is still being submitted is skipped.
        executing = self.lifecycle.executing()
        placeholders = [p for p in seen if p[2] not in executing]
        if not placeholders:
            return report
        # Step 1: ask each host once for the request ids it knows.
        known: dict[str, dict[str, str] | None] = {}
        for host_id in {host for _, host, _ in placeholders}:
            try:
                infos = self.agents.get(hosts[host_id].address).all_info(self.lookup_deadline)
                known[host_id] = {i.request_id: i.vdsm_task_id for i in infos}
            except (AgentUnavailable, AgentRejected) as exc:
                log.warning(
                    "host %s did not answer the reconciliation lookup: %s", hosts[host_id].name, exc
                )
                known[host_id] = None
        adopt: dict[str, str] = {}
        orphans_of: dict[str, list[str]] = defaultdict(list)
        unreachable: set[str] = set()
        for task_id, host_id, root_id in placeholders:
            answer = known[host_id]
            if answer is not None and task_id in answer:
                adopt[task_id] = answer[task_id]
            else:
                orphans_of[root_id].append(task_id)
                if answer is None:
                    unreachable.add(task_id)
        if self.orphans == "resubmit":
            # Children a reachable host confirms it never got are sent again (to another host
            # if theirs is no longer UP); a command with a child on an unreachable host cannot
            # know, and fails by the seed's rule.
            orphans_of = defaultdict(
                list,
                {
                    root: ids
                    for root, ids in orphans_of.items()
                    if any(t in unreachable for t in ids)
                },
            )
        # Step 2: one transaction for everything.
        with self.uow() as uow:
            now = utcnow()
            for task_id, vdsm_task_id in adopt.items():
                if uow.repo.set_vdsm_task_id(task_id, vdsm_task_id, now):
                    report.adopted_tasks += 1
            for root_id, orphan_ids in orphans_of.items():
                # Step 5: orphans on an unreachable host are kept as debt, not deleted.
                debt = [t for t in orphan_ids if t in unreachable]
                removed = end_command(
                    uow.repo, root_id, Outcome(CommandStatus.FAILED, ORPHAN_REASON), debt
                )
                if removed is not None:
                    report.failed_command_ids.append(root_id)
                    report.removed_placeholders += removed
            crash_point("mid_reconcile")
            uow.commit()
        for root_id in report.failed_command_ids:
            with self.uow() as uow:
                row = uow.repo.get(CommandRow, root_id)
                action = row.action_type if row else "?"
            metrics.COMMANDS_ENDED.labels(action, CommandStatus.FAILED.value).inc()
        return report

    def _resubmit(self) -> None:
        """--orphans=resubmit: start the placeholders again under the same request ids."""
        with self.uow() as uow:
            roots = {t.root_command_id for t in uow.repo.active_placeholders()}
        for root_id in roots - self.lifecycle.executing():
            self.lifecycle.execute(root_id)
