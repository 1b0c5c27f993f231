"""Error isolation in the poll loop (docs/design.md §4, step 5 and 6): one host's unreadable
reply, or one command whose end raises, must not stop the others.

- `Strikes`: one poll's unreadable task statuses, counted per task once the poll's transaction
  commits; at the limit the task fails its command (domain/tasks.py, `misreported`).
- `CommandEnder`: ends the decided commands in one transaction; if that raises, each in its
  own, retrying a command whose end raises with backoff and ending it FAILED at the limit.

Every error isolated here is logged with its ids and counted in `engine_poll_errors_total`.
The database failing (down, its disk full) or this engine losing its lease is not isolated:
it is no command's fault, so it counts against none, and the whole cycle is tried again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from engine_service import observability as metrics
from engine_service.adapters.db_faults import DatabaseFull, DatabaseUnavailable
from engine_service.adapters.lease import LeaseLost
from engine_service.domain.commands import CommandStatus, Outcome
from engine_service.domain.hosts import Host
from engine_service.domain.retries import Retries
from engine_service.domain.tasks import ReportedStatus, TaskUpdate, TaskView, misreported
from engine_service.service_layer.lifecycle import CommandLifecycle

log = logging.getLogger("engine_service.service_layer.async_task_manager")

# The backoff of a command whose end raises, in poll cycles: 1, 2, 4, 8, 16, then 32 once it
# has failed `limit` times and keeps failing even to end FAILED.
END_BACKOFF_BASE = 1.0
END_BACKOFF_CAP = 32.0
# Decided commands ended per transaction. A poll that decides hundreds of commands would hold
# SQLite's one writer for as long as it takes to end them all (about 0.5 s for 40 while 16
# clients submitted: every submission waited behind it); in transactions of this many, the
# submissions waiting take their turns between them (adapters/writers.py).
END_BATCH = 8
# Faults of the database or of this engine's lease, never of a command or a host's reply.
NOT_ISOLATED = (DatabaseUnavailable, DatabaseFull, LeaseLost)


def poll_error(stage: str) -> None:
    """Count one isolated error of the poll loop."""
    metrics.POLL_ERRORS.labels(stage).inc()


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Strikes:
    """One poll's view of which tasks were reported unreadably (docs/design.md §4 step 5). It is
    staged, and added to `counts` (the poller's, across polls) only once the poll's transaction
    commits, so that recording a poll again, host by host, does not count it twice."""

    counts: Retries
    staged: dict[str, str | None] = field(default_factory=dict)  # task id -> problem or None

    def unreadable(self, host: Host, task: TaskView, status: ReportedStatus) -> TaskUpdate | None:
        """The task is not updated this poll; at the limit of polls in a row it fails."""
        times = self.counts.attempts(task.task_id) + 1
        self.staged[task.task_id] = status.problem
        poll_error("reply")
        log.warning(
            "host %s reported task %s (agent task %s, command %s) unreadably, %d poll(s) in a "
            "row (it fails its command at %d): %s",
            host.name,
            task.task_id,
            task.vdsm_task_id,
            task.root_command_id,
            times,
            self.counts.limit,
            status.problem,
            extra={"task_id": task.task_id, "host": host.name, "command_id": task.root_command_id},
        )
        return misreported(task, host.name, status, times) if times >= self.counts.limit else None

    def readable(self, task: TaskView) -> None:
        """The task was reported readably (or not at all): its count starts again."""
        self.staged[task.task_id] = None

    def apply(self) -> None:
        """The poll committed: what it saw counts."""
        for task_id, problem in self.staged.items():
            if problem is None:
                self.counts.forget(task_id)
            else:
                self.counts.failed(task_id, 0.0, problem)
        self.staged.clear()


class CommandEnder:
    """Ends the commands a poll decided, `batch` (END_BATCH) of them per transaction (the fast
    path); if one of those raises, each of its commands in its own, so that the others end in
    the same cycle. A command whose end raises is retried with backoff (END_BACKOFF_*, in
    cycles) up to `limit` times, then ended FAILED with the error as its reason; if even that
    raises, it is tried again every END_BACKOFF_CAP cycles, logged at ERROR each time."""

    def __init__(self, lifecycle: CommandLifecycle, limit: int, batch: int = END_BATCH) -> None:
        self.lifecycle = lifecycle
        self.batch = max(1, batch)
        self.retries = Retries(limit, END_BACKOFF_BASE, END_BACKOFF_CAP)
        self.cycle = 0

    def end(self, decided: dict[str, Outcome]) -> list[str]:
        """End what is due this cycle of `decided` (every decided, still active command);
        returns the ones this call ended."""
        self.cycle += 1
        now = float(self.cycle)
        self.retries.keep_only(decided)  # ended by someone else meanwhile: nothing to retry
        due = {r: o for r, o in decided.items() if self.retries.ready(r, now)}
        alone = {r: o for r, o in due.items() if r in self.retries}  # failed before
        fresh = [(r, o) for r, o in due.items() if r not in self.retries]
        ended: list[str] = []
        for start in range(0, len(fresh), self.batch):
            batch = dict(fresh[start : start + self.batch])
            try:
                ended += self.lifecycle.finish_many(batch)
            except NOT_ISOLATED:
                raise
            except Exception as exc:
                poll_error("end")
                log.warning(
                    "ending %d decided command(s) in one transaction failed (%s); "
                    "ending each in its own",
                    len(batch),
                    describe(exc),
                    exc_info=exc,
                )
                alone.update(batch)
        return ended + [r for r, outcome in alone.items() if self._end_alone(r, outcome, now)]

    def _end_alone(self, root_id: str, outcome: Outcome, now: float) -> bool:
        """One command in its own transaction; True if this ended it."""
        if not self.retries.exhausted(root_id):
            try:
                ended = bool(self.lifecycle.finish_many({root_id: outcome}))
            except NOT_ISOLATED:
                raise
            except Exception as exc:
                attempts = self.retries.failed(root_id, now, describe(exc))
                poll_error("end")
                log.warning(
                    "ending command %s %s failed (%d of %d): %s",
                    root_id,
                    outcome.status.value,
                    attempts,
                    self.retries.limit,
                    describe(exc),
                    exc_info=exc,
                    extra={"command_id": root_id},
                )
                if not self.retries.exhausted(root_id):
                    return False
            else:
                self.retries.forget(root_id)
                return ended
        return self._end_failed(root_id, now)

    def _end_failed(self, root_id: str, now: float) -> bool:
        """A command whose end failed `limit` times ends FAILED, the error as its reason."""
        reason = f"ending it failed {self.retries.limit} times: {self.retries.error(root_id)}"
        try:
            ended = bool(
                self.lifecycle.finish_many({root_id: Outcome(CommandStatus.FAILED, reason)})
            )
        except NOT_ISOLATED:
            raise
        except Exception as exc:
            self.retries.failed(root_id, now)  # keeps the error of the ending it was deciding
            poll_error("end")
            log.error(
                "command %s cannot even be ended FAILED (%s); trying again in %g cycles: %s",
                root_id,
                reason,
                self.retries.cap,
                describe(exc),
                exc_info=exc,
                extra={"command_id": root_id},
            )
            return False
        self.retries.forget(root_id)
        return ended
