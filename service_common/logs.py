"""Logging as text for people or JSON (one event per line) for machines.

A line written inside a span carries its ids, the trace's as 32 hex digits and the span's as 16
(as trace backends show them): `trace_id=... span_id=...` after the logger's name in text,
`"trace_id"` and `"span_id"` keys in JSON. Outside a span they are absent."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

from opentelemetry import trace

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "trace",  # the text format's rendering of the ids
}
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class TraceIds(logging.Filter):
    """Sets `trace_id` and `span_id` on each record written inside a span."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = f"{context.trace_id:032x}"
            record.span_id = f"{context.span_id:016x}"
        return True


class _Seconds:
    """A record's time to the second, formatted once per second (time.strftime on every record
    was about a third of the cost of logging one)."""

    def __init__(self, fmt: str, converter: Callable[[float], time.struct_time]) -> None:
        self.fmt = fmt
        self.converter = converter
        self._last: tuple[int, str] = (-1, "")

    def __call__(self, created: float) -> str:
        second = int(created)
        last = self._last
        if last[0] != second:
            last = self._last = (second, time.strftime(self.fmt, self.converter(second)))
        return last[1]


class TextFormatter(logging.Formatter):
    """`TIME LEVEL LOGGER[ trace_id=T span_id=S]: MESSAGE`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(trace)s: %(message)s")
        self._seconds = _Seconds(self.default_time_format, self.converter)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return f"{self._seconds(record.created)},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        trace_id = record.__dict__.get("trace_id")
        span_id = record.__dict__.get("span_id")
        record.trace = f" trace_id={trace_id} span_id={span_id}" if trace_id else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the `extra=` fields, the
    trace and span ids inside a span, and any exception."""

    def __init__(self) -> None:
        super().__init__()
        self._seconds = _Seconds("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": f"{self._seconds(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Fields passed with `extra=` (command_id, task_id, host...) become keys of the event,
        # and so do the ids TraceIds sets.
        event.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


def configure_logging(fmt: str, level: int | str = logging.INFO) -> None:
    """Every record to stderr as `fmt` (text or json), from `level` up (a number, or one of
    LEVELS in any case)."""
    # Neither format shows where a record was made, nor its thread or process: not computing
    # them (the logging HOWTO's "Optimization") saves a walk up the stack and a few lookups per
    # record, 3 % of the agent's CPU under load.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(TraceIds())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
