"""The malloc arena cap both services set at start (service_common/memory.py)."""

from __future__ import annotations

import gc
import platform

import pytest

from service_common import memory


def test_the_environment_s_cap_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.cap_malloc_arenas() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's M_ARENA_MAX is glibc's")
def test_glibc_takes_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert memory.cap_malloc_arenas() is True


class _Musl:
    """A C library with mallopt but not glibc's version call."""

    def __init__(self, name: object) -> None:
        pass

    def mallopt(self, option: int, value: int) -> int:
        raise AssertionError("not glibc: mallopt is not called")


def test_a_c_library_that_is_not_glibc_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(memory.ctypes, "CDLL", _Musl)
    assert memory.cap_malloc_arenas() is False


def test_what_exists_at_the_freeze_is_left_out_of_collections() -> None:
    try:
        kept: list[list[int]] = [[] for _ in range(100)]
        frozen = memory.freeze_startup_objects()
        assert frozen >= 100 and gc.get_freeze_count() == frozen
        assert not any(o is kept[0] for g in range(3) for o in gc.get_objects(generation=g))
    finally:
        gc.unfreeze()
