"""The async task manager: polls every host once per interval (one GetAllTasksStatuses call,
whatever the number of tasks), records progress, ends commands whose outcome is decided, fails
commands stuck on a dead host, and cleans up after terminal commands: stops their running
tasks, deletes what they created (compensation), clears the tasks on the agents and forgets
them. What cannot be done on an unreachable host stays in the database until it answers.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine_service import observability as metrics
from engine_service.adapters.agent_client import (
    AgentClient,
    AgentPool,
    AgentRejected,
    AgentTaskStatus,
    AgentUnavailable,
)
from engine_service.adapters.orm import HostRow, utcnow
from engine_service.adapters.repository import Repository, TaskStatusRow
from engine_service.crash import crash_point
from engine_service.domain.model import (
    CommandStatus,
    HostStatus,
    Outcome,
    TaskCleanup,
    TaskResult,
    TaskState,
    TaskView,
    decide_outcome,
)
from engine_service.service_layer.lifecycle import CommandLifecycle
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollSettings:
    interval: float = 1.0
    host_failure_polls: int = 3
    task_timeout: float = 300.0
    agent_deadline: float = 3.0
    zombie_grace: float = 60.0


@dataclass(frozen=True)
class HostRef:
    host_id: str
    name: str
    address: str
    status: HostStatus


@dataclass
class PollResult:
    """What one poll saw: each reachable host's tasks; the hosts that did not answer."""

    statuses: dict[str, dict[str, AgentTaskStatus]] = field(default_factory=dict)
    asked_at: dict[str, datetime] = field(default_factory=dict)  # host id -> when the call began
    unreachable: dict[str, str] = field(default_factory=dict)  # host id -> error
    # Agent task ids the engine was seen to hold on the hosts that answered (filled when the
    # poll is recorded): the zombie check looks up only the others.
    known: set[str] = field(default_factory=set)


def task_view(task: TaskStatusRow) -> TaskView:
    return TaskView(
        task.task_id,
        task.vdsm_task_id,
        TaskState(task.state) if task.state else None,
        TaskResult(task.result) if task.result is not None else None,
        task.message,
        task.progress_percent,
    )


