"""A write unit of work's time is measured and a slow one is logged with where it was opened
(service_layer/unit_of_work.py). Over a stub session: no database."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine_service import observability as metrics
from engine_service.service_layer import unit_of_work
from engine_service.service_layer.unit_of_work import SLOW_WRITE_SECONDS, UnitOfWork


class _Session:
    def begin(self) -> None:
        pass

    def connection(self, **_: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def commit(self) -> None:
        pass


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(unit_of_work.time, "monotonic", clock)
    return clock


def _sessions() -> sessionmaker[Session]:
    return cast("sessionmaker[Session]", _Session)


def _observed(kind: str) -> float:
    value = metrics.WRITE_UNIT_SECONDS.labels(kind)._sum.get()
    return float(value)


def test_a_slow_write_unit_is_logged_with_where_it_was_opened(
    clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    before = _observed("client")
    with caplog.at_level(logging.WARNING), UnitOfWork(_sessions()) as uow:
        clock.now += SLOW_WRITE_SECONDS + 0.5
        uow.commit()
    [record] = caplog.records
    assert "a write transaction took 750 ms" in record.getMessage()
    assert "tests/unit/test_write_unit_timing.py" in record.getMessage()
    assert "test_a_slow_write_unit_is_logged_with_where_it_was_opened" in record.getMessage()
    assert _observed("client") == pytest.approx(before + SLOW_WRITE_SECONDS + 0.5)


def test_a_quick_write_unit_is_measured_but_not_logged(
    clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    before = _observed("client")
    with caplog.at_level(logging.WARNING), UnitOfWork(_sessions()):
        clock.now += 0.01
    assert caplog.records == []
    assert _observed("client") == pytest.approx(before + 0.01)


def test_a_reading_unit_is_neither_measured_nor_logged(
    clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    before = _observed("client")
    with caplog.at_level(logging.WARNING), UnitOfWork(_sessions(), read_only=True):
        clock.now += 5
    assert caplog.records == [] and _observed("client") == before
