"""When a failed call is tried again, and how long to wait before each new attempt."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, for the statuses that say "not now" rather than "no".

    `UNAVAILABLE` is the engine being unreachable, restarting, a standby, or its database being
    down: the same call may succeed a moment later. Every call of the client is safe to send
    again: a call that creates something carries a request id, the same on every attempt, so a
    retry after a lost reply returns the first result instead of making a second one; the other
    changes are idempotent in effect (cancel, maintenance, remove, reconcile) and reads change
    nothing. `DEADLINE_EXCEEDED` is not retried by default: the caller's own time is up.
    """

    attempts: int = 6
    initial_backoff: float = 0.1
    max_backoff: float = 3.0
    multiplier: float = 2.0
    # Each wait is drawn from [backoff * (1 - jitter), backoff]: callers that failed together
    # do not come back together.
    jitter: float = 0.5
    retry_on: frozenset[grpc.StatusCode] = field(
        default_factory=lambda: frozenset({grpc.StatusCode.UNAVAILABLE})
    )

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("backoffs must satisfy 0 <= initial_backoff <= max_backoff")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def retries(self, code: grpc.StatusCode) -> bool:
        return code in self.retry_on

    def waits(self, rng: random.Random | None = None) -> Iterator[float]:
        """The wait before attempt 2, 3, ... up to `attempts` (so attempts - 1 of them)."""
        draw = (rng or random.Random()).random
        backoff = self.initial_backoff
        for _ in range(self.attempts - 1):
            yield backoff * (1 - self.jitter * draw())
            backoff = min(backoff * self.multiplier, self.max_backoff)


NO_RETRY = RetryPolicy(attempts=1)
