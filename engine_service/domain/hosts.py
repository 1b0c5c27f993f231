"""A host (a hypervisor running vdsm-agent) and its state machine.

UP --(N failed polls in a row)--> NON_RESPONSIVE --(an answer)--> UP
any --(operator)--> MAINTENANCE --(operator)--> UP (the next poll says whether it really is)

Timeouts are derived from stored instants (`unreachable_since + task_timeout`), never from a
timer in memory, so a restarted or a standby engine computes the same answer.
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
    CAME_BACK = "answers again: UP"


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

    @property
    def is_up(self) -> bool:
        return self.status is HostStatus.UP

    @property
    def is_non_responsive(self) -> bool:
        return self.status is HostStatus.NON_RESPONSIVE

    def record_failed_poll(self, now: datetime, threshold: int) -> HostChange | None:
        """One more poll unanswered; an UP host that reaches `threshold` of them in a row is
        NON_RESPONSIVE from `now`."""
        self.failed_polls += 1
        if self.failed_polls >= threshold and self.status is HostStatus.UP:
            self.status = HostStatus.NON_RESPONSIVE
            self.unreachable_since = now
            return HostChange.WENT_NON_RESPONSIVE
        return None

    def record_answer(self, now: datetime) -> HostChange | None:
        """The agent answered a poll: its failure count restarts, and a NON_RESPONSIVE host is
        UP again."""
        self.failed_polls = 0
        self.last_seen_at = now
        if self.status is HostStatus.NON_RESPONSIVE:
            self.status = HostStatus.UP
            self.unreachable_since = None
            return HostChange.CAME_BACK
        return None

    def set_maintenance(self, maintenance: bool) -> None:
        """Into maintenance from any status; out of it, UP until a poll says otherwise."""
        if maintenance:
            self.status = HostStatus.MAINTENANCE
        elif self.status is HostStatus.MAINTENANCE:
            self.status = HostStatus.UP
            self.failed_polls = 0

    def tasks_timed_out(self, now: datetime, task_timeout: float) -> bool:
        """Its commands fail `task_timeout` seconds after it became NON_RESPONSIVE."""
        return (
            self.status is HostStatus.NON_RESPONSIVE
            and self.unreachable_since is not None
            and self.unreachable_since + timedelta(seconds=task_timeout) <= now
        )

    def unreachable_message(self) -> str:
        """What the unfinished tasks on a NON_RESPONSIVE host say."""
        since = f"{self.unreachable_since:%Y-%m-%d %H:%M:%S}" if self.unreachable_since else "?"
        return f"host {self.name} is NON_RESPONSIVE since {since} UTC"

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
