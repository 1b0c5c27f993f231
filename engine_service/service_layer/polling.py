"""Polling the hosts: one GetAllTasksStatuses per host per interval, whatever the number of
tasks, and recording what it saw: each host's transition (Host.record_*) and each task's new
status, lost task (invariant I5) or unreachable host (domain/tasks.py). A poll in which nothing
changed writes nothing; each host's last answer is kept in memory (liveness.py)."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime

from engine_service.adapters.agent_client import AgentPool, AgentRejected, AgentUnavailable
from engine_service.domain import history
from engine_service.domain.clock import utcnow
from engine_service.domain.hosts import Host, HostChange
from engine_service.domain.retries import Retries
from engine_service.domain.tasks import (
    ReportedStatus,
    TaskUpdate,
    TaskView,
    lost,
    observe,
    unreachable,
)
from engine_service.service_layer.isolation import NOT_ISOLATED, Strikes, describe, poll_error
from engine_service.service_layer.liveness import LAST_SEEN_EVERY, LastSeen
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory
from service_common.spans import annotate, spanned

log = logging.getLogger("engine_service.service_layer.async_task_manager")


# 12 hours: a 1 TiB copy (the largest disk) at 50 MB/s takes about 6.
DEFAULT_COMMAND_TIMEOUT = 43200.0
# Longer than `execute` keeps retrying an agent that does not answer (about 7 s per task).
DEFAULT_SWEEP_AFTER = 30.0


@dataclass(frozen=True)
class PollSettings:
    """How often hosts are polled, how long they may stay silent, and the bounds the poll
    loop enforces (docs/design.md §12)."""

    interval: float = 1.0
    host_failure_polls: int = 3
    task_timeout: float = 300.0
    agent_deadline: float = 3.0
    zombie_grace: float = 60.0
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT  # 0: no bound
    sweep_after: float = DEFAULT_SWEEP_AFTER
    # Polls in a row a task may be reported unreadably, and times a command's end may raise,
    # before it fails (isolation.py).
    error_limit: int = 5
    # Seconds an answering host's stored last_seen_at may age before a poll writes it again.
    last_seen_every: float = LAST_SEEN_EVERY


@dataclass
class PollResult:
    """What one poll saw: each reachable host's tasks; the hosts that did not answer."""

    statuses: dict[str, dict[str, ReportedStatus]] = field(default_factory=dict)
    asked_at: dict[str, datetime] = field(default_factory=dict)  # host id -> when the call began
    unreachable: dict[str, str] = field(default_factory=dict)  # host id -> error
    # Agent task ids the engine was seen to hold on the hosts that answered (filled when the
    # poll is recorded): the zombie check looks up only the others.
    known: set[str] = field(default_factory=set)


def task_updates(
    host: Host,
    tasks: list[TaskView],
    seen: dict[str, ReportedStatus],
    asked_at: datetime,
    known: set[str],
    strikes: Strikes | None = None,
) -> list[TaskUpdate]:
    """What a host's answer changes in its submitted tasks. A task reported unreadably is left
    as it is (`strikes` counts it); so is a task missing from an answer that holds a status
    without a task id, which may be that task's."""
    updates = []
    for task in tasks:
        assert task.vdsm_task_id is not None
        known.add(task.vdsm_task_id)
        status = seen.get(task.vdsm_task_id)
        if status is None and "" in seen and not seen[""].readable:
            status = seen[""]  # a status without a task id may be this task's
        if status is not None and not status.readable:
            if strikes is not None and (update := strikes.unreadable(host, task, status)):
                updates.append(update)
            continue
        if strikes is not None:
            strikes.readable(task)
        update = observe(task, status) if status is not None else lost(task, host.name, asked_at)
        if update is not None:
            updates.append(update)
            if status is None:
                log.error(
                    "task %s is lost: host %s does not know agent task %s",
                    task.task_id,
                    host.name,
                    task.vdsm_task_id,
                    extra={
                        "task_id": task.task_id,
                        "host": host.name,
                        "command_id": task.root_command_id,
                    },
                )
    return updates


