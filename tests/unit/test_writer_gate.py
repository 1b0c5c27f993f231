"""SQLite's writer handed out first come, first served (engine_service/adapters/writers.py), and
the agent's copy buffers sized to the image (vdsm_agent/adapters/storage.py).

The gate's tests use threads that block on it; they never sleep: each waits until the gate
shows the expected queue (`queued`), yielding the processor meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

import pytest

from engine_service.adapters.writers import WriterGate, background, in_background
from engine_service.service_layer.unit_of_work import UnitOfWork
from tests.unit.world import World
from vdsm_agent.adapters.storage import CHUNK_BYTES, buffer_size


def _queued(gate: WriterGate, count: int) -> bool:
    return gate.queued == count


def _until(condition: Callable[[], bool]) -> None:
    for _ in range(10_000_000):
        if condition():
            return
        threading.Event().wait(0)  # yield the GIL; no time passes by design
    raise AssertionError("the condition never held")


def test_the_first_comer_takes_the_gate_at_once_and_gives_it_back() -> None:
    gate = WriterGate()
    assert gate.acquire() is True
    gate.release()
    assert gate.acquire() is True
    gate.release()
    assert gate.queued == 0


def test_waiting_threads_get_the_gate_in_the_order_they_asked() -> None:
    gate = WriterGate()
    assert gate.acquire()
    order: list[str] = []
    threads: list[threading.Thread] = []
    for name in ("first", "second", "third"):

        def writer(name: str = name) -> None:
            assert gate.acquire() is True
            order.append(name)
            gate.release()

        thread = threading.Thread(target=writer)
        expected = len(threads) + 1
        thread.start()
        threads.append(thread)
        _until(partial(_queued, gate, expected))
    gate.release()
    for thread in threads:
        thread.join(5)
    assert order == ["first", "second", "third"]
    assert gate.queued == 0


def test_the_clients_and_the_engines_own_work_take_turns() -> None:
    """Two clients and two poll-cycle units waiting: they alternate, each queue in its own
    order, so neither a stream of submissions nor a long cycle starves the other."""
    gate = WriterGate()
    assert gate.acquire()
    order: list[str] = []
    threads: list[threading.Thread] = []

    def writer(name: str, own_work: bool) -> None:
        if own_work:
            with background():
                assert in_background()
                assert gate.acquire() is True
        else:
            assert gate.acquire() is True
        order.append(name)
        gate.release()

    for name, own_work in (
        ("client1", False),
        ("client2", False),
        ("poll1", True),
        ("poll2", True),
    ):
        thread = threading.Thread(target=writer, args=(name, own_work))
        thread.start()
        threads.append(thread)
        _until(partial(_queued, gate, len(threads)))
    gate.release()
    for thread in threads:
        thread.join(5)
    assert order == ["poll1", "client1", "poll2", "client2"]
    assert not in_background()


def test_the_gate_goes_on_to_a_waiting_client_only_when_its_turn_is_a_clients() -> None:
    """What the group commit asks (adapters/group_commit.py): hand the open transaction to the
    next client, or keep the gate (to commit) when no client waits or the poll's turn is due."""
    gate = WriterGate()
    assert gate.acquire()
    assert gate.hand_to_client() is False  # nobody waits: the holder keeps the gate
    order: list[str] = []

    def writer(name: str, own_work: bool) -> None:
        if own_work:
            with background():
                assert gate.acquire() is True
        else:
            assert gate.acquire() is True
        order.append(name)
        if name == "client1":
            assert gate.hand_to_client() is False  # the poll's turn is due: keep, commit
        gate.release()

    client = threading.Thread(target=writer, args=("client1", False))
    client.start()
    _until(partial(_queued, gate, 1))
    poll = threading.Thread(target=writer, args=("poll1", True))
    poll.start()
    _until(partial(_queued, gate, 2))
    gate._last = 1  # the poll had the last turn: the client's is next
    assert gate.hand_to_client() is True  # client1 owns it now; the caller must not release
    client.join(5)
    poll.join(5)
    assert order == ["client1", "poll1"]
    assert gate.queued == 0 and gate.acquire() is True


