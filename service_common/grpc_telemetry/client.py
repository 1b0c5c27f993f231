"""The client's interceptor: each call counted, timed and in a span whose context goes out in
the call's metadata."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from service_common.grpc_telemetry.series import (
    SERVER_STREAMING,
    TRACER,
    UNARY,
    Series,
    client_metrics,
    end_span,
    split_method,
    traced,
)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: tuple[tuple[str, str | bytes], ...] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class ClientTelemetry(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Metrics (with `metrics`) and a span for every unary or server-streaming call made on a
    channel, the span's context sent in the call's metadata. (The services here have no
    client-streaming RPC; such a call would go through uncounted.)"""

    def __init__(self, metrics: bool = True, tracer: trace.Tracer | None = None) -> None:
        self.metrics = client_metrics() if metrics else None
        self.tracer = tracer or TRACER
        self._series: dict[tuple[str, str], Series] = {}

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        _, done, details = self._begin(details, UNARY)
        call = continuation(details, request)
        if call.done():
            done(call)
        else:  # a future: counted when it finishes, without blocking the caller
            call.add_done_callback(done)
        return call

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        series, done, details = self._begin(details, SERVER_STREAMING)
        call = continuation(details, request)
        call.add_done_callback(done)  # at once if it has finished
        return call if series is None else _CountedStream(call, series.received)

    def _begin(
        self, details: grpc.ClientCallDetails, kind: str
    ) -> tuple[Series | None, Callable[[Any], None], grpc.ClientCallDetails]:
        """The call counted as started and its span begun; returns its series, what to call
        with the finished call, and the details to send (the span's context in the
        metadata)."""
        method: str = details.method
        series = self._for(method, kind)
        if series is not None:
            series.started.inc()
        span = None
        if traced(method):
            service, name = split_method(method)
            attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
            span = self.tracer.start_span(method, kind=SpanKind.CLIENT, attributes=attributes)
            details = _with_context(details, span)
        began = time.perf_counter()

        def done(finished: Any) -> None:
            code = finished.code() or grpc.StatusCode.UNKNOWN
            if series is not None:
                series.handled(code, time.perf_counter() - began)
            end_span(span, code, None)

        return series, done, details

    def _for(self, method: str, kind: str) -> Series | None:
        if self.metrics is None:
            return None
        series = self._series.get((method, kind))
        if series is None:
            series = self._series[(method, kind)] = Series(self.metrics, method, kind)
        return series


def _with_context(details: grpc.ClientCallDetails, span: trace.Span) -> grpc.ClientCallDetails:
    """`details` with the span's context added to its metadata (W3C `traceparent`)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return _CallDetails(
        details.method,
        details.timeout,
        (*(details.metadata or ()), *carrier.items()),
        details.credentials,
        getattr(details, "wait_for_ready", None),
        getattr(details, "compression", None),
    )


class _CountedStream:
    """A server-streaming call whose messages are counted as they are read; everything else
    (code, details, cancel, metadata...) is the call's own."""

    def __init__(self, call: Any, counter: Any) -> None:
        self._call, self._counter = call, counter

    def __iter__(self) -> _CountedStream:
        return self

    def __next__(self) -> Any:
        message = next(self._call)
        self._counter.inc()
        return message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)
