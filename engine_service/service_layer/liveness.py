"""When each host's agent last answered a poll, kept in memory (docs/design.md §4, step 5).

A poll in which nothing changed writes nothing. `last_seen_at` changes at every answer, so the
poller keeps it here and stores it on the host's row only with a change of the host's durable
state (`Host.durable_state`: its status, since when it is not answering, its failed polls in a
row) or once the stored value is `every` seconds old (LAST_SEEN_EVERY, 60 s by default).

That is safe because no decision reads `last_seen_at`: liveness (NON_RESPONSIVE after
--host-failure-polls failures, `unreachable_since`, the task timeout counted from it) derives
from `failed_polls` and `unreachable_since`, which are stored at every change. An engine that
restarts, or a standby that takes over, reads a `last_seen_at` at most `every` seconds older
than the truth, which only the console, ListHosts and one fencing message show, and only until
its own first poll answers. While the engine runs, those show the newest value from here.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta

from engine_service.domain.hosts import Host

# How old the stored last_seen_at of an answering host may get before a poll stores it again.
LAST_SEEN_EVERY = 60.0


class LastSeen:
    """The newest answer of each host's agent, in memory, and when it is due to be stored."""

    def __init__(self, every: float = LAST_SEEN_EVERY) -> None:
        self.every = timedelta(seconds=every)
        self._lock = threading.Lock()
        self._seen: dict[str, datetime] = {}

    def answered(self, host_id: str, at: datetime) -> None:
        with self._lock:
            if (known := self._seen.get(host_id)) is None or known < at:
                self._seen[host_id] = at

    def newest(self, host: Host) -> datetime | None:
        """The host's last answer: the stored one, or a newer one seen by this process."""
        with self._lock:
            seen = self._seen.get(host.host_id)
        stored = host.last_seen_at
        if seen is None or (stored is not None and stored >= seen):
            return stored
        return seen

    def shown(self, host: Host) -> Host:
        """The host as the API shows it: with its newest last answer."""
        newest = self.newest(host)
        if newest == host.last_seen_at:
            return host
        return dataclasses.replace(host, last_seen_at=newest)

    def due(self, stored: datetime | None, now: datetime) -> bool:
        """Whether a host's stored last_seen_at is old enough to be stored again at `now`."""
        return stored is None or now - stored >= self.every
