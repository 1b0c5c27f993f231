"""Running commands through their lifecycle: submit (validate, build children, placeholders in
one transaction), execute (start the children's agent tasks, store their ids: sending.py), and
end.

Invariant I1 (docs/design.md §5) holds by construction: `execute` only calls an agent for a
placeholder that is committed, with the placeholder's task id as the agent's request id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine_service import observability as metrics
from engine_service.adapters.agent_client import AgentPool
from engine_service.adapters.repository import Repository
from engine_service.crash import crash_point
from engine_service.domain import history
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandRecord, CommandStatus, Outcome
from engine_service.domain.history import CommandEvent, EventKind
from engine_service.domain.requests import ClientRequest, Conflict
from engine_service.service_layer.commands.base import CommandBase, end_commands, start_next_phase
from engine_service.service_layer.host_selection import HostPicker, HostSnapshot
from engine_service.service_layer.idempotency import first_result, record_request
from engine_service.service_layer.lanes import Lanes, ThreadLanes
from engine_service.service_layer.plans import Held, Pending, Plan, Stored
from engine_service.service_layer.sending import STARTS_PER_HOST, Executing, Sender
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory
from service_common.errors import AlreadyExists, FailedPrecondition, NotFound
from service_common.spans import annotate, spanned

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """A submitted command's id and, when every start was accepted and stored, the command
    as its submission left it (`held`): the reply is built from it without a read."""

    command_id: str
    held: Held | None = None


class CommandLifecycle:
    """Submits commands, starts their tasks on the agents, and ends them exactly once."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        agents: AgentPool,
        start_attempts: int = 8,
        retry_delay: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
        run_soon: Callable[[Callable[[], None]], None] | None = None,
        starts_per_host: int = STARTS_PER_HOST,
        lanes: Lanes | None = None,
    ) -> None:
        self.uow = uow
        # How a next phase is started once its placeholders are committed: on a thread of its
        # own by default, so that the poll that ended the phase goes on.
        self.run_soon = run_soon or _on_a_thread
        self.agents = agents
        self._executing = Executing()
        # How a command's tasks after its first are started at once: on threads (made on first
        # use) unless `lanes` says otherwise (the unit tests run them one after the other).
        self._threads = ThreadLanes()
        self.sender = Sender(
            uow,
            agents,
            self._executing,
            lambda root_id, outcome, unresolved: self.finish(root_id, outcome, unresolved),
            lanes or self._threads,
            starts_per_host,
            start_attempts,
            retry_delay,
            sleep,
        )

    def close(self) -> None:
        """The engine stops: no more threads for starts (they run on the caller's)."""
        self._threads.close()

    def executing(self) -> set[str]:
        """Commands whose tasks this process is submitting right now."""
        return self._executing.ids()

    # -- submit ------------------------------------------------------------------------------

    @spanned("command.submit")
    def submit(
        self,
        make_command: Callable[[], CommandBase[Any]],
        request: ClientRequest | None,
        retry_of: str | None = None,
        by: str = "",
    ) -> Submission:
        """Validate, build the children and commit every placeholder in one transaction, then
        execute. Returns the command id (a repeated request gets the first one's) and, if every
        start was stored, the command as it left it. A retry names the command it runs again:
        both histories say so, in the same transaction. `by` (who asked) goes into the
        history."""
        submitted = self._submit(make_command, request, retry_of, by)
        annotate("command.id", submitted.command_id)
        return submitted

    def _submit(
        self,
        make_command: Callable[[], CommandBase[Any]],
        request: ClientRequest | None,
        retry_of: str | None,
        by: str,
    ) -> Submission:
        for attempt in range(3):
            command = make_command()
            command.submitted_by = by
            annotate("command.action_type", command.action_type)
            # Marked as executing before its placeholders can be seen, so that a concurrent
            # reconciliation never takes them for orphans.
            self._executing.add(command.command_id)
            try:
                accepted = self._insert_placeholders(command, request, retry_of)
            except Conflict as exc:
                # A concurrent request took a name, a lock or the request id first; the next
                # attempt's validation says which, precisely.
                self._not_executing(command.command_id)
                log.info(
                    "submit of %s conflicted (attempt %d: %s); validating again",
                    command.action_type,
                    attempt + 1,
                    exc,
                )
                continue
            except (FailedPrecondition, AlreadyExists):
                self._not_executing(command.command_id)
                existing = self._answered_meanwhile(request)
                if existing is not None:
                    return Submission(existing)
                raise
            except BaseException:
                self._not_executing(command.command_id)
                raise
            if isinstance(accepted, str):  # the request was answered before
                self._not_executing(command.command_id)
                return Submission(accepted)
            crash_point("after_placeholders_commit")
            stored = self.execute(command.command_id, accepted)
            return Submission(command.command_id, accepted.held(stored) if stored else None)
        raise FailedPrecondition("the request kept conflicting with concurrent ones; retry it")

    @spanned("command.placeholders")
    def _insert_placeholders(
        self, command: CommandBase[Any], request: ClientRequest | None, retry_of: str | None
    ) -> Plan | str:
        """Steps 1 to 3 in ONE transaction. Returns the plan `execute` works through, or the
        id of the command a repeated request made."""
        with self.uow() as uow:
            existing = first_result(uow.repo, request)
            if existing is not None:
                return existing
            command.validate(uow.repo)
            command.children = command.build_child_commands()
            picker = HostPicker(uow.repo)
            placeholders = command.insert_async_task_placeholders(uow.repo, picker)
            annotate("command.tasks", len(placeholders))
            record_request(uow.repo, request, command.command_id)
            if retry_of is not None:
                uow.repo.add_events(
                    history.retry_links(
                        retry_of, command.command_id, utcnow(), command.submitted_by
                    )
                )
            crash_point("placeholders_uncommitted")
            uow.commit()
        log.info(
            "command %s (%s) accepted with %d task placeholder(s)",
            command.command_id,
            command.action_type,
            len(command.children),
            extra={"command_id": command.command_id},
        )
        return Plan(
            {c.command_id: c for c in command.children},
            [Pending.of(t) for t in placeholders],
            HostSnapshot(picker.hosts),
            command.records,
            placeholders,
            command.made,
        )

    def _answered_meanwhile(self, request: ClientRequest | None) -> str | None:
        """The result of a request with the same request id that committed while this one was
        being validated. Under READ COMMITTED, a duplicate can miss the first's request id, then
        see the locks and names it committed a moment later and fail on them."""
        if request is None:
            return None
        with self.uow(read_only=True) as uow:
            return first_result(uow.repo, request)

    def _not_executing(self, root_id: str) -> None:
        self._executing.discard(root_id)

    # -- execute -----------------------------------------------------------------------------

    def read_plan(self, root_id: str) -> Plan:
        """The plan of a command read back: its children and its unsent placeholders."""
        with self.uow(read_only=True) as uow:
            repo = uow.repo
            children = repo.children_of_many([root_id]).get(root_id, [])
            return Plan(
                {c.command_id: CommandBase.from_record(c) for c in children},
                [Pending.of(t) for t in repo.tasks_of(root_id) if t.is_placeholder],
                HostSnapshot(repo.hosts()),
            )

    @spanned("command.execute", arguments={"command.id": "root_id"})
    def execute(self, root_id: str, plan: Plan | None = None) -> Stored | None:
        """Start the agent task of every placeholder of the command that has no agent id, and
        store the agents' ids (sending.py); returns what was stored if that was all of them.
        `submit` passes the `plan` it has just committed; without one it is read back."""
        self._executing.add(root_id)
        try:
            return self.sender.send(root_id, plan or self.read_plan(root_id))
        finally:
            self._not_executing(root_id)

    # -- end ---------------------------------------------------------------------------------

    def finish(
        self,
        root_id: str,
        outcome: Outcome,
        unresolved: Sequence[str] = (),
        events: Sequence[CommandEvent] = (),
    ) -> bool:
        """End a top-level command now, exactly once; False if it had already ended. `events`
        go into its history with the end, in the same transaction, if this call ends it."""
        return bool(
            self.finish_many({root_id: outcome}, unresolved, missing_is_error=True, events=events)
        )

    @spanned("command.end", result="command.ended", arguments={"command.ids": "outcomes"})
    def finish_many(
        self,
        outcomes: dict[str, Outcome],
        unresolved: Sequence[str] = (),
        missing_is_error: bool = False,
        events: Sequence[CommandEvent] = (),
    ) -> list[str]:
        """End these top-level commands, each exactly once, in ONE transaction (a poll ends
        every command it decided with one commit). Returns the ones this call ended. `events`
        of a command go into its history just before its end, if this call ends it."""
        ends: dict[str, tuple[CommandRecord, Outcome]] = {}
        advanced: list[str] = []  # commands whose next phase starts instead of their end
        try:
            with self.uow() as uow:
                records = uow.repo.commands_for_update(list(outcomes))
                before: list[CommandEvent] = []  # what led to an end, recorded before it
                for root_id, outcome in outcomes.items():
                    record = records.get(root_id)
                    if record is None:
                        if missing_is_error:
                            raise NotFound(f"command_id: no command {root_id}")
                        continue
                    if record.status.terminal:
                        continue  # it has ended: exactly once
                    in_phases = CommandBase.type_named(record.action_type).has_phases
                    if outcome.succeeded and in_phases:
                        next_phase = self._next_phase(uow.repo, root_id)
                        if isinstance(next_phase, Outcome):
                            outcome = next_phase  # the next phase cannot start: it fails
                        elif next_phase:
                            advanced.append(root_id)
                            continue
                    before += (e for e in events if e.command_id == root_id)
                    ends[root_id] = (record, outcome)
                if not ends and not advanced:
                    return []  # nothing committed: the events go too
                if ends:
                    uow.repo.add_events(before)
                    end_commands(uow.repo, ends, unresolved)
                    crash_point("before_end_commit")
                uow.commit()
        except BaseException:
            for root_id in advanced:
                self._not_executing(root_id)
            raise
        ended = [(root_id, record, outcome) for root_id, (record, outcome) in ends.items()]
        self._executing.ended(root_id for root_id, _, _ in ended)  # their unsent tasks stay so
        now = utcnow()
        for root_id, record, outcome in ended:
            _log_end(root_id, record, outcome, now)
        for root_id in advanced:
            crash_point("between_phases")
            self.run_soon(lambda root_id=root_id: self._execute_phase(root_id))  # type: ignore[misc]
        return [root_id for root_id, _, _ in ended]

    def _next_phase(self, repo: Repository, root_id: str) -> bool | Outcome:
        """Add the next phase of a command whose tasks all succeeded to the transaction: True
        if it has one (it is marked executing from now on, so that no sweep takes its new
        placeholders for orphans), False if it is done, or the failure to end it with when no
        host is UP to run that phase."""
        self._executing.add(root_id)
        try:
            placeholders = start_next_phase(repo, root_id, HostPicker(repo))
        except FailedPrecondition as exc:
            self._not_executing(root_id)
            return Outcome(CommandStatus.FAILED, f"its next phase could not start: {exc}")
        except BaseException:
            self._not_executing(root_id)
            raise
        if placeholders is None:
            self._not_executing(root_id)
            return False
        log.info(
            "command %s: phase done, %d task placeholder(s) of the next committed",
            root_id,
            len(placeholders),
            extra={"command_id": root_id},
        )
        return True

    def _execute_phase(self, root_id: str) -> None:
        try:
            self.execute(root_id)
        except Exception:  # the sweep fails it later if its placeholders stay unsent
            log.exception("starting the next phase of command %s failed", root_id)

    def cancel(self, command_id: str, by: str = "") -> None:
        """Cancel a top-level command; `by` (who asked) goes into its history."""
        with self.uow(read_only=True) as uow:
            record = uow.repo.command(command_id)
            if record is None:
                raise NotFound(f"command_id: no command {command_id}")
            if (why := record.cancellable()) is not None:
                kind = f"ALREADY_{record.status.value}" if record.status.terminal else "CHILD"
                raise FailedPrecondition(why, subject=f"commands/{command_id}", kind=kind)
        asked = CommandEvent(
            command_id, utcnow(), EventKind.CANCEL_REQUESTED, f"by {by}" if by else ""
        )
        cancelled = Outcome(CommandStatus.CANCELLED, "cancelled by a client")
        if not self.finish(command_id, cancelled, events=[asked]):
            raise FailedPrecondition(
                f"command {command_id} ended before it could be cancelled",
                subject=f"commands/{command_id}",
                kind="ALREADY_ENDED",
            )


def _on_a_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="next-phase", daemon=True).start()


def _log_end(root_id: str, record: CommandRecord, outcome: Outcome, now: datetime) -> None:
    action_type, status = record.action_type, outcome.status.value
    metrics.COMMANDS_ENDED.labels(action_type, status).inc()
    seconds = (now - record.created_at).total_seconds()
    metrics.COMMAND_SECONDS.labels(action_type, status).observe(max(seconds, 0.0))
    log.log(
        logging.INFO if outcome.succeeded else logging.WARNING,
        "command %s (%s) ended %s%s",
        root_id,
        action_type,
        outcome.status.value,
        f": {outcome.reason}" if outcome.reason else "",
        extra={"command_id": root_id},
    )
