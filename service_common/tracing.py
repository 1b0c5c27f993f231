"""Traces and the standard gRPC metrics, for both services and enginectl.

Traces (OpenTelemetry): `configure_tracing(name)` installs the SDK's TracerProvider, its
resource's `service.name` the program's (`OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
override it). Spans always get ids, which every log line written inside one carries (logs.py),
but they leave the process only when the standard variables ask for it: `OTEL_TRACES_EXPORTER`
(`otlp`, `console`, `none`; a comma-separated list), or, when that is unset, an OTLP endpoint
(`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) means `otlp`. Nothing set
means no exporter: unlike the SDK's own default, a process with no collector sends nothing. The
OTLP exporter speaks gRPC and reads its other variables itself (headers, certificate, timeout,
compression); the SDK reads `OTEL_SDK_DISABLED`, `OTEL_TRACES_SAMPLER` and the `OTEL_BSP_*`.

Context crosses each gRPC call in its metadata (W3C `traceparent`): `server_interceptors()` on
every GrpcServer make a span per RPC (health and reflection excepted) under the caller's;
`instrument_channel` on a client channel makes the client's span and sends its context.

gRPC metrics: py-grpc-prometheus's interceptors, under the names of go-grpc-prometheus that
stock dashboards query (`grpc_server_started_total`, `grpc_server_handled_total{grpc_service,
grpc_method,grpc_code,grpc_type}`, `grpc_server_handling_seconds_bucket`,
`grpc_client_handled_total`, ...), in prometheus_client's default registry, so on the same
/metrics as the domain metrics. Each interceptor registers its metrics when made, so there is
one of each per process."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import client_interceptor, filters, server_interceptor
from opentelemetry.instrumentation.grpc.grpcext import intercept_channel
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from py_grpc_prometheus.prometheus_client_interceptor import PromClientInterceptor
from py_grpc_prometheus.prometheus_server_interceptor import PromServerInterceptor

log = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console", "none")
# Probes and tools, not work: no span (they are still counted in the gRPC metrics).
UNTRACED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")


def exporter_names(env: Mapping[str, str] = os.environ) -> list[str]:
    """The exporters the standard variables ask for; [] for none (the default here)."""
    chosen = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not chosen:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = [name.strip() for name in chosen.split(",") if name.strip()]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise SystemExit(
            f"OTEL_TRACES_EXPORTER={chosen!r}: unknown {', '.join(unknown)} "
            f"(this program knows {', '.join(EXPORTERS)})"
        )
    return [name for name in names if name != "none"]


def exporter(name: str, env: Mapping[str, str] = os.environ) -> SpanExporter:
    """One exporter by its OTEL_TRACES_EXPORTER name."""
    if name == "console":
        return ConsoleSpanExporter()
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    if protocol.strip().lower() != "grpc":
        raise SystemExit(
            f"OTLP protocol {protocol!r}: this program exports OTLP over gRPC only "
            "(OTEL_EXPORTER_OTLP_PROTOCOL=grpc, a collector's port 4317)"
        )
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, TLS... from the OTEL_EXPORTER_OTLP_* variables


def configure_tracing(service_name: str) -> TracerProvider:
    """The process's TracerProvider, installed on first call (later calls return it): the
    resource names `service_name`, spans go to the exporters the environment asks for."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    # The variables' service.name and attributes, if given, win over the program's name.
    attributes = {SERVICE_NAME: service_name, **OTELResourceDetector().detect().attributes}
    provider = TracerProvider(resource=Resource.create(attributes))
    names = exporter_names()
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(exporter(name)))
    trace.set_tracer_provider(provider)
    if names:
        log.info("traces of %s exported to %s", service_name, ", ".join(names))
    return provider


def tracer(name: str) -> trace.Tracer:
    """A tracer of the global provider (spans are no-ops until `configure_tracing`)."""
    return trace.get_tracer(name)


def _traced(details: Any) -> bool:
    service = str(getattr(details, "method", "") or "").lstrip("/").split("/", 1)[0]
    return not service.startswith(UNTRACED_SERVICES)


@functools.cache
def _server_metrics() -> grpc.ServerInterceptor:
    return PromServerInterceptor(enable_handling_time_histogram=True)


@functools.cache
def _client_metrics() -> Any:
    return PromClientInterceptor(enable_client_handling_time_histogram=True)


def server_interceptors() -> list[grpc.ServerInterceptor]:
    """Metrics outermost (it reads the call's final status from the real context), then the
    span of the RPC, under the caller's context from the metadata."""
    return [_server_metrics(), server_interceptor(filter_=_traced)]


def instrument_channel(channel: grpc.Channel, metrics: bool = True) -> grpc.Channel:
    """`channel` with a client span per call whose context goes in the call's metadata, and
    (with `metrics`) the standard client metrics."""
    if metrics:
        channel = grpc.intercept_channel(channel, _client_metrics())
    traced: grpc.Channel = intercept_channel(
        channel, client_interceptor(filter_=filters.negate(filters.health_check()))
    )
    return traced
