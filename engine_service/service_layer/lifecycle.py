"""Running commands through their lifecycle: submit (validate, build children, placeholders in
one transaction), execute (start each child's agent task, store its id), and end.

Invariant 1 holds by construction: `execute` only calls an agent for a placeholder that is
committed, with the placeholder's task id as the agent's request id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from engine_service import observability as metrics
from engine_service.adapters.agent_client import AgentPool, AgentRejected, AgentUnavailable
from engine_service.adapters.orm import ClientRequestRow, CommandRow, HostRow, TaskRow, utcnow
from engine_service.adapters.repository import Repository
from engine_service.crash import crash_point
from engine_service.domain.model import CommandStatus, HostStatus, Outcome, TaskCleanup
from engine_service.service_layer.commands.base import CommandBase, end_command
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory
from service_common.errors import AlreadyExists, FailedPrecondition, NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientRequest:
    """A client's request id for one RPC, and what the request asked."""

    rpc: str
    request_id: str
    arguments: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.arguments, sort_keys=True).encode()).hexdigest()


def first_result(repo: Repository, request: ClientRequest | None) -> str | None:
    """The id made by the first request with this request id; ALREADY_EXISTS if that request
    asked for something else; None if there was none."""
    if request is None:
        return None
    row = repo.client_request(request.rpc, request.request_id)
    if row is None:
        return None
    if row.fingerprint != request.fingerprint:
        raise AlreadyExists(
            f"request_id: {request.request_id} was already used for a different {request.rpc} "
            "request; use a new request id"
        )
    return row.result_id


def record_request(repo: Repository, request: ClientRequest | None, result_id: str) -> None:
    if request is not None:
        repo.add(
            ClientRequestRow(
                rpc=request.rpc,
                request_id=request.request_id,
                fingerprint=request.fingerprint,
                result_id=result_id,
            )
        )


class HostPicker:
    """Picks the UP host with the fewest tasks in flight, counting the ones just picked."""

    def __init__(self, repo: Repository) -> None:
        self.load = repo.tasks_per_host()
        self.hosts = sorted(repo.hosts_with_status(HostStatus.UP.value), key=lambda h: h.name)
        if not self.hosts:
            raise FailedPrecondition("no host is UP: add a host or take one out of maintenance")

    def __call__(self) -> str:
        host = min(self.hosts, key=lambda h: self.load.get(h.host_id, 0))
        self.load[host.host_id] = self.load.get(host.host_id, 0) + 1
        return host.host_id


HOST_SNAPSHOT_SECONDS = 1.0


class HostSnapshot:
    """The hosts as read at one moment, trusted for HOST_SNAPSHOT_SECONDS."""

    def __init__(self, hosts: Sequence[HostRow]) -> None:
        self.answered_at: dict[str, float] = {}  # host id -> when it last accepted a task
        self.refresh(hosts)

    def refresh(self, hosts: Sequence[HostRow]) -> None:
        self.taken = time.monotonic()
        self.hosts = {h.host_id: h for h in hosts}

    def answered(self, host_id: str) -> None:
        """The host has just accepted one of the command's tasks."""
        self.answered_at[host_id] = time.monotonic()

    def reachable(self, host: HostRow) -> bool:
        """UP, or marked NON_RESPONSIVE by the poller although it accepted one of the
        command's tasks within HOST_SNAPSHOT_SECONDS: an agent that restarted while this
        command was being sent answers before the next poll marks it UP again."""
        if host.status == HostStatus.UP.value:
            return True
        answered = self.answered_at.get(host.host_id)
        return (
            host.status == HostStatus.NON_RESPONSIVE.value
            and answered is not None
            and time.monotonic() - answered <= HOST_SNAPSHOT_SECONDS
        )

    def up(self, host_id: str) -> HostRow | None:
        """The host, if the snapshot is fresh and has it UP."""
        if time.monotonic() - self.taken > HOST_SNAPSHOT_SECONDS:
            return None
        host = self.hosts.get(host_id)
        return host if host is not None and host.status == HostStatus.UP.value else None


@dataclass(frozen=True)
class _Pending:
    """A placeholder whose agent task is still to be started."""

    task_id: str
    host_id: str
    command_id: str
    verb: str
    args: dict[str, Any]

    @classmethod
    def of(cls, task: TaskRow) -> _Pending:
        return cls(task.task_id, task.host_id, task.command_id, task.verb, dict(task.args))


@dataclass
class Plan:
    """What `execute` works through: a command's children, its unsent placeholders, and the
    hosts they were assigned to."""

    children: dict[str, CommandBase]
    pending: list[_Pending]
    hosts: HostSnapshot


