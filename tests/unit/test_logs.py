"""Log lines (service_common/logs.py): the trace and span ids of the span they were written in,
in both formats, and `--log-level`. No process, no socket: spans from a local TracerProvider."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from service_common.logs import configure_logging

log = logging.getLogger("tests.logs")


@pytest.fixture(autouse=True)
def root_logger() -> Iterator[None]:
    """configure_logging changes the root logger: put it back as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def ids_of(span: object) -> tuple[str, str]:
    context = span.get_span_context()  # type: ignore[attr-defined]
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def test_a_text_line_written_inside_a_span_carries_its_trace_and_span_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("text")
    with TracerProvider().get_tracer("test").start_as_current_span("step") as span:
        log.info("inside")
    log.info("outside")
    inside, outside = capsys.readouterr().err.splitlines()
    trace_id, span_id = ids_of(span)
    assert inside.endswith(f"tests.logs trace_id={trace_id} span_id={span_id}: inside")
    assert outside.endswith("tests.logs: outside")  # no span: no ids


def test_a_json_event_written_inside_a_span_carries_its_trace_and_span_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json")
    with TracerProvider().get_tracer("test").start_as_current_span("step") as span:
        log.info("inside", extra={"command_id": "c1"})
    log.info("outside")
    inside, outside = map(json.loads, capsys.readouterr().err.splitlines())
    trace_id, span_id = ids_of(span)
    assert (inside["trace_id"], inside["span_id"]) == (trace_id, span_id)
    assert inside["command_id"] == "c1" and inside["msg"] == "inside"
    assert "trace_id" not in outside and "span_id" not in outside
    assert "trace" not in inside  # the text format's helper field stays out of the JSON


@pytest.mark.parametrize("level", ["WARNING", "warning", logging.WARNING])
def test_log_level_warning_hides_info(capsys: pytest.CaptureFixture[str], level: object) -> None:
    configure_logging("text", level)  # type: ignore[arg-type]
    log.info("hidden")
    log.warning("shown")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].endswith("shown")


def test_the_default_level_is_info(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text")
    log.debug("hidden")
    log.info("shown")
    assert [line.rsplit(": ", 1)[1] for line in capsys.readouterr().err.splitlines()] == ["shown"]


def test_the_time_of_a_line_is_what_the_standard_formatter_writes_across_seconds() -> None:
    """The formatters format a second once and reuse it: every record still gets its own time,
    to the millisecond, in and across seconds (text: local time as logging writes it; JSON:
    UTC with a Z)."""
    import time

    from service_common.logs import JsonFormatter, TextFormatter

    text, plain, as_json = TextFormatter(), logging.Formatter(), JsonFormatter()
    for created in (
        1_700_000_000.0,
        1_700_000_000.123,
        1_700_000_000.999,
        1_700_000_001.0005,
        1_700_000_001.5,
        1_700_000_000.25,
        1_800_000_000.042,
    ):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert text.formatTime(record) == plain.formatTime(record), created
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        expected += f".{int(record.msecs):03d}Z"
        assert json.loads(as_json.format(record))["ts"] == expected, created
