"""Retries (engine_service/domain/retries.py): failures in a row per key, exponential backoff
from an injected `now`, a limit, and a capped wait once it is reached."""

from __future__ import annotations

import threading

import pytest

from engine_service.domain.retries import Retries


def test_a_key_that_never_failed_is_ready_and_not_exhausted() -> None:
    retries = Retries(limit=3)
    assert retries.ready("k", 0.0) and not retries.exhausted("k")
    assert (retries.attempts("k"), retries.error("k"), "k" in retries, len(retries)) == (
        0,
        "",
        False,
        0,
    )


def test_each_failure_doubles_the_wait_up_to_the_cap() -> None:
    retries = Retries(limit=5, base=1.0, cap=10.0)
    assert [retries.delay(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_past_the_limit_the_wait_is_the_cap() -> None:
    retries = Retries(limit=3, base=1.0, cap=60.0)
    assert [retries.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 60.0, 60.0]


def test_a_failed_key_waits_until_its_next_instant() -> None:
    retries = Retries(limit=5, base=2.0, cap=100.0)
    assert retries.failed("k", 10.0, "boom") == 1
    assert not retries.ready("k", 11.9) and retries.ready("k", 12.0)
    assert retries.failed("k", 12.0, "again") == 2
    assert not retries.ready("k", 15.9) and retries.ready("k", 16.0)
    assert retries.error("k") == "again"


def test_a_key_is_exhausted_at_the_limit() -> None:
    retries = Retries(limit=3)
    for now in range(2):
        retries.failed("k", float(now))
        assert not retries.exhausted("k")
    retries.failed("k", 2.0)
    assert retries.exhausted("k") and retries.attempts("k") == 3


def test_a_failure_without_an_error_keeps_the_last_one() -> None:
    retries = Retries()
    retries.failed("k", 0.0, "first")
    retries.failed("k", 1.0)
    assert retries.error("k") == "first"


def test_forget_starts_a_key_afresh_and_keep_only_forgets_the_others() -> None:
    retries = Retries(limit=2)
    for key in ("a", "b", "c"):
        retries.failed(key, 0.0, key)
        retries.failed(key, 0.0, key)
    retries.forget("a")
    assert retries.attempts("a") == 0 and retries.ready("a", 0.0)
    retries.keep_only(["b"])
    assert ("b" in retries, "c" in retries, len(retries)) == (True, False, 1)


def test_keys_are_independent() -> None:
    retries = Retries(limit=2)
    retries.failed("a", 0.0)
    assert retries.ready("b", 0.0) and retries.attempts("b") == 0


@pytest.mark.parametrize(("limit", "base", "cap"), [(0, 1.0, 2.0), (3, 0.0, 2.0), (3, 4.0, 2.0)])
def test_bad_bounds_are_refused(limit: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Retries(limit, base, cap)


def test_failures_from_many_threads_are_all_counted() -> None:
    retries = Retries(limit=10_000)

    def fail() -> None:
        for _ in range(500):
            retries.failed("k", 0.0)

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert retries.attempts("k") == 4000
