"""The server's interceptor: each RPC counted, timed and in a span under the caller's."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from service_common.grpc_telemetry.series import (
    BIDI_STREAMING,
    CLIENT_STREAMING,
    SERVER_STREAMING,
    TRACER,
    UNARY,
    Series,
    end_span,
    rpc_type,
    server_metrics,
)


class _MetadataGetter:
    """Reads the W3C headers out of a call's invocation metadata (a sequence of pairs)."""

    def get(self, carrier: Sequence[tuple[str, Any]], key: str) -> list[str] | None:
        values = [v for k, v in carrier or () if k == key and isinstance(v, str)]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, Any]]) -> list[str]:
        return [k for k, _ in carrier or ()]


_GETTER = _MetadataGetter()


class ServerCall:
    """One RPC on the server: counted when it starts, its span opened under the caller's
    context and made current; `end` counts its code and time and ends the span."""

    def __init__(self, series: Series, context: grpc.ServicerContext, tracer: trace.Tracer) -> None:
        self.series, self.context = series, context
        series.started.inc()
        self.began = time.perf_counter()
        self.span: trace.Span | None = None
        self.token: object | None = None
        if series.traced:
            metadata = context.invocation_metadata()
            parent = propagate.extract(metadata, getter=_GETTER)  # type: ignore[arg-type]
            self.span = tracer.start_span(
                series.method, parent, SpanKind.SERVER, series.attributes()
            )
            self.token = otel_context.attach(trace.set_span_in_context(self.span, parent))

    def code(self, error: BaseException | None) -> grpc.StatusCode:
        code = self.context.code()  # type: ignore[attr-defined]
        if not self.context.is_active():
            return grpc.StatusCode.CANCELLED
        if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
            return code
        return grpc.StatusCode.UNKNOWN if error is not None else grpc.StatusCode.OK

    def detach(self) -> None:
        """The span stops being current on this thread (it may end later, on another)."""
        if self.token is not None:
            otel_context.detach(self.token)  # type: ignore[arg-type]
            self.token = None

    def end(self, error: BaseException | None = None) -> None:
        code = self.code(error)
        self.series.handled(code, time.perf_counter() - self.began)
        end_span(self.span, code, error)


def _counted(messages: Iterator[Any], counter: Any) -> Iterator[Any]:
    for message in messages:
        counter.inc()
        yield message


def _server_behavior(
    series: Series, behavior: Callable[..., Any], streaming: bool, tracer: trace.Tracer
) -> Any:
    request_streaming = series.labels[0] in (CLIENT_STREAMING, BIDI_STREAMING)

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        call = ServerCall(series, context, tracer)
        if request_streaming:
            request = _counted(request, series.received)
        try:
            response = behavior(request, context)
        except BaseException as exc:
            call.detach()
            call.end(exc)
            raise
        call.detach()
        call.end()
        return response

    def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        call = ServerCall(series, context, tracer)
        if request_streaming:
            request = _counted(request, series.received)
        error: BaseException | None = None
        try:
            for message in behavior(request, context):
                series.sent.inc()
                call.detach()  # the generator is resumed on whatever thread gRPC uses next
                yield message
                if call.span is not None:
                    call.token = otel_context.attach(trace.set_span_in_context(call.span))
        except BaseException as exc:
            error = exc
            raise
        finally:
            call.detach()
            call.end(None if isinstance(error, GeneratorExit) else error)

    return stream if streaming else unary


class ServerTelemetry(grpc.ServerInterceptor):
    """Metrics and a span for every RPC the server handles: put it first among the server's
    interceptors, so that it sees the final status of what the others decided."""

    def __init__(self, tracer: trace.Tracer | None = None) -> None:
        self.metrics = server_metrics()
        self.tracer = tracer or TRACER
        self._series: dict[tuple[str, str], Series] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None:
            return None
        # Wrapped at each call: the handler may be the call's own (an interceptor after this
        # one may make one per call, as the engine's auditing does). The series are looked up
        # once per method.
        method: str = details.method
        kind = rpc_type(handler.request_streaming, handler.response_streaming)
        series = self._series.get((method, kind))
        if series is None:
            series = self._series.setdefault((method, kind), Series(self.metrics, method, kind))
        factory, behavior = {
            UNARY: (grpc.unary_unary_rpc_method_handler, handler.unary_unary),
            SERVER_STREAMING: (grpc.unary_stream_rpc_method_handler, handler.unary_stream),
            CLIENT_STREAMING: (grpc.stream_unary_rpc_method_handler, handler.stream_unary),
            BIDI_STREAMING: (grpc.stream_stream_rpc_method_handler, handler.stream_stream),
        }[kind]
        assert behavior is not None
        return factory(
            _server_behavior(series, behavior, handler.response_streaming, self.tracer),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
