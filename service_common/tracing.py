"""Traces and the standard gRPC metrics, for both services and enginectl.

Traces (OpenTelemetry): `configure_tracing(name)` installs the SDK's TracerProvider, its
resource's `service.name` the program's (`OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
override it). Spans always get ids, which every log line written inside one carries (logs.py),
but they leave the process only when the standard variables ask for it: `OTEL_TRACES_EXPORTER`
(`otlp`, `console`, `none`; a comma-separated list), or, when that is unset, an OTLP endpoint
(`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) means `otlp`. Nothing set
means no exporter: unlike the SDK's own default, a process with no collector sends nothing. The
OTLP exporter speaks gRPC and reads its other variables itself (headers, certificate, timeout,
compression); the SDK reads `OTEL_SDK_DISABLED` and the `OTEL_BSP_*`.

A span is recorded only once something takes spans (an exporter, or a span processor added
later, as a test adds one): until then each span is dropped at its start (`Recorded` below), which
keeps its ids, its context in the metadata of calls and in the log lines, and costs a tenth of a
recorded one (about 0.1 ms of CPU per RPC on each side, measured). Once recording, the sampler is
`OTEL_TRACES_SAMPLER`'s when set, else every span is recorded, whatever the caller decided (a
caller that records nothing sends its context unsampled; the spans of this process are still
wanted).

Context crosses each gRPC call in its metadata (W3C `traceparent`): `server_interceptors()` on
every GrpcServer make a span per RPC (health and reflection excepted) under the caller's;
`instrument_channel` on a client channel makes the client's span and sends its context.

gRPC metrics, under the names of go-grpc-prometheus that stock dashboards query
(`grpc_server_started_total`, `grpc_server_handled_total{grpc_service,grpc_method,grpc_code,
grpc_type}`, `grpc_server_handling_seconds_bucket`, `grpc_client_handled_total`, ...), in
prometheus_client's default registry, so on the same /metrics as the domain metrics. Both the
metrics and the spans come from one interceptor per side (grpc_telemetry.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.sdk.environment_variables import OTEL_TRACES_SAMPLER
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult

from service_common.grpc_telemetry import ClientTelemetry, ServerTelemetry

log = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console", "none")


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


class Recorded(Sampler):
    """`sampler`'s decision once `recording`, before that none (every span dropped)."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.recording = False

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return (self.sampler if self.recording else ALWAYS_OFF).should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return f"Recorded({self.sampler.get_description()})"


class Provider(TracerProvider):
    """The SDK's TracerProvider, recording spans from its first span processor on."""

    def __init__(self, resource: Resource, sampler: Sampler) -> None:
        self.recorded = Recorded(sampler)
        super().__init__(sampler=self.recorded, resource=resource)

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self.recorded.recording = True


def sampler_from(env: Mapping[str, str] = os.environ) -> Sampler:
    """`OTEL_TRACES_SAMPLER`'s sampler (the SDK reads it and its argument), or ALWAYS_ON."""
    if not env.get(OTEL_TRACES_SAMPLER, "").strip():
        return ALWAYS_ON
    return TracerProvider(shutdown_on_exit=False).sampler  # the SDK reads the variables


def configure_tracing(service_name: str) -> TracerProvider:
    """The process's TracerProvider, installed on first call (later calls return it): the
    resource names `service_name`, spans go to the exporters the environment asks for."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    # The variables' service.name and attributes, if given, win over the program's name.
    attributes = {SERVICE_NAME: service_name, **OTELResourceDetector().detect().attributes}
    provider = Provider(Resource.create(attributes), sampler_from())
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


def server_interceptors() -> list[grpc.ServerInterceptor]:
    """The standard metrics and the span of each RPC, under the caller's context from the
    metadata (one interceptor: grpc_telemetry.py)."""
    return [ServerTelemetry()]


def instrument_channel(channel: grpc.Channel, metrics: bool = True) -> grpc.Channel:
    """`channel` with a client span per call whose context goes in the call's metadata, and
    (with `metrics`) the standard client metrics."""
    return grpc.intercept_channel(channel, ClientTelemetry(metrics))