class Poller:
    """Asks every host for its tasks' statuses at once and records the answers."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        agents: AgentPool,
        settings: PollSettings,
        last_seen: LastSeen | None = None,
    ) -> None:
        self.uow = uow
        self.agents = agents
        self.settings = settings
        # The hosts' last answers, in memory (liveness.py); the views show them too.
        self.last_seen = last_seen or LastSeen(settings.last_seen_every)
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="poll")
        self._lock = threading.Lock()
        self._inflight: dict[str, tuple[Future[dict[str, ReportedStatus]], datetime]] = {}
        # Polls in a row each task was reported unreadably (Strikes).
        self._unreadable = Retries(settings.error_limit)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def hosts(self) -> list[Host]:
        with self.uow(read_only=True) as uow:
            return uow.repo.hosts()

    def peek(self) -> PollResult:
        """Every host's task statuses, without recording anything (for reconciliation)."""
        result = PollResult()
        for h in self.hosts():
            asked_at = utcnow()
            try:
                result.statuses[h.host_id] = self.agents.get(h.address).all_statuses(
                    self.settings.agent_deadline
                )
                result.asked_at[h.host_id] = asked_at
            except (AgentUnavailable, AgentRejected) as exc:
                result.unreachable[h.host_id] = str(exc)
            except Exception as exc:  # an unreadable reply: as good as no answer, here
                self._unreadable_reply(h, exc)
                result.unreachable[h.host_id] = describe(exc)
        return result

    @spanned("poll.hosts")
    def poll(self) -> PollResult:
        """One GetAllTasksStatuses per host, all at once, each with its own deadline. A host
        that has not answered within one interval is left out of this cycle, its call still
        in flight: its answer, or its failure, counts in a later cycle. So a slow or hung host
        delays no other host's commands."""
        with self._lock:
            hosts = self.hosts()
            annotate("hosts", len(hosts))
            for h in hosts:
                if h.host_id not in self._inflight:
                    call = self._pool.submit(
                        contextvars.copy_context().run,  # the call's span under this poll's
                        self.agents.get(h.address).all_statuses,
                        self.settings.agent_deadline,
                    )
                    self._inflight[h.host_id] = (call, utcnow())
            wait(
                [call for call, _ in self._inflight.values()],
                timeout=min(self.settings.interval, self.settings.agent_deadline),
            )
            result = self._collect(hosts)
            self.record([h.host_id for h in hosts], result)
        return result

    def _collect(self, hosts: list[Host]) -> PollResult:
        result = PollResult()
        for h in hosts:
            if h.host_id not in self._inflight or not self._inflight[h.host_id][0].done():
                continue
            call, asked_at = self._inflight.pop(h.host_id)
            try:
                result.statuses[h.host_id] = call.result()
            except (AgentUnavailable, AgentRejected) as exc:
                result.unreachable[h.host_id] = str(exc)
            except Exception as exc:  # this host is skipped this cycle; it did answer
                self._unreadable_reply(h, exc)
                continue
            result.asked_at[h.host_id] = asked_at
        return result

    @staticmethod
    def _unreadable_reply(host: Host, exc: Exception) -> None:
        poll_error("reply")
        log.warning(
            "the reply of host %s (%s) could not be read, skipping it this cycle: %s",
            host.name,
            host.address,
            describe(exc),
            exc_info=exc,
            extra={"host": host.name},
        )

    def record(self, host_ids: list[str], result: PollResult) -> None:
        """One transaction for the whole poll: the hosts' transitions and the tasks' changes.
        If it raises, one transaction per host, so that one host's bad data stops no other."""
        try:
            self._record(host_ids, result)
        except NOT_ISOLATED:
            raise  # the database, not a host's data: recording host by host would fail too
        except Exception as exc:
            poll_error("record")
            log.warning(
                "recording the poll in one transaction failed (%s); recording each host alone",
                describe(exc),
                exc_info=exc,
            )
            for host_id in host_ids:
                if host_id in result.statuses or host_id in result.unreachable:
                    self._record_alone(host_id, result)

    def _record_alone(self, host_id: str, result: PollResult) -> None:
        try:
            self._record([host_id], result)
        except Exception as exc:
            poll_error("record")
            log.error(
                "recording the poll of host id %s failed; its tasks wait for the next poll: %s",
                host_id,
                describe(exc),
                exc_info=exc,
                extra={"host_id": host_id},
            )

    def _record(self, host_ids: list[str], result: PollResult) -> None:
        """Work out what the poll changes from one read-only unit, and write it, if there is
        anything to write, in one write unit. A poll that changes nothing (every host answers
        as before, no task moved) writes nothing: on SQLite it does not even take the write
        lock that submissions queue for. `last_seen_at` alone is written at most every
        `last_seen_every` seconds (liveness.py)."""
        now = utcnow()
        strikes = Strikes(self._unreadable)
        polled = [h for h in host_ids if h in result.statuses or h in result.unreachable]
        with self.uow(read_only=True) as uow:
            hosts = uow.repo.hosts_in(polled)
            submitted: dict[str, list[TaskView]] = defaultdict(list)
            for t in uow.repo.submitted_tasks_on(list(hosts)):
                submitted[t.host_id].append(t)
        changed: list[str] = []  # the hosts whose row is written
        updates: list[TaskUpdate] = []
        for host_id, host in hosts.items():
            if self._observe(host, result, now):
                changed.append(host_id)
            if host_id in result.statuses:
                updates += task_updates(
                    host,
                    submitted[host_id],
                    result.statuses[host_id],
                    result.asked_at[host_id],
                    result.known,
                    strikes,
                )
            elif not host.is_answering:  # its unfinished tasks say so
                message = host.unreachable_message()
                updates += [u for t in submitted[host_id] if (u := unreachable(t, message))]
        if changed or updates:
            self._write(changed, updates, submitted, result, now)
        strikes.apply()

    def _observe(self, host: Host, result: PollResult, now: datetime) -> bool:
        """Apply what the poll saw of a host to this copy of it (read without a lock). True if
        its row must be written: its durable state changed, or its stored last_seen_at is due."""
        before = host.durable_state()
        if host.host_id in result.statuses:
            due = self.last_seen.due(host.last_seen_at, now)
            host.record_answer(now)
            self.last_seen.answered(host.host_id, now)
            return due or host.durable_state() != before
        host.record_failed_poll(now, self.settings.host_failure_polls)
        return host.durable_state() != before

    def _write(
        self,
        changed: list[str],
        updates: list[TaskUpdate],
        submitted: dict[str, list[TaskView]],
        result: PollResult,
        now: datetime,
    ) -> None:
        """One transaction: the changed hosts, read again with a lock and their transition
        applied to the row as it is now (an operator may have put one in maintenance since the
        read), and the tasks' changes with their history."""
        with self.uow() as uow:
            hosts = uow.repo.hosts_for_update(changed) if changed else {}
            for host in hosts.values():
                if host.host_id in result.statuses:
                    self._log_change(host, host.record_answer(now), "")
                else:
                    change = host.record_failed_poll(now, self.settings.host_failure_polls)
                    self._log_change(host, change, result.unreachable[host.host_id])
                host.last_seen_at = self.last_seen.newest(host)
            uow.repo.save_hosts(hosts.values())
            uow.repo.update_tasks(updates)
            views = {t.task_id: t for tasks in submitted.values() for t in tasks}
            uow.repo.add_events(
                event
                for update in updates
                if update.task_id in views
                for event in history.observed(views[update.task_id], update, now)
            )
            uow.commit()

    @staticmethod
    def _log_change(host: Host, change: HostChange | None, error: str) -> None:
        if change in (HostChange.WENT_NON_RESPONSIVE, HostChange.STOPPED_ANSWERING):
            log.warning(
                "host %s (%s) is %s after %d failed polls: %s",
                host.name,
                host.address,
                "NON_RESPONSIVE" if host.is_non_responsive else "not answering (in maintenance)",
                host.failed_polls,
                error,
                extra={"host": host.name},
            )
        elif change is HostChange.CAME_BACK:
            log.info(
                "host %s answers again: %s", host.name, host.status.value, extra={"host": host.name}
            )
