"""SQLite's one writer, handed from thread to thread in the order they asked.

SQLite lets one transaction write at a time. A thread whose BEGIN IMMEDIATE finds the database
locked is left to SQLite's busy handler, which sleeps and tries again (1 ms, 2 ms, 5 ms, ... then
100 ms at a time) and has no queue: under steady writes a thread that has waited long sleeps
longest and keeps losing to threads that have just come, so one submission in a hundred waited
seconds behind others' commits (bench: the load benchmark's p99, concurrency 16's p99).

The engine is the only process that writes its database (it holds the lease), so the order is
kept inside it: a write unit of work takes the gate before its BEGIN IMMEDIATE and gives it
back once the transaction has ended; the threads waiting get it one after the other, first
come first served, each woken only when its turn comes, the clients' units and the engine's own
(its poll cycle, marked with `background()`) taking turns. Units that only read never take it
(WAL lets them read beside the writer). PostgreSQL needs none: its writers run side by side.

A thread that already holds the gate and opens another write unit is not stopped by it (it
meets SQLite's own lock then, as before), and a thread that waits longer than `timeout` goes on
without its turn (SQLite's busy timeout then decides), so the gate never turns a slow writer
into a hang.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

_thread = threading.local()


@contextmanager
def background() -> Iterator[None]:
    """The calling thread does the engine's own work (its poll cycle) until the block ends:
    its write units take turns with the clients' (see WriterGate)."""
    before, _thread.background = in_background(), True
    try:
        yield
    finally:
        _thread.background = before


def in_background() -> bool:
    return bool(getattr(_thread, "background", False))


class WriterGate:
    """A first-come, first-served lock for the write transactions of one SQLite database, with
    two queues taking turns: the clients' units and the engine's own (background()). First come,
    first served alone would let a steady stream of submissions starve the poll cycle, whose
    work (ending commands, clearing tasks) then piles up; the poll alone first would make every
    submission wait for all of a cycle's work. Taking turns, each waits for at most one unit of
    the other kind per turn of its own."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._mutex = threading.Lock()
        # [clients' queue, background queue] of (thread id, its turn)
        self._queues: tuple[deque[tuple[int, threading.Event]], ...] = (deque(), deque())
        self._owner: int | None = None  # the thread holding the gate
        self._last = 0  # the queue whose unit had the last turn

    def acquire(self) -> bool:
        """Wait for this thread's turn; False if it did not take the gate (it holds it
        already, or its wait timed out), and then it must not `release`."""
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                return False
            if self._owner is None:
                self._owner = me
                return True
            turn = (me, threading.Event())
            queue = self._queues[1 if in_background() else 0]
            queue.append(turn)
        if turn[1].wait(self.timeout):
            return True  # `release` made this thread the owner
        with self._mutex:
            if turn[1].is_set():  # handed over just as the wait ended
                return True
            queue.remove(turn)
            return False

    def release(self) -> None:
        """Hand the gate to the thread that has waited longest in the queue whose turn it is
        (the other one's, if both have threads waiting)."""
        with self._mutex:
            index = self._next()
            if index is None:
                self._owner = None
                return
            self._hand(index)

    def hand_to_client(self) -> bool:
        """Hand the gate over if the next turn is a client's (a thread in the clients' queue,
        and the background queue's turn not due); else keep it and return False. The group
        commit (group_commit.py) lets the next client unit into its open transaction so."""
        with self._mutex:
            if self._next() != 0:
                return False
            self._hand(0)
            return True

    def _next(self) -> int | None:
        """The queue whose thread gets the gate next, or None if no thread waits."""
        waiting = [i for i, q in enumerate(self._queues) if q]
        if not waiting:
            return None
        return waiting[0] if len(waiting) == 1 else 1 - self._last

    def _hand(self, index: int) -> None:
        self._last = index
        self._owner, turn = self._queues[index].popleft()
        turn.set()

    @property
    def queued(self) -> int:
        """Threads waiting for their turn."""
        with self._mutex:
            return sum(len(q) for q in self._queues)