def test_a_thread_that_holds_the_gate_is_not_stopped_by_it_again() -> None:
    gate = WriterGate()
    assert gate.acquire() is True
    assert gate.acquire() is False  # nested: it meets SQLite's own lock, as before the gate
    gate.release()
    assert gate.acquire() is True


def test_a_wait_that_times_out_goes_on_without_the_gate_and_leaves_the_queue() -> None:
    gate = WriterGate(timeout=0.0)
    assert gate.acquire()
    took: list[bool] = []
    thread = threading.Thread(target=lambda: took.append(gate.acquire()))
    thread.start()
    thread.join(5)
    assert took == [False]
    assert gate.queued == 0
    gate.release()
    assert gate.acquire() is True  # nobody is left waiting for a turn that never comes


def test_the_gate_is_handed_to_the_waiter_itself() -> None:
    """After a hand-over the new owner, nesting a unit, is recognised as the owner."""
    gate = WriterGate()
    assert gate.acquire()
    seen: list[bool] = []

    def writer() -> None:
        seen.append(gate.acquire())
        seen.append(gate.acquire())  # nested in the same thread: not queued behind itself
        gate.release()

    thread = threading.Thread(target=writer)
    thread.start()
    _until(lambda: gate.queued == 1)
    gate.release()
    thread.join(5)
    assert seen == [True, False]


def test_copy_buffers_are_a_chunk_or_the_image_in_whole_pages() -> None:
    assert buffer_size(64 * 1024, CHUNK_BYTES) == 64 * 1024
    assert buffer_size(1, CHUNK_BYTES) == 4096
    assert buffer_size(0, CHUNK_BYTES) == 4096
    assert buffer_size(4097, CHUNK_BYTES) == 8192
    assert buffer_size(1 << 30, CHUNK_BYTES) == CHUNK_BYTES
    assert buffer_size(30, 10) == 10  # never more than the chunk asked for


class _Session:
    """What UnitOfWork asks of a SQLAlchemy session, with no database behind it."""

    def __init__(self, fail_begin: bool = False) -> None:
        self.fail_begin = fail_begin
        self.closed = False

    def begin(self) -> None:
        if self.fail_begin:
            raise RuntimeError("cannot begin")

    def connection(self, **_: object) -> None:
        pass

    def commit(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _unit(gate: WriterGate, read_only: bool = False, fail_begin: bool = False) -> UnitOfWork:
    return UnitOfWork(lambda: _Session(fail_begin), read_only, gate)  # type: ignore[arg-type]


def test_a_write_unit_holds_the_gate_from_its_start_to_its_end() -> None:
    gate = WriterGate()
    with _unit(gate):
        assert gate.acquire() is False  # held by this thread's unit
        with pytest.raises(RuntimeError, match="boom"), _unit(gate):  # nested: not queued
            raise RuntimeError("boom")
        assert gate.acquire() is False  # the nested unit did not give back the outer's turn
    assert gate.acquire() is True  # given back at the end
    gate.release()


def test_a_write_unit_gives_the_gate_back_when_it_raises_or_cannot_begin() -> None:
    gate = WriterGate()
    with pytest.raises(RuntimeError, match="boom"), _unit(gate):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="cannot begin"), _unit(gate, fail_begin=True):
        pass
    assert gate.acquire() is True
    gate.release()


def test_a_unit_that_only_reads_never_takes_the_gate() -> None:
    gate = WriterGate()
    with _unit(gate, read_only=True):
        assert gate.acquire() is True  # free: the reading unit does not hold it
        gate.release()


def test_the_poll_cycle_runs_as_the_engines_own_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its write units go to the background queue (they alternate with the clients')."""
    manager = World().manager()
    seen: list[bool] = []

    def poll_once() -> None:
        seen.append(in_background())
        manager.stop()

    monkeypatch.setattr(manager, "poll_once", poll_once)
    manager._run()
    assert seen == [True] and not in_background()


def test_background_marks_restore_what_was_there() -> None:
    with background():
        with background():
            pass
        assert in_background()
    assert not in_background()
