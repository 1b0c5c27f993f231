"""Cleaning up after terminal commands: stop their running tasks, delete what they created
(compensation), clear the tasks on the agents and forget them. What cannot be done on an
unreachable host stays in the database as debt until it answers (docs/design.md §7, step 5)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from engine_service.adapters.agent_client import (
    AgentClient,
    AgentPool,
    AgentRejected,
    AgentUnavailable,
    Cleared,
)
from engine_service.crash import crash_point
from engine_service.domain import history
from engine_service.domain.clock import utcnow
from engine_service.domain.history import EventKind
from engine_service.domain.hosts import Host
from engine_service.domain.tasks import AsyncTask, TaskCleanup, Verb, absence_counts
from engine_service.service_layer.polling import PollResult, PollSettings
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory
from service_common.vdsm_tasks import TaskState

log = logging.getLogger("engine_service.service_layer.async_task_manager")

# Tasks of one host cleared in one ClearTasks call: one fsync on the agent for all of them.
CLEARS_PER_CALL = 256


@dataclass(frozen=True)
class Clearing:
    """A finished task (compensated if it had to be) to clear on its host, then forget."""

    task: AsyncTask
    vdsm_task_id: str
    compensated: bool
    context: dict[str, str]

    def cleared(self) -> None:
        log.info(
            "task %s cleared on its host%s",
            self.task.task_id,
            " after compensation" if self.compensated else "",
            extra=self.context,
        )


def _will_retry(task: AsyncTask, why: object, context: dict[str, str]) -> None:
    log.warning(
        "cleanup of task %s: the agent said %s; will retry", task.task_id, why, extra=context
    )


class Cleaner:
    """Stops, compensates, clears and forgets the tasks of terminal commands."""

    def __init__(self, uow: UnitOfWorkFactory, agents: AgentPool, settings: PollSettings) -> None:
        self.uow = uow
        self.agents = agents
        self.settings = settings

    def clean_up(self, result: PollResult, executing: set[str]) -> int:
        """Stop, compensate and clear the tasks of terminal commands on the hosts that answered
        this poll. Returns how many tasks were cleared and forgotten."""
        with self.uow(read_only=True) as uow:
            hosts = {h.host_id: h for h in uow.repo.hosts()}
            work = uow.repo.tasks_to_clean()
        forget: list[AsyncTask] = []
        infos: dict[str, dict[str, str]] = {}  # host id -> request id -> agent task id
        clears: dict[str, list[Clearing]] = {}  # host id -> its tasks to clear, in one call
        try:
            for task in work:
                if task.host_id not in result.statuses or task.root_command_id in executing:
                    continue  # not reachable this cycle, or still being submitted
                done = self._clean(task, hosts[task.host_id], result, infos)
                if isinstance(done, Clearing):
                    clears.setdefault(task.host_id, []).append(done)
                elif done:
                    forget.append(task)
            for host_id, clearing in clears.items():
                if host_id in result.statuses:  # it answered all along
                    forget += self._clear(hosts[host_id], clearing, result)
        finally:
            # One commit for the whole cycle. A crash before it leaves rows whose agent tasks
            # are gone: the next cycle finds them unknown to the agent and forgets them then.
            self._forget(forget)
        return len(forget)

    def _clean(
        self, task: AsyncTask, host: Host, result: PollResult, infos: dict[str, dict[str, str]]
    ) -> bool | Clearing:
        """One step for one task: True when it is done with and can be forgotten, a Clearing
        when it is to be cleared on its host first, False to keep it for a later cycle."""
        client = self.agents.get(host.address)
        context = {"task_id": task.task_id, "command_id": task.root_command_id, "host": host.name}
        compensate = task.cleanup is TaskCleanup.COMPENSATE
        try:
            vdsm_task_id = task.vdsm_task_id or self._look_up(client, host, task, infos)
            if vdsm_task_id is None:
                if compensate and task.verb == Verb.REMOVE_IMAGE:
                    # A removal never sent: compensation finishes it (tasks.Verb).
                    self.delete_image(client, task.storage_domain_id, task.image_id, context)
                return True  # the agent never accepted it
            status = result.statuses[host.host_id].get(vdsm_task_id)
            if status is None and not absence_counts(
                task.submitted_at, result.asked_at[host.host_id]
            ):
                # The answer may predate the agent's accepting it (a late accept stored after
                # the poll asked, or debt just found by request id): look again next cycle.
                return False
            if status is not None and status.state is not TaskState.FINISHED:
                if compensate:
                    client.stop_task(vdsm_task_id)  # idempotent; finished by a later poll
                return False
            if compensate:
                self.delete_image(client, task.storage_domain_id, task.image_id, context)
            clearing = Clearing(task, vdsm_task_id, compensate, context)
            if status is None:  # the agent no longer has it: nothing to clear there
                clearing.cleared()
                return True
            return clearing
        except AgentUnavailable:
            result.statuses.pop(host.host_id, None)  # try this host again next cycle
        except AgentRejected as exc:
            _will_retry(task, exc, context)
        return False

    def _clear(self, host: Host, clearing: list[Clearing], result: PollResult) -> list[AsyncTask]:
        """Clear these finished tasks on their host, in calls of at most CLEARS_PER_CALL;
        returns the ones cleared (or already gone), to be forgotten."""
        client = self.agents.get(host.address)
        done: list[AsyncTask] = []
        for start in range(0, len(clearing), CLEARS_PER_CALL):
            batch = clearing[start : start + CLEARS_PER_CALL]
            crash_point("before_clear")
            try:
                outcomes = client.clear_tasks([c.vdsm_task_id for c in batch])
            except AgentUnavailable:
                result.statuses.pop(host.host_id, None)  # try this host again next cycle
                break
            except AgentRejected as exc:
                for c in batch:
                    _will_retry(c.task, exc, c.context)
                continue
            for c in batch:
                outcome = outcomes.get(c.vdsm_task_id, Cleared.NOT_FINISHED)
                if outcome is Cleared.NOT_FINISHED:
                    _will_retry(c.task, f"task {c.vdsm_task_id} is not finished", c.context)
                    continue
                c.cleared()
                done.append(c.task)
        return done

    def _look_up(
        self, client: AgentClient, host: Host, task: AsyncTask, infos: dict[str, dict[str, str]]
    ) -> str | None:
        """Debt from a host that was unreachable when its command failed: find the task by
        request id, if the agent ever accepted it, and adopt it."""
        if host.host_id not in infos:
            infos[host.host_id] = {
                i.request_id: i.vdsm_task_id for i in client.all_info(self.settings.agent_deadline)
            }
        vdsm_task_id = infos[host.host_id].get(task.task_id)
        if vdsm_task_id is not None:
            with self.uow() as uow:
                now = utcnow()
                uow.repo.set_vdsm_task_id(task.task_id, vdsm_task_id, now)
                found = f"cleanup debt: its host had accepted it as agent task {vdsm_task_id}"
                uow.repo.add_events([history.task_event(task, EventKind.DEBT_FOUND, found, now)])
                uow.commit()
        return vdsm_task_id

    def delete_image(
        self, client: AgentClient, sd_id: str, image_id: str, context: dict[str, str] | None = None
    ) -> None:
        """Compensation: delete an image a failed command made, unless a disk owns it."""
        with self.uow(read_only=True) as uow:
            in_use = uow.repo.disk_with_image(sd_id, image_id)
        if in_use is not None:
            return  # a disk of the inventory owns it: never delete
        try:
            client.delete_image(sd_id, image_id)
            log.info(
                "compensation: deleted image %s in storage domain %s",
                image_id,
                sd_id,
                extra=context,
            )
        except AgentRejected as exc:
            if not exc.not_found:
                raise

    def _forget(self, tasks: list[AsyncTask]) -> None:
        """Forget the cleared tasks, each with a line in its command's history."""
        if tasks:
            now = utcnow()
            with self.uow() as uow:
                uow.repo.delete_tasks([t.task_id for t in tasks])
                uow.repo.add_events(history.cleared(t, now) for t in tasks)
                uow.commit()
