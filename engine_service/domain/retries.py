"""Retrying what failed, key by key (docs/design.md §4, error isolation): how many times in a row
each key failed, when it may be tried again, and when it has failed too often.

Pure bookkeeping: time is whatever number the caller passes as `now` (seconds, or poll cycles),
so nothing here reads a clock. It is thread-safe: the poll thread and a test may share one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class _Failures:
    """One key's failures in a row: how many, when it may be tried again, the last error."""

    attempts: int
    next_at: float
    error: str


class Retries:
    """Failures in a row per key, with exponential backoff: after its n-th failure a key waits
    `base * 2**(n-1)` (1, 2, 4, ... with the defaults), at most `cap`, before its next attempt.
    After `limit` failures it is `exhausted`, and from then on it waits `cap` between attempts.
    A success (`forget`) starts the key afresh."""

    def __init__(self, limit: int = 5, base: float = 1.0, cap: float = 32.0) -> None:
        if limit < 1 or base <= 0 or cap < base:
            raise ValueError(f"bad retry bounds: limit {limit}, base {base}, cap {cap}")
        self.limit = limit
        self.base = base
        self.cap = cap
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def delay(self, attempts: int) -> float:
        """How long a key waits after its `attempts`-th failure in a row."""
        if attempts >= self.limit + 1:
            return self.cap
        return min(self.base * 2 ** min(attempts - 1, 64), self.cap)  # 2**1024 overflows

    def failed(self, key: str, now: float, error: str | None = None) -> int:
        """One more failure of `key` at `now`; returns its failures in a row. `error` replaces
        the one kept for it (None keeps the previous one)."""
        with self._lock:
            before = self._failures.get(key)
            attempts = (before.attempts if before else 0) + 1
            kept = error if error is not None else (before.error if before else "")
            self._failures[key] = _Failures(attempts, now + self.delay(attempts), kept)
            return attempts

    def attempts(self, key: str) -> int:
        """The failures in a row of `key` (0 for a key that has not failed)."""
        with self._lock:
            failures = self._failures.get(key)
            return failures.attempts if failures else 0

    def error(self, key: str) -> str:
        """The last error kept for `key` ("" for a key that has not failed)."""
        with self._lock:
            failures = self._failures.get(key)
            return failures.error if failures else ""

    def exhausted(self, key: str) -> bool:
        """Whether `key` has failed `limit` times in a row."""
        return self.attempts(key) >= self.limit

    def ready(self, key: str, now: float) -> bool:
        """Whether `key` may be tried at `now`: it never failed, or its wait is over."""
        with self._lock:
            failures = self._failures.get(key)
            return failures is None or now >= failures.next_at

    def forget(self, key: str) -> None:
        """`key` succeeded, or no longer needs trying: its next failure is its first."""
        with self._lock:
            self._failures.pop(key, None)

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget every key but these (the ones that still need trying)."""
        wanted = set(keys)
        with self._lock:
            for key in [k for k in self._failures if k not in wanted]:
                del self._failures[key]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._failures

    def __len__(self) -> int:
        with self._lock:
            return len(self._failures)
