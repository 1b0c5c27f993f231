"""The gRPC telemetry interceptors (service_common/grpc_telemetry): what each RPC counts under
go-grpc-prometheus's names, and the span it makes, on fake calls and contexts (no socket). The
spans go to a TracerProvider of the test's own, not the process's."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY

from service_common.grpc_telemetry import ClientTelemetry, ServerTelemetry

# Typed loosely: the fakes below stand for gRPC's contexts and details.
unary_handler = cast(Any, grpc.unary_unary_rpc_method_handler)
stream_handler = cast(Any, grpc.unary_stream_rpc_method_handler)
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def tracer_of(exporter: InMemorySpanExporter) -> Any:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


def method() -> str:
    """A method of its own per test: the metrics are the process's, so each test reads series
    no other test touched."""
    return f"/test.v1.Service{uuid.uuid4().hex[:8]}/Do"


def sample(name: str, rpc: str, kind: str = "UNARY", **labels: str) -> float:
    service, method_name = rpc.split("/")[1:3]
    value = REGISTRY.get_sample_value(
        name, {"grpc_type": kind, "grpc_service": service, "grpc_method": method_name, **labels}
    )
    return value or 0.0


# -- server --------------------------------------------------------------------------------------


@dataclass
class Context:
    """What the interceptor reads of a servicer context."""

    metadata: tuple[tuple[str, str], ...] = ()
    status: grpc.StatusCode | None = None
    active: bool = True

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def code(self) -> grpc.StatusCode | None:
        return self.status

    def is_active(self) -> bool:
        return self.active


@dataclass
class Details:
    method: str


def details(rpc: str) -> Any:
    return Details(rpc)


def serve(spans: InMemorySpanExporter, rpc: str, handler: Any) -> Any:
    wrapped = ServerTelemetry(tracer_of(spans)).intercept_service(lambda d: handler, details(rpc))
    assert wrapped is not None
    return wrapped


def test_a_unary_rpc_is_counted_timed_and_spanned_under_the_callers_context(
    spans: InMemorySpanExporter,
) -> None:
    rpc = method()
    handler = unary_handler(lambda request, context: request + 1)
    reply = serve(spans, rpc, handler).unary_unary(1, Context((("traceparent", PARENT),)))
    assert reply == 2
    assert sample("grpc_server_started_total", rpc) == 1
    assert sample("grpc_server_handled_total", rpc, grpc_code="OK") == 1
    assert sample("grpc_server_handling_seconds_count", rpc) == 1
    [span] = spans.get_finished_spans()
    assert (span.name, span.kind) == (rpc, SpanKind.SERVER)
    assert span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331
    assert span.context is not None and span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert dict(span.attributes or {})["rpc.grpc.status_code"] == 0
    assert span.status.status_code is not StatusCode.ERROR


def test_the_code_a_handler_set_is_the_one_counted_and_an_error_without_one_is_unknown(
    spans: InMemorySpanExporter,
) -> None:
    rpc = method()

    def refuse(request: Any, context: Context) -> None:
        context.status = grpc.StatusCode.NOT_FOUND
        raise RuntimeError("aborted")  # as context.abort raises, after setting the code

    def broken(request: Any, context: Context) -> None:
        raise ValueError("a bug")

    for behavior in (refuse, broken):
        wrapped = serve(spans, rpc, unary_handler(behavior))
        with pytest.raises((RuntimeError, ValueError)):
            wrapped.unary_unary(None, Context())
    assert sample("grpc_server_handled_total", rpc, grpc_code="NOT_FOUND") == 1
    assert sample("grpc_server_handled_total", rpc, grpc_code="UNKNOWN") == 1
    assert sample("grpc_server_handled_total", rpc, grpc_code="OK") == 0
    assert [s.status.status_code for s in spans.get_finished_spans()] == [StatusCode.ERROR] * 2


def test_a_call_the_client_cancelled_is_counted_cancelled(spans: InMemorySpanExporter) -> None:
    rpc = method()
    handler = unary_handler(lambda request, context: request)
    serve(spans, rpc, handler).unary_unary(1, Context(active=False))
    assert sample("grpc_server_handled_total", rpc, grpc_code="CANCELLED") == 1


def test_a_streamed_reply_counts_each_message_and_ends_when_the_stream_does(
    spans: InMemorySpanExporter,
) -> None:
    rpc = method()

    def three(request: Any, context: Context) -> Iterator[int]:
        yield from range(3)

    wrapped = serve(spans, rpc, stream_handler(three))
    stream = wrapped.unary_stream(None, Context())
    assert next(stream) == 0
    assert sample("grpc_server_handled_total", rpc, "SERVER_STREAMING", grpc_code="OK") == 0
    assert not spans.get_finished_spans()  # still open while the stream runs
    assert list(stream) == [1, 2]
    assert sample("grpc_server_msg_sent_total", rpc, "SERVER_STREAMING") == 3
    assert sample("grpc_server_handled_total", rpc, "SERVER_STREAMING", grpc_code="OK") == 1
    assert len(spans.get_finished_spans()) == 1


def test_a_stream_closed_early_by_its_client_is_cancelled(spans: InMemorySpanExporter) -> None:
    rpc = method()

    def endless(request: Any, context: Context) -> Iterator[int]:
        while True:
            yield 1

    context = Context()
    stream = serve(spans, rpc, stream_handler(endless)).unary_stream(None, context)
    next(stream)
    context.active = False
    stream.close()
    assert sample("grpc_server_handled_total", rpc, "SERVER_STREAMING", grpc_code="CANCELLED") == 1


def test_probes_are_counted_but_make_no_span(spans: InMemorySpanExporter) -> None:
    rpc = "/grpc.health.v1.Health/Check"
    before = sample("grpc_server_handled_total", rpc, grpc_code="OK")
    handler = unary_handler(lambda request, context: "SERVING")
    serve(spans, rpc, handler).unary_unary(None, Context())
    assert sample("grpc_server_handled_total", rpc, grpc_code="OK") == before + 1
    assert not spans.get_finished_spans()


def test_a_handler_made_per_call_is_counted_each_call_and_an_unknown_method_passes(
    spans: InMemorySpanExporter,
) -> None:
    interceptor = ServerTelemetry(tracer_of(spans))
    rpc = method()
    for _ in range(3):  # as the engine's auditing interceptor makes one handler per call
        handler = unary_handler(lambda request, context: request)

        def continuation(d: Any, h: Any = handler) -> Any:
            return h

        wrapped: Any = interceptor.intercept_service(continuation, details(rpc))
        wrapped.unary_unary(1, Context())
    assert sample("grpc_server_handled_total", rpc, grpc_code="OK") == 3
    assert len(spans.get_finished_spans()) == 3
    assert interceptor.intercept_service(lambda d: None, details(method())) is None


# -- client --------------------------------------------------------------------------------------


@dataclass
class Call:
    """A finished call, or a future that finishes when told."""

    status: grpc.StatusCode | None
    callbacks: list[Callable[[Any], None]] = field(default_factory=list)

    def done(self) -> bool:
        return self.status is not None

    def code(self) -> grpc.StatusCode | None:
        return self.status

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        if self.done():
            callback(self)
        else:
            self.callbacks.append(callback)

    def finish(self, status: grpc.StatusCode) -> None:
        self.status = status
        for callback in self.callbacks:
            callback(self)


@dataclass
class CallDetails:
    method: str
    timeout: float | None = 5.0
    metadata: tuple[tuple[str, str], ...] | None = (("authorization", "Bearer x"),)
    credentials: None = None
    wait_for_ready: bool | None = None
    compression: None = None


def finished_span(spans: InMemorySpanExporter) -> ReadableSpan:
    [span] = spans.get_finished_spans()
    return span


def test_a_call_sends_its_spans_context_in_the_metadata_and_counts_its_code(
    spans: InMemorySpanExporter,
) -> None:
    rpc, sent = method(), []

    def continuation(details: Any, request: Any) -> Call:
        sent.append(details)
        return Call(grpc.StatusCode.FAILED_PRECONDITION)

    interceptor = ClientTelemetry(tracer=tracer_of(spans))
    interceptor.intercept_unary_unary(continuation, CallDetails(rpc), "request")  # type: ignore[arg-type]
    [details] = sent
    assert details.method == rpc and details.timeout == 5.0
    metadata = dict(details.metadata)
    assert metadata["authorization"] == "Bearer x"  # the caller's metadata kept
    span = finished_span(spans)
    assert span.kind is SpanKind.CLIENT and span.context is not None
    ids = f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-"
    assert metadata["traceparent"].startswith(ids)
    assert sample("grpc_client_started_total", rpc) == 1
    assert sample("grpc_client_handled_total", rpc, grpc_code="FAILED_PRECONDITION") == 1
    assert span.status.status_code is StatusCode.ERROR


def test_a_future_is_counted_when_it_finishes_without_blocking_the_caller(
    spans: InMemorySpanExporter,
) -> None:
    rpc, future = method(), Call(None)
    interceptor = ClientTelemetry(tracer=tracer_of(spans))
    returned = interceptor.intercept_unary_unary(lambda d, r: future, CallDetails(rpc), None)  # type: ignore[arg-type]
    assert returned is future
    assert sample("grpc_client_handled_total", rpc, grpc_code="OK") == 0
    assert not spans.get_finished_spans()
    future.finish(grpc.StatusCode.OK)
    assert sample("grpc_client_handled_total", rpc, grpc_code="OK") == 1
    assert finished_span(spans).status.status_code is not StatusCode.ERROR


def test_without_metrics_a_call_is_spanned_only_and_probes_are_not_spanned(
    spans: InMemorySpanExporter,
) -> None:
    rpc = method()
    interceptor = ClientTelemetry(metrics=False, tracer=tracer_of(spans))
    interceptor.intercept_unary_unary(lambda d, r: Call(grpc.StatusCode.OK), CallDetails(rpc), None)  # type: ignore[arg-type]
    assert sample("grpc_client_started_total", rpc) == 0
    assert finished_span(spans).name == rpc
    spans.clear()
    probe = CallDetails("/grpc.health.v1.Health/Check")
    interceptor.intercept_unary_unary(lambda d, r: Call(grpc.StatusCode.OK), probe, None)  # type: ignore[arg-type]
    assert not spans.get_finished_spans()


def test_a_streamed_reply_counts_the_messages_read(spans: InMemorySpanExporter) -> None:
    rpc = method()

    class Stream(Call):
        def __init__(self) -> None:
            super().__init__(None)
            self.messages = iter([1, 2])

        def __next__(self) -> int:
            try:
                return next(self.messages)
            except StopIteration:
                self.finish(grpc.StatusCode.OK)
                raise

    interceptor = ClientTelemetry(tracer=tracer_of(spans))
    stream = interceptor.intercept_unary_stream(lambda d, r: Stream(), CallDetails(rpc), None)  # type: ignore[arg-type]
    assert list(stream) == [1, 2]
    assert stream.code() is grpc.StatusCode.OK  # the call's own, through the wrapper
    assert sample("grpc_client_msg_received_total", rpc, "SERVER_STREAMING") == 2
    assert sample("grpc_client_handled_total", rpc, "SERVER_STREAMING", grpc_code="OK") == 1
    assert finished_span(spans).name == rpc
