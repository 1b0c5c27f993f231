"""Step 4 of a command's life (docs/design.md §4): start the agent task of each of its committed
placeholders, under the placeholder's task id as the request id, and store the agents' task ids.

The first placeholder is sent alone. Once its host has accepted it, the others are sent at once,
each host's in StartTasks calls of at most STARTS_PER_CALL starts (one round trip, one fsync on
the agent), at most `per_host` (STARTS_PER_HOST) calls in flight on each host, and every agent
id is then stored in ONE commit. Sending the first alone keeps crash point `after_agent_accept`
exact (one child accepted, no agent id stored, §6) and makes a host that refuses, or does not
answer, cost one task and not the whole command's. A start that fails stops the calls not sent
yet; the starts already accepted are stored all the same, so that the command's failure
compensates them.

Invariant I1 holds as before: only placeholders of a committed plan are sent (a placeholder
moved off a host that went down is moved in its own commit first: host_selection.py).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from engine_service.adapters.agent_client import AgentPool, AgentRejected, AgentUnavailable
from engine_service.crash import crash_point
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandStatus, Outcome
from engine_service.domain.history import CommandEvent, EventKind
from engine_service.domain.hosts import Host
from engine_service.domain.tasks import TaskCleanup
from engine_service.service_layer.commands.base import CommandBase
from engine_service.service_layer.host_selection import host_for
from engine_service.service_layer.lanes import Lanes
from engine_service.service_layer.plans import Pending, Plan, Stored
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory
from service_common.errors import FailedPrecondition
from service_common.spans import annotate, spanned

log = logging.getLogger("engine_service.service_layer.lifecycle")

# At most this many calls starting one command's tasks in flight on one host, and at most
# this many tasks in one of those calls (StartTasks). A 4-disk template's last three go in one
# call; a VM of 64 disks goes in four calls of 16 at once, not 64 requests queued at one agent.
STARTS_PER_HOST = 4
STARTS_PER_CALL = 16


@dataclass
class Start:
    """One placeholder being started on a host, and what came of it."""

    task: Pending
    host: Host
    agent_id: str | None = None
    error: Exception | None = None
    tried: bool = False  # a start was sent: an agent that did not answer may have accepted it

    @property
    def refused(self) -> bool:
        """The agent refused it, or did not answer: the command fails."""
        return isinstance(self.error, AgentUnavailable | AgentRejected)


class Executing:
    """The commands whose tasks this process is sending, and which of them ended meanwhile:
    their tasks not yet sent are not sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._roots: set[str] = set()
        self._ended: set[str] = set()

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._roots)

    def add(self, root_id: str) -> None:
        with self._lock:
            self._roots.add(root_id)

    def discard(self, root_id: str) -> None:
        with self._lock:
            self._roots.discard(root_id)
            self._ended.discard(root_id)

    def clear(self) -> None:
        with self._lock:
            self._roots.clear()
            self._ended.clear()

    def ended(self, root_ids: Iterable[str]) -> None:
        """These commands ended (this process committed their end)."""
        with self._lock:
            self._ended.update(r for r in root_ids if r in self._roots)

    def has_ended(self, root_id: str) -> bool:
        with self._lock:
            return root_id in self._ended


