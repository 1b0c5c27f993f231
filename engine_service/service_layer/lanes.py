"""Lanes: several pieces of work run at once, the caller waiting for all of them (sending.py
starts a command's tasks on several hosts this way)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

# Runs lanes of work (each a callable) at once and returns when all are done.
Lanes = Callable[[Sequence[Callable[[], None]]], None]


class ThreadLanes:
    """Runs lanes at once: the first on the calling thread, the others on a pool of threads
    (made on first use), each in a copy of the caller's context (its trace span). Once closed
    (the engine stopped), lanes run one after the other on the calling thread."""

    def __init__(self, workers: int = 32) -> None:
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._lock = threading.Lock()

    def __call__(self, lanes: Sequence[Callable[[], None]]) -> None:
        with self._lock:
            if self._pool is None and not self._closed:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="start")
            pool = None if self._closed else self._pool
            others = []
            if pool is not None:
                others = [pool.submit(contextvars.copy_context().run, lane) for lane in lanes[1:]]
        try:
            for lane in lanes if pool is None else lanes[:1]:
                lane()
        finally:
            for other in others:
                other.result()

    def close(self) -> None:
        """No new lanes on the pool; the ones running finish on their own."""
        with self._lock:
            self._closed = True
            if self._pool is not None:
                self._pool.shutdown(wait=False)