class AsyncTaskManager:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        agents: AgentPool,
        lifecycle: CommandLifecycle,
        settings: PollSettings,
    ) -> None:
        self.uow = uow
        self.agents = agents
        self.lifecycle = lifecycle
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="poll")
        self._poll_lock = threading.Lock()
        self._inflight: dict[str, tuple[Future[dict[str, AgentTaskStatus]], datetime]] = {}
        self.zombies = ZombieTracker(self)

    # -- the loop ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="async-task-manager", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop at a safe point: between two cycles, or after the step in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("poll cycle failed; trying again next interval")
            self._stop.wait(self.settings.interval)

    def poll_once(self) -> PollResult:
        with metrics.POLL_SECONDS.time():
            result = self.poll_hosts()
            self.end_decided_commands()
            self.fail_commands_on_dead_hosts()
            self.clean_up(result)
            self.zombies.handle(result)
            with self.uow(read_only=True) as uow:
                metrics.COMMANDS_ACTIVE.set(uow.repo.count_active_roots())
                metrics.TASKS_IN_FLIGHT.set(sum(uow.repo.tasks_per_host().values()))
        return result

    # -- 1. poll -----------------------------------------------------------------------------

    def hosts(self) -> list[HostRef]:
        with self.uow(read_only=True) as uow:
            return [
                HostRef(h.host_id, h.name, h.address, HostStatus(h.status))
                for h in uow.repo.hosts()
            ]

    def peek_hosts(self) -> PollResult:
        """Every host's task statuses, without recording anything (for reconciliation)."""
        result = PollResult()
        for h in self.hosts():
            try:
                result.statuses[h.host_id] = self.agents.get(h.address).all_statuses(
                    self.settings.agent_deadline
                )
            except (AgentUnavailable, AgentRejected) as exc:
                result.unreachable[h.host_id] = str(exc)
        return result

    def poll_hosts(self) -> PollResult:
        """One GetAllTasksStatuses per host, all at once, each with its own deadline. A host
        that has not answered within one interval is left out of this cycle, its call still
        in flight: its answer, or its failure, counts in a later cycle. So a slow or hung host
        delays no other host's commands."""
        with self._poll_lock:
            hosts = self.hosts()
            for h in hosts:
                if h.host_id not in self._inflight:
                    call = self._pool.submit(
                        self.agents.get(h.address).all_statuses, self.settings.agent_deadline
                    )
                    self._inflight[h.host_id] = (call, utcnow())
            wait(
                [call for call, _ in self._inflight.values()],
                timeout=min(self.settings.interval, self.settings.agent_deadline),
            )
            result = PollResult()
            for h in hosts:
                if h.host_id not in self._inflight or not self._inflight[h.host_id][0].done():
                    continue
                call, asked_at = self._inflight.pop(h.host_id)
                result.asked_at[h.host_id] = asked_at
                try:
                    result.statuses[h.host_id] = call.result()
                except (AgentUnavailable, AgentRejected) as exc:
                    result.unreachable[h.host_id] = str(exc)
            self._record(hosts, result)
        return result

    def _record(self, hosts: list[HostRef], result: PollResult) -> None:
        now = utcnow()
        with self.uow() as uow:
            rows = uow.repo.hosts_for_update([ref.host_id for ref in hosts])
            answered = [ref.host_id for ref in hosts if ref.host_id in result.statuses]
            submitted: dict[str, list[TaskStatusRow]] = defaultdict(list)
            for t in uow.repo.submitted_tasks_on(answered):
                submitted[t.host_id].append(t)
            for ref in hosts:
                host = rows.get(ref.host_id)
                if host is None:
                    continue
                if ref.host_id in result.unreachable:
                    host.failed_polls += 1
                    if (
                        host.failed_polls >= self.settings.host_failure_polls
                        and host.status == HostStatus.UP.value
                    ):
                        host.status = HostStatus.NON_RESPONSIVE.value
                        host.unreachable_since = now
                        log.warning(
                            "host %s (%s) is NON_RESPONSIVE after %d failed polls: %s",
                            host.name,
                            host.address,
                            host.failed_polls,
                            result.unreachable[ref.host_id],
                            extra={"host": host.name},
                        )
                    if host.status == HostStatus.NON_RESPONSIVE.value:
                        self._show_unreachable(uow.repo, host)
                    continue
                if ref.host_id not in result.statuses:
                    continue  # still answering: counted in a later cycle
                host.failed_polls = 0
                host.last_seen_at = now
                if host.status == HostStatus.NON_RESPONSIVE.value:
                    host.status = HostStatus.UP.value
                    host.unreachable_since = None
                    log.info("host %s answers again: UP", host.name, extra={"host": host.name})
                changes = []
                seen = result.statuses[ref.host_id]
                for task in submitted[ref.host_id]:
                    assert task.vdsm_task_id is not None
                    result.known.add(task.vdsm_task_id)
                    status = seen.get(task.vdsm_task_id)
                    if status is not None:
                        now_is = (
                            status.state.value,
                            status.result.value or None,
                            status.progress_percent,
                            status.message,
                        )
                        if now_is != (task.state, task.result, task.progress_percent, task.message):
                            state, task_result, progress, message = now_is
                            changes.append(
                                {
                                    "task_id": task.task_id,
                                    "state": state,
                                    "result": task_result,
                                    "progress_percent": progress,
                                    "message": message,
                                }
                            )
                    elif (
                        task.cleanup == TaskCleanup.NONE.value
                        and task.state != TaskState.FINISHED.value
                        and task.submitted_at is not None
                        and task.submitted_at < result.asked_at[ref.host_id]
                    ):
                        # Invariant 5: a task the agent cannot account for fails its command.
                        changes.append(
                            {
                                "task_id": task.task_id,
                                "state": TaskState.FINISHED.value,
                                "result": TaskResult.FAILURE.value,
                                "message": f"host {host.name} no longer knows task "
                                f"{task.vdsm_task_id} (lost by the agent)",
                            }
                        )
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
                uow.repo.update_task_statuses(changes)
            uow.commit()

    def _show_unreachable(self, repo: Repository, host: HostRow) -> None:
        """Let the commands with unfinished tasks on a NON_RESPONSIVE host say so."""
        since = f"{host.unreachable_since:%Y-%m-%d %H:%M:%S}" if host.unreachable_since else "?"
        message = f"host {host.name} is NON_RESPONSIVE since {since} UTC"
        repo.update_task_statuses(
            [
                {"task_id": t.task_id, "message": message}
                for t in repo.submitted_tasks_on([host.host_id])
                if t.cleanup == TaskCleanup.NONE.value
                and t.state != TaskState.FINISHED.value
                and t.message != message
            ]
        )

    # -- 2. end what is decided --------------------------------------------------------------

    def end_decided_commands(self) -> list[str]:
        with self.uow(read_only=True) as uow:
            by_root: dict[str, list[TaskView]] = defaultdict(list)
            # Only a command with a finished task can be decided (decide_outcome): with
            # thousands of tasks running, the others are not even read.
            for task in uow.repo.active_tasks(decidable_only=True):
                by_root[task.root_command_id].append(task_view(task))
        decided = {
            root_id: outcome
            for root_id, tasks in by_root.items()
            if (outcome := decide_outcome(tasks)) is not None
        }
        return self.lifecycle.finish_many(decided) if decided else []

    def fail_commands_on_dead_hosts(self) -> list[str]:
        deadline = utcnow() - timedelta(seconds=self.settings.task_timeout)
        with self.uow(read_only=True) as uow:
            dead = {
                h.host_id: h
                for h in uow.repo.hosts_with_status(HostStatus.NON_RESPONSIVE.value)
                if h.unreachable_since is not None and h.unreachable_since <= deadline
            }
            if not dead:
                return []
            victims = {
                t.root_command_id: dead[t.host_id] for t in uow.repo.active_tasks(list(dead))
            }
            reasons = {
                root: (
                    f"host {h.name} ({h.address}) has not answered since "
                    f"{h.unreachable_since:%Y-%m-%d %H:%M:%S} UTC; task timeout "
                    f"{self.settings.task_timeout:g}s"
                )
                for root, h in victims.items()
            }
        return [
            root
            for root, reason in reasons.items()
            if self.lifecycle.finish(root, Outcome(CommandStatus.FAILED, reason))
        ]

    # -- 3. clean up after terminal commands ---------------------------------------------------

    def clean_up(self, result: PollResult) -> int:
        """Stop, compensate and clear the tasks of terminal commands on the hosts that answered
        this poll. Returns how many tasks were cleared and forgotten."""
        executing = self.lifecycle.executing()
        with self.uow(read_only=True) as uow:
            hosts = {h.host_id: h for h in uow.repo.hosts()}
            work = [
                (
                    t.task_id,
                    t.host_id,
                    t.vdsm_task_id,
                    t.cleanup,
                    t.storage_domain_id,
                    t.image_id,
                    t.root_command_id,
                )
                for t in uow.repo.tasks_to_clean()
            ]
        forget: list[str] = []
        try:
            self._clean(work, hosts, executing, result, forget)
        finally:
            # One commit for the whole cycle. A crash before it leaves rows whose agent tasks
            # are gone: the next cycle finds them unknown to the agent and forgets them then.
            self._forget(forget)
        return len(forget)

    def _clean(
        self,
        work: list[tuple[str, str, str | None, str, str, str, str]],
        hosts: dict[str, HostRow],
        executing: set[str],
        result: PollResult,
        forget: list[str],
    ) -> None:
        infos: dict[str, dict[str, str]] = {}  # host id -> request id -> agent task id
        for task_id, host_id, vdsm_task_id, cleanup, sd_id, image_id, root_id in work:
            if host_id not in result.statuses or root_id in executing:
                continue  # not reachable this cycle, or still being submitted
            client = self.agents.get(hosts[host_id].address)
            context = {"task_id": task_id, "command_id": root_id, "host": hosts[host_id].name}
            compensate = cleanup == TaskCleanup.COMPENSATE.value
            try:
                if vdsm_task_id is None:
                    # Debt from a host that was unreachable when its command failed: find the
                    # task by request id, if the agent ever accepted it.
                    if host_id not in infos:
                        infos[host_id] = {
                            i.request_id: i.vdsm_task_id
                            for i in client.all_info(self.settings.agent_deadline)
                        }
                    vdsm_task_id = infos[host_id].get(task_id)
                    if vdsm_task_id is None:
                        forget.append(task_id)
                        continue
                    self._adopt(task_id, vdsm_task_id)
                status = result.statuses[host_id].get(vdsm_task_id)
                if status is not None and status.state is not TaskState.FINISHED:
                    if compensate:
                        client.stop_task(vdsm_task_id)  # idempotent; finished by a later poll
                    continue
                if compensate:
                    self._delete_image(client, sd_id, image_id, context)
                if status is not None:
                    crash_point("before_clear")
                    try:
                        client.clear_task(vdsm_task_id)
                    except AgentRejected as exc:
                        if exc.code.name != "NOT_FOUND":
                            raise
                forget.append(task_id)
                log.info(
                    "task %s cleared on its host%s",
                    task_id,
                    " after compensation" if compensate else "",
                    extra=context,
                )
            except AgentUnavailable:
                result.statuses.pop(host_id, None)  # try this host again next cycle
            except AgentRejected as exc:
                log.warning(
                    "cleanup of task %s: the agent said %s; will retry",
                    task_id,
                    exc,
                    extra=context,
                )

    def _delete_image(
        self, client: AgentClient, sd_id: str, image_id: str, context: dict[str, str] | None = None
    ) -> None:
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
            if exc.code.name != "NOT_FOUND":
                raise

    def _adopt(self, task_id: str, vdsm_task_id: str) -> None:
        with self.uow() as uow:
            uow.repo.set_vdsm_task_id(task_id, vdsm_task_id, utcnow())
            uow.commit()

    def _forget(self, task_ids: list[str]) -> None:
        if task_ids:
            with self.uow() as uow:
                uow.repo.delete_tasks(task_ids)
                uow.commit()