class CommandLifecycle:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        agents: AgentPool,
        start_attempts: int = 8,
        retry_delay: float = 0.25,
    ) -> None:
        self.uow = uow
        self.agents = agents
        self.start_attempts = start_attempts
        self.retry_delay = retry_delay
        self._executing: set[str] = set()
        self._lock = threading.Lock()

    def executing(self) -> set[str]:
        """Commands whose tasks this process is submitting right now."""
        with self._lock:
            return set(self._executing)

    # -- submit ------------------------------------------------------------------------------

    def submit(self, make_command: Callable[[], CommandBase], request: ClientRequest | None) -> str:
        """Validate, build the children and commit every placeholder in one transaction, then
        execute. Returns the command id; a repeated request returns the first one's."""
        for attempt in range(3):
            command = make_command()
            # Marked as executing before its placeholders can be seen, so that a concurrent
            # reconciliation never takes them for orphans.
            with self._lock:
                self._executing.add(command.command_id)
            try:
                with self.uow() as uow:
                    existing = first_result(uow.repo, request)
                    if existing is not None:
                        self._not_executing(command.command_id)
                        return existing
                    command.validate(uow.repo)
                    command.children = command.build_child_commands()
                    picker = HostPicker(uow.repo)
                    placeholders = command.insert_async_task_placeholders(uow.repo, picker)
                    record_request(uow.repo, request, command.command_id)
                    uow.flush()
                    crash_point("placeholders_uncommitted")
                    uow.commit()
            except IntegrityError:
                # A concurrent request took a name, a lock or the request id first; the next
                # attempt's validation says which, precisely.
                self._not_executing(command.command_id)
                log.info(
                    "submit of %s conflicted (attempt %d); validating again",
                    command.action_type,
                    attempt + 1,
                )
                continue
            except (FailedPrecondition, AlreadyExists):
                self._not_executing(command.command_id)
                existing = self._answered_meanwhile(request)
                if existing is not None:
                    return existing
                raise
            except BaseException:
                self._not_executing(command.command_id)
                raise
            log.info(
                "command %s (%s) accepted with %d task placeholder(s)",
                command.command_id,
                command.action_type,
                len(command.children),
                extra={"command_id": command.command_id},
            )
            crash_point("after_placeholders_commit")
            self.execute(
                command.command_id,
                Plan(
                    {c.command_id: c for c in command.children},
                    [_Pending.of(t) for t in placeholders],
                    HostSnapshot(picker.hosts),
                ),
            )
            return command.command_id
        raise FailedPrecondition("the request kept conflicting with concurrent ones; retry it")

    def _answered_meanwhile(self, request: ClientRequest | None) -> str | None:
        """The result of a request with the same request id that committed while this one was
        being validated. Under READ COMMITTED, a duplicate can miss the first's request id, then
        see the locks and names it committed a moment later and fail on them."""
        if request is None:
            return None
        with self.uow(read_only=True) as uow:
            return first_result(uow.repo, request)

    def _not_executing(self, root_id: str) -> None:
        with self._lock:
            self._executing.discard(root_id)

    # -- execute -----------------------------------------------------------------------------

    def execute(self, root_id: str, plan: Plan | None = None) -> None:
        """Start the agent task of every placeholder of the command that has no agent id.
        `submit` passes the `plan` it has just committed; without one it is read back."""
        with self._lock:
            self._executing.add(root_id)
        try:
            if plan is None:
                with self.uow(read_only=True) as uow:
                    repo = uow.repo
                    plan = Plan(
                        {c.command_id: CommandBase.from_row(c) for c in repo.children(root_id)},
                        [_Pending.of(t) for t in repo.tasks_of(root_id) if t.vdsm_task_id is None],
                        HostSnapshot(repo.hosts()),
                    )
            accepted_before = False
            for task in plan.pending:
                try:
                    host = self._host_for(task, plan.hosts)
                except FailedPrecondition as exc:
                    self.finish(root_id, Outcome(CommandStatus.FAILED, str(exc)))
                    return
                if host is None:
                    return  # the command ended (cancelled, failed) meanwhile
                try:
                    vdsm_task_id = self._start(host, task.task_id, plan.children[task.command_id])
                except (AgentUnavailable, AgentRejected) as exc:
                    # An agent that did not answer may still have accepted: that placeholder
                    # is kept as cleanup debt, looked up when the host answers again.
                    self.finish(
                        root_id,
                        Outcome(
                            CommandStatus.FAILED,
                            f"host {host.name} did not start task {task.task_id} ({task.verb}): "
                            f"{exc}",
                        ),
                        [task.task_id] if isinstance(exc, AgentUnavailable) else [],
                    )
                    return
                plan.hosts.answered(host.host_id)
                if not accepted_before:
                    crash_point("after_agent_accept")
                    accepted_before = True
                if not self._store_agent_id(root_id, task, host.host_id, vdsm_task_id):
                    return
            if plan.pending:
                crash_point("after_vdsm_id_commit")  # every child's agent id is committed
        finally:
            self._not_executing(root_id)

    def _host_for(self, task: _Pending, hosts: HostSnapshot) -> HostRow | None:
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
        with self.uow() as uow:
            row = uow.repo.get(TaskRow, task.task_id)
            if row is None:
                return None
            host = uow.repo.get(HostRow, row.host_id)
            assert host is not None
            hosts.refresh(uow.repo.hosts())
            if hosts.reachable(host):
                return host
            try:
                moved_to = HostPicker(uow.repo)()
            except FailedPrecondition:
                raise FailedPrecondition(
                    f"no host is UP to run task {task.task_id} "
                    f"(its host {host.name} is {host.status})"
                ) from None
            row.host_id = moved_to
            uow.commit()
            target = uow.repo.get(HostRow, moved_to)
            assert target is not None
            log.warning(
                "task %s moved from host %s (%s) to host %s before it was sent",
                task.task_id,
                host.name,
                host.status,
                target.name,
                extra={"task_id": task.task_id, "host": target.name},
            )
            return target

    def _start(self, host: HostRow, task_id: str, child: CommandBase) -> str:
        """Have the child start its task, retrying UNAVAILABLE with the same request id (the
        agent's idempotency makes that safe)."""
        client = self.agents.get(host.address)
        for attempt in range(1, self.start_attempts + 1):
            try:
                vdsm_task_id = child.execute(client, task_id)
                log.info(
                    "host %s accepted task %s as %s",
                    host.name,
                    task_id,
                    vdsm_task_id,
                    extra={"task_id": task_id, "host": host.name},
                )
                return vdsm_task_id
            except AgentUnavailable:
                if attempt == self.start_attempts:
                    raise
                # About 7 s in all by default: long enough for an agent to restart.
                time.sleep(min(self.retry_delay * attempt, 2.0))
        raise AssertionError("unreachable")

    def _store_agent_id(
        self, root_id: str, task: _Pending, host_id: str, vdsm_task_id: str
    ) -> bool:
        with self.uow() as uow:
            stored = uow.repo.set_vdsm_task_id(task.task_id, vdsm_task_id, utcnow())
            if not stored:
                # The command ended while this task was being started: keep the task on record
                # so that it is stopped, compensated and cleared like the command's others.
                args = task.args
                uow.repo.add(
                    TaskRow(
                        task_id=task.task_id,
                        command_id=root_id,
                        root_command_id=root_id,
                        host_id=host_id,
                        vdsm_task_id=vdsm_task_id,
                        submitted_at=utcnow(),
                        verb=task.verb,
                        args=args,
                        storage_domain_id=args.get("storage_domain_id")
                        or args["dst_storage_domain_id"],
                        image_id=args.get("image_id") or args["dst_image_id"],
                        state=None,
                        result=None,
                        progress_percent=0,
                        message="",
                        cleanup=TaskCleanup.COMPENSATE.value,
                    )
                )
            uow.commit()
        return stored

    # -- end ---------------------------------------------------------------------------------

    def finish(self, root_id: str, outcome: Outcome, unresolved: Sequence[str] = ()) -> bool:
        """End a top-level command now, exactly once; False if it had already ended."""
        return bool(self.finish_many({root_id: outcome}, unresolved, missing_is_error=True))

    def finish_many(
        self,
        outcomes: dict[str, Outcome],
        unresolved: Sequence[str] = (),
        missing_is_error: bool = False,
    ) -> list[str]:
        """End these top-level commands, each exactly once, in ONE transaction (a poll ends
        every command it decided with one commit). Returns the ones this call ended."""
        ended: list[tuple[str, str, Outcome]] = []
        with self.uow() as uow:
            for root_id, outcome in outcomes.items():
                row = uow.repo.get(CommandRow, root_id)
                if row is None:
                    if missing_is_error:
                        raise NotFound(f"command_id: no command {root_id}")
                    continue
                if end_command(uow.repo, root_id, outcome, unresolved) is not None:
                    ended.append((root_id, row.action_type, outcome))
            if not ended:
                return []
            crash_point("before_end_commit")
            uow.commit()
        for root_id, action_type, outcome in ended:
            metrics.COMMANDS_ENDED.labels(action_type, outcome.status.value).inc()
            log.log(
                logging.INFO if outcome.status is CommandStatus.SUCCEEDED else logging.WARNING,
                "command %s (%s) ended %s%s",
                root_id,
                action_type,
                outcome.status.value,
                f": {outcome.reason}" if outcome.reason else "",
                extra={"command_id": root_id},
            )
        return [root_id for root_id, _, _ in ended]

    def cancel(self, command_id: str) -> None:
        with self.uow(read_only=True) as uow:
            row = uow.repo.get(CommandRow, command_id)
            if row is None:
                raise NotFound(f"command_id: no command {command_id}")
            if row.parent_id is not None:
                raise FailedPrecondition(
                    f"command {command_id} is a child of {row.parent_id}: cancel the parent"
                )
            if CommandStatus(row.status).terminal:
                raise FailedPrecondition(f"command {command_id} is already {row.status}")
        if not self.finish(command_id, Outcome(CommandStatus.CANCELLED, "cancelled by a client")):
            raise FailedPrecondition(f"command {command_id} ended before it could be cancelled")