class Sender:
    """Starts the tasks of a command's committed placeholders and stores the agents' ids."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        agents: AgentPool,
        executing: Executing,
        fail: Callable[[str, Outcome, Sequence[str]], bool],
        lanes: Lanes,
        per_host: int = STARTS_PER_HOST,
        start_attempts: int = 8,
        retry_delay: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.uow = uow
        self.agents = agents
        self.executing = executing
        # Ends the command (root id, outcome, unresolved task ids); False if it had ended.
        self.fail = fail
        self.lanes = lanes
        self.per_host = max(1, per_host)
        self.start_attempts = start_attempts
        self.retry_delay = retry_delay
        self.sleep = sleep

    def send(self, root_id: str, plan: Plan) -> Stored | None:
        """Start every placeholder of `plan`: the first alone, then the others at once.
        Returns what was stored if every start was accepted and stored on its placeholder."""
        if not plan.pending:
            return None
        first = self._where(plan.pending[:1], plan)
        if not isinstance(first, list):
            if first is not None:
                self.fail(root_id, first, ())
            return None
        starts, failure = first, None
        self._start(starts[0], plan)
        if starts[0].agent_id is not None:
            crash_point("after_agent_accept")  # the first child accepted, its agent id not stored
            if len(plan.pending) > 1 and not self.executing.has_ended(root_id):
                rest = self._where(plan.pending[1:], plan)
                if isinstance(rest, list):
                    self._start_all(root_id, rest, plan)
                    starts += rest
                else:
                    failure = rest
        return self._settle(root_id, starts, failure, len(plan.pending))

    def _where(self, tasks: Sequence[Pending], plan: Plan) -> list[Start] | Outcome | None:
        """Each placeholder with the host it goes to (host_for); None if the command ended
        meanwhile (a placeholder is gone), the failure to end it with if no host is UP."""
        starts = []
        for task in tasks:
            try:
                host = host_for(self.uow, task, plan.hosts)
            except FailedPrecondition as exc:
                return Outcome(CommandStatus.FAILED, str(exc))
            if host is None:
                return None
            starts.append(Start(task, host))
        return starts

    def _start_all(self, root_id: str, starts: list[Start], plan: Plan) -> None:
        """Start these at once: each host's in calls of at most STARTS_PER_CALL (StartTasks:
        one round trip and one fsync on the agent for all of a call), at most `per_host`
        calls in flight on each host. Once one fails, or the command ends, the calls not sent
        yet are not sent."""
        failed = threading.Event()

        def stopping() -> bool:
            return failed.is_set() or self.executing.has_ended(root_id)

        def lane(queue: deque[list[Start]]) -> None:
            while not stopping():
                try:
                    batch = queue.popleft()
                except IndexError:
                    return
                self._start_batch(batch, plan, stopping)
                if any(start.error is not None for start in batch):
                    failed.set()

        by_host: dict[str, list[Start]] = defaultdict(list)
        for start in starts:
            by_host[start.host.host_id].append(start)
        queues = [
            deque(mine[i : i + STARTS_PER_CALL] for i in range(0, len(mine), STARTS_PER_CALL))
            for mine in by_host.values()
        ]
        self.lanes([partial(lane, q) for q in queues for _ in range(min(self.per_host, len(q)))])

    def _start_batch(self, batch: list[Start], plan: Plan, stopping: Callable[[], bool]) -> None:
        """Start a batch of one host's placeholders in one call, retrying the starts the agent
        did not answer for with the same request ids (like `_call`), until the attempts run out
        or `stopping`. Each start ends with its agent id or its error."""
        host = batch[0].host
        waiting = batch
        for attempt in range(1, self.start_attempts + 1):
            for start in waiting:
                start.tried, start.error = True, None
            answers: Sequence[str | Exception]
            try:
                answers = self._call_many(host, waiting, plan)
            except Exception as exc:  # the whole call: unanswered, or refused as a whole
                answers = [exc] * len(waiting)
            for start, answer in zip(waiting, answers, strict=True):
                if isinstance(answer, str):
                    start.agent_id = answer
                else:
                    start.error = answer
            if any(start.agent_id is not None for start in waiting):
                plan.hosts.answered(host.host_id)
            waiting = [s for s in waiting if isinstance(s.error, AgentUnavailable)]
            if not waiting or attempt == self.start_attempts or stopping():
                return
            self.sleep(min(self.retry_delay * attempt, 2.0))

    @spanned("agent.start_many")
    def _call_many(
        self, host: Host, batch: list[Start], plan: Plan
    ) -> list[str | AgentRejected | AgentUnavailable]:
        """One StartTasks call for a batch of starts on one host: each start's agent id, or
        why the agent did not take it."""
        annotate("host.name", host.name)
        annotate("tasks", len(batch))
        client = self.agents.get(host.address)
        answers = client.start_tasks(
            [plan.children[s.task.command_id].start_of(s.task.task_id) for s in batch]
        )
        for start, answer in zip(batch, answers, strict=True):
            if isinstance(answer, str):
                log.info(
                    "host %s accepted task %s as %s",
                    host.name,
                    start.task.task_id,
                    answer,
                    extra={"task_id": start.task.task_id, "host": host.name},
                )
        return answers

    def _start(
        self, start: Start, plan: Plan, stopping: Callable[[], bool] = lambda: False
    ) -> None:
        start.tried = True
        try:
            child = plan.children[start.task.command_id]
            start.agent_id = self._call(start.host, start.task.task_id, child, stopping)
        except Exception as exc:  # settled by `_settle`, after the other starts
            start.error = exc
            return
        plan.hosts.answered(start.host.host_id)

    @spanned("agent.start", result="agent.task_id", arguments={"task.id": "task_id"})
    def _call(
        self,
        host: Host,
        task_id: str,
        child: CommandBase[Any],
        stopping: Callable[[], bool] = lambda: False,
    ) -> str:
        """Have the child start its task, retrying UNAVAILABLE with the same request id (the
        agent's idempotency makes that safe) until the attempts run out or `stopping`."""
        annotate("host.name", host.name)
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
                if attempt == self.start_attempts or stopping():
                    raise
                # About 7 s in all by default: long enough for an agent to restart.
                self.sleep(min(self.retry_delay * attempt, 2.0))
        raise AssertionError("unreachable")

    def _settle(
        self, root_id: str, starts: list[Start], failure: Outcome | None, total: int
    ) -> Stored | None:
        """Store the accepted starts' agent ids in one commit; then fail the command if a start
        failed (or no host was left for one), or raise what a start raised. `total`: how many
        placeholders the plan had. Returns what was stored if it was all of them."""
        accepted = [s for s in starts if s.agent_id is not None]
        stored = self._store(root_id, accepted) if accepted else None
        refused = next((s for s in starts if s.refused), None)
        if failure is None and refused is not None:
            reason = (
                f"host {refused.host.name} did not start task {refused.task.task_id} "
                f"({refused.task.verb}): {refused.error}"
            )
            failure = Outcome(CommandStatus.FAILED, reason)
        if failure is not None:
            # A start sent to an agent that did not answer may have been accepted: that
            # placeholder is kept as cleanup debt, looked up when the host answers again.
            unresolved = [
                s
                for s in starts
                if s.tried and s.agent_id is None and not isinstance(s.error, AgentRejected)
            ]
            if not self.fail(root_id, failure, [s.task.task_id for s in unresolved]):
                self._keep_debt(root_id, unresolved)  # it had ended: its end deleted them
            return None
        error = next((s.error for s in starts if s.error is not None), None)
        if error is not None:
            raise error  # not the agent's answer: the sweeper settles what is left unsent
        if stored is None or len(accepted) != total:
            return None
        crash_point("after_vdsm_id_commit")  # every child's agent id is committed
        return Stored(
            stored,
            {s.task.task_id: s.host.host_id for s in accepted},
            {s.task.task_id: str(s.agent_id) for s in accepted},
        )

    def _store(self, root_id: str, accepted: list[Start]) -> datetime | None:
        """The agents' ids, in ONE commit; the commit's time if each went on its placeholder.
        A placeholder that is gone (its command ended while it was being started) comes back as
        a task accepted after the end: stopped, compensated and cleared like the others."""
        with self.uow() as uow:
            now = utcnow()
            ids = {s.task.task_id: s.agent_id for s in accepted if s.agent_id is not None}
            stored = uow.repo.set_vdsm_task_ids(ids, now)
            late, events = [], []
            for s in accepted:
                assert s.agent_id is not None
                task_id, on_time = s.task.task_id, s.task.task_id in stored
                kind = EventKind.TASK_ACCEPTED if on_time else EventKind.TASK_ACCEPTED_LATE
                what = f"agent task {s.agent_id}"
                events.append(CommandEvent(root_id, now, kind, what, task_id, s.host.host_id))
                if not on_time:
                    sent = dataclasses.replace(s.task, host_id=s.host.host_id)
                    late.append(sent.placeholder(root_id).accepted_after_end(s.agent_id, now))
            uow.repo.add_tasks(late)
            uow.repo.add_events(events)
            uow.commit()
        return now if len(stored) == len(accepted) else None

    def _keep_debt(self, root_id: str, unresolved: list[Start]) -> None:
        """Starts an agent may have accepted without answering, of a command that ended
        meanwhile (its end deleted their placeholders): kept as cleanup debt all the same,
        looked up by request id when their host answers (docs/design.md §7, step 5)."""
        if not unresolved:
            return
        with self.uow() as uow:
            ids = [s.task.task_id for s in unresolved]
            kept = uow.repo.known_among("task_id", ids)
            debt = []
            for s in unresolved:
                if s.task.task_id not in kept:
                    task = dataclasses.replace(s.task, host_id=s.host.host_id).placeholder(root_id)
                    task.cleanup = TaskCleanup.COMPENSATE
                    debt.append(task)
            uow.repo.add_tasks(debt)
            uow.commit()