class ZombieTracker:
    """Agent tasks whose request id the engine does not know (design section 6, step 4): after
    a grace period they are stopped, their output deleted if no disk owns it, and cleared."""

    def __init__(self, manager: AsyncTaskManager) -> None:
        self.manager = manager
        self.first_seen: dict[tuple[str, str], datetime] = {}

    def handle(self, result: PollResult) -> int:
        """Act on the zombies this poll saw; returns how many were cleared."""
        m = self.manager
        with m.uow(read_only=True) as uow:
            hosts = {h.host_id: h for h in uow.repo.hosts()}
            # Only the agents' ids are looked up, in chunks: memory follows what the agents
            # report, not the size of the engine's tables.
            known_vdsm = result.known | uow.repo.known_among(
                "vdsm_task_id",
                [
                    v
                    for statuses in result.statuses.values()
                    for v in statuses
                    if v not in result.known
                ],
            )
        now = utcnow()
        seen: set[tuple[str, str]] = set()
        cleared = 0
        for host_id, statuses in result.statuses.items():
            unknown = [s for vdsm_id, s in statuses.items() if vdsm_id not in known_vdsm]
            for status in unknown:
                seen.add((host_id, status.vdsm_task_id))
                self.first_seen.setdefault((host_id, status.vdsm_task_id), now)
            due = [
                s
                for s in unknown
                if (now - self.first_seen[(host_id, s.vdsm_task_id)])
                >= timedelta(seconds=m.settings.zombie_grace)
            ]
            if due:
                cleared += self._clear(hosts[host_id], due)
        for key in list(self.first_seen):
            if key not in seen:
                del self.first_seen[key]
        return cleared

    def _clear(self, host: HostRow, due: list[AgentTaskStatus]) -> int:
        m = self.manager
        client = m.agents.get(host.address)
        cleared = 0
        try:
            infos = {i.vdsm_task_id: i for i in client.all_info(m.settings.agent_deadline)}
            with m.uow(read_only=True) as uow:
                known_requests = uow.repo.known_among(
                    "task_id",
                    [infos[s.vdsm_task_id].request_id for s in due if s.vdsm_task_id in infos],
                )
            for status in due:
                info = infos.get(status.vdsm_task_id)
                if info is None or info.request_id in known_requests:
                    continue  # gone already, or being adopted right now
                if status.state is not TaskState.FINISHED:
                    log.warning(
                        "zombie task %s (request %s, %s) on host %s: stopping it",
                        status.vdsm_task_id,
                        info.request_id,
                        info.verb,
                        host.name,
                        extra={"host": host.name},
                    )
                    client.stop_task(status.vdsm_task_id)
                    continue
                m._delete_image(client, info.storage_domain_id, info.image_id)
                client.clear_task(status.vdsm_task_id)
                cleared += 1
                metrics.RECONCILED.labels("cleared_zombies").inc()
                log.warning(
                    "zombie task %s (request %s, %s) on host %s: cleared",
                    status.vdsm_task_id,
                    info.request_id,
                    info.verb,
                    host.name,
                    extra={"host": host.name},
                )
        except (AgentUnavailable, AgentRejected) as exc:
            log.warning("zombie cleanup on host %s interrupted: %s", host.name, exc)
        return cleared
