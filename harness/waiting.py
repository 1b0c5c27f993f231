"""Waiting for a condition observed by polling, with a deadline and a useful timeout message."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    fetch: Callable[[], T],
    until: Callable[[T], bool],
    timeout: float,
    interval: float,
    describe: Callable[[T], str],
) -> T:
    """Call `fetch` until `until(value)` holds and return that value; after `timeout` seconds
    raise TimeoutError with `describe(last value)`."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{describe(value)} after {timeout}s")
        time.sleep(interval)
