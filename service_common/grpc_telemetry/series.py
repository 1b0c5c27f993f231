"""What both sides share: the metrics' names and labels, one method's series, a span's end."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import grpc
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from prometheus_client import Counter, Histogram

UNTRACED = ("/grpc.health.v1.Health/", "/grpc.reflection.")
UNARY, SERVER_STREAMING = "UNARY", "SERVER_STREAMING"
CLIENT_STREAMING, BIDI_STREAMING = "CLIENT_STREAMING", "BIDI_STREAMING"
_LABELS = ["grpc_type", "grpc_service", "grpc_method"]


def rpc_type(request_streaming: bool, response_streaming: bool) -> str:
    if request_streaming:
        return BIDI_STREAMING if response_streaming else CLIENT_STREAMING
    return SERVER_STREAMING if response_streaming else UNARY


def split_method(method: str) -> tuple[str, str]:
    """`/pkg.Service/Method` as (service, method); ("", "") for anything else."""
    parts = method.split("/")
    return (parts[1], parts[2]) if len(parts) >= 3 else ("", "")


def traced(method: str) -> bool:
    return not method.startswith(UNTRACED)


class Side(NamedTuple):
    """The metrics of one side (server or client)."""

    started: Counter
    handled: Counter
    seconds: Histogram
    received: Counter
    sent: Counter


def _side(side: str, where: str) -> Side:
    return Side(
        Counter(
            f"grpc_{side}_started_total", f"Total number of RPCs started on the {side}.", _LABELS
        ),
        Counter(
            f"grpc_{side}_handled_total",
            f"Total number of RPCs completed on the {side}, regardless of success or failure.",
            [*_LABELS, "grpc_code"],
        ),
        Histogram(
            f"grpc_{side}_handling_seconds",
            f"Histogram of response latency (seconds) of gRPC that had been handled {where}.",
            _LABELS,
        ),
        Counter(
            f"grpc_{side}_msg_received_total",
            f"Total number of RPC stream messages received by the {side}.",
            _LABELS,
        ),
        Counter(
            f"grpc_{side}_msg_sent_total",
            f"Total number of gRPC stream messages sent by the {side}.",
            _LABELS,
        ),
    )


@functools.cache
def server_metrics() -> Side:
    """Registered once per process (a second registration of a name would fail)."""
    return _side("server", "by the server")


@functools.cache
def client_metrics() -> Side:
    return _side("client", "until it finished on the client")


class Series:
    """One method's series on one side, looked up once: the labelled children of each metric,
    the handled counter's child per status code made on first use."""

    def __init__(self, side: Side, method: str, kind: str) -> None:
        service, name = split_method(method)
        labels = (kind, service, name)
        self.method, self.service, self.name, self.labels = method, service, name, labels
        self.started = side.started.labels(*labels)
        self.seconds = side.seconds.labels(*labels)
        self.received = side.received.labels(*labels)
        self.sent = side.sent.labels(*labels)
        self._handled = side.handled
        self._codes: dict[grpc.StatusCode, Any] = {}
        self.traced = traced(method)

    def handled(self, code: grpc.StatusCode, seconds: float) -> None:
        child = self._codes.get(code)
        if child is None:
            child = self._codes[code] = self._handled.labels(*self.labels, code.name)
        child.inc()
        self.seconds.observe(max(seconds, 0.0))

    def attributes(self) -> dict[str, str]:
        return {"rpc.system": "grpc", "rpc.service": self.service, "rpc.method": self.name}


def end_span(span: trace.Span | None, code: grpc.StatusCode, error: BaseException | None) -> None:
    if span is None:
        return
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if error is not None:
        span.record_exception(error)
    if code is not grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, f"{code.name}"))
    span.end()


# A proxy until the program installs its TracerProvider, then that provider's tracer (looked up
# once: the SDK's get_tracer costs more than the span).
TRACER = trace.get_tracer(__name__)
