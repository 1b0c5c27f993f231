"""A host (a hypervisor running vdsm-agent) and its state machine.

Two things are tracked apart: whether the agent answers (liveness, from the polls) and what the
operator decided (maintenance, fencing).

UP --(N failed polls in a row)--> NON_RESPONSIVE --(an answer)--> UP
any --(operator)--> MAINTENANCE --(operator)--> UP, or NON_RESPONSIVE if it is not answering

Failed polls count in every status: a host in MAINTENANCE that stops answering has an
`unreachable_since` like any other, and its commands time out like any other. Timeouts are
derived from stored instants (`unreachable_since + task_timeout`), never from a timer in memory,
so a restarted or a standby engine computes the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from engine_service.domain.clock import utcnow


class HostStatus(StrEnum):
    """A host as the engine sees it."""

    UP = "UP"
    NON_RESPONSIVE = "NON_RESPONSIVE"
    MAINTENANCE = "MAINTENANCE"


class HostChange(StrEnum):
    """What recording a poll did to a host, for the log."""

    WENT_NON_RESPONSIVE = "went NON_RESPONSIVE"
    STOPPED_ANSWERING = "stopped answering (in maintenance)"
    CAME_BACK = "answers again"


class HostAnswering(Exception):
    """A host that answers its polls cannot be confirmed rebooted."""


@dataclass
class Host:
    """A host: where it answers, its status, and the facts its timeouts derive from."""

    host_id: str
    name: str
    address: str
    status: HostStatus = HostStatus.UP
    failed_polls: int = 0  # polls in a row that the agent did not answer
    unreachable_since: datetime | None = None  # when it became NON_RESPONSIVE
    last_seen_at: datetime | None = None  # when its agent last answered a poll
    created_at: datetime = field(default_factory=utcnow)
    confirmed_rebooted_at: datetime | None = None  # fencing: when an operator confirmed it
    confirmed_rebooted_by: str = ""
    confirmed_rebooted_reason: str = ""

    @property
    def is_up(self) -> bool:
        return self.status is HostStatus.UP

    @property
    def is_non_responsive(self) -> bool:
        return self.status is HostStatus.NON_RESPONSIVE

    @property
    def is_answering(self) -> bool:
        """Whether its agent answers its polls, whatever the operator decided."""
        return self.unreachable_since is None

    def durable_state(self) -> tuple[object, ...]:
        """What of its liveness a poll must store when it changes: its status, since when it
        is not answering, and its failed polls in a row while it still answers (each counts
        towards the threshold; once it has stopped answering, more of them decide nothing).
        `last_seen_at` is not in it: it changes at every answer, and nothing decides on it."""
        return (self.status, self.unreachable_since, self.failed_polls if self.is_answering else -1)

    def record_failed_poll(self, now: datetime, threshold: int) -> HostChange | None:
        """One more poll unanswered. A host that reaches `threshold` of them in a row is not
        answering from `now`, in any status; an UP one becomes NON_RESPONSIVE."""
        self.failed_polls += 1
        if self.failed_polls < threshold or not self.is_answering:
            return None
        self.unreachable_since = now
        if self.status is HostStatus.UP:
            self.status = HostStatus.NON_RESPONSIVE
            return HostChange.WENT_NON_RESPONSIVE
        return HostChange.STOPPED_ANSWERING

    def record_answer(self, now: datetime) -> HostChange | None:
        """The agent answered a poll: its failure count restarts, it is answering again, and a
        NON_RESPONSIVE host is UP again (one in maintenance stays there)."""
        self.failed_polls = 0
        self.last_seen_at = now
        came_back = not self.is_answering
        self.unreachable_since = None
        if self.status is HostStatus.NON_RESPONSIVE:
            self.status = HostStatus.UP
        return HostChange.CAME_BACK if came_back else None

    def set_maintenance(self, maintenance: bool) -> None:
        """Into maintenance from any status; out of it, UP if it answers, NON_RESPONSIVE if
        not. Neither stops nor restarts the clock of a host that is not answering."""
        if maintenance:
            self.status = HostStatus.MAINTENANCE
        elif self.status is HostStatus.MAINTENANCE:
            self.status = HostStatus.UP if self.is_answering else HostStatus.NON_RESPONSIVE

    def tasks_timed_out(self, now: datetime, task_timeout: float) -> bool:
        """Its commands fail `task_timeout` seconds after it stopped answering, in any status."""
        return (
            self.unreachable_since is not None
            and self.unreachable_since + timedelta(seconds=task_timeout) <= now
        )

    def unreachable_message(self) -> str:
        """What the unfinished tasks on a host that is not answering say."""
        since = f"{self.unreachable_since:%Y-%m-%d %H:%M:%S}" if self.unreachable_since else "?"
        if self.status is HostStatus.MAINTENANCE:
            return f"host {self.name} (in maintenance) has not answered since {since} UTC"
        return f"host {self.name} is NON_RESPONSIVE since {since} UTC"

    def confirm_rebooted(self, now: datetime, by: str, reason: str) -> None:
        """Fencing: the operator asserts it is down and its processes gone. Refused while it
        answers: a host that answers is not down, and its tasks may still be running."""
        if self.is_answering:
            raise HostAnswering(
                f"host {self.name} answers its polls (last at "
                f"{self.last_seen_at:%Y-%m-%d %H:%M:%S} UTC): it has not been rebooted; "
                "put it in maintenance and wait for its tasks instead"
                if self.last_seen_at
                else f"host {self.name} answers its polls: it has not been rebooted"
            )
        self.confirmed_rebooted_at = now
        self.confirmed_rebooted_by = by
        self.confirmed_rebooted_reason = reason

    def fencing_reason(self) -> str:
        """Why its commands failed when the operator confirmed it rebooted."""
        by = self.confirmed_rebooted_by or "an operator"
        return f"host {self.name} was confirmed rebooted by {by}: {self.confirmed_rebooted_reason}"

    def timeout_reason(self, task_timeout: float) -> str:
        """Why its commands failed when its task timeout passed."""
        since = f"{self.unreachable_since:%Y-%m-%d %H:%M:%S}" if self.unreachable_since else "?"
        return (
            f"host {self.name} ({self.address}) has not answered since {since} UTC; "
            f"task timeout {task_timeout:g}s"
        )


def least_busy(hosts: list[Host], load: dict[str, int]) -> Host | None:
    """The UP host with the fewest tasks in flight (by name on a tie); None if none is UP."""
    up = sorted((h for h in hosts if h.is_up), key=lambda h: h.name)
    return min(up, key=lambda h: load.get(h.host_id, 0)) if up else None
