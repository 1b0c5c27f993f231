"""How tracing is configured (service_common/tracing.py): which exporters the standard variables
ask for, and spans recorded only once something takes them, their ids kept either way. Each test
makes a provider of its own; none is installed as the process's."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, TraceIdRatioBased

from service_common.tracing import Provider, exporter_names, sampler_from


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, []),
    ],
)
def test_the_exporters_are_the_ones_the_variables_name(
    env: dict[str, str], names: list[str]
) -> None:
    assert exporter_names(env) == names


def test_an_unknown_exporter_is_refused_by_name() -> None:
    with pytest.raises(SystemExit, match="unknown zipkin"):
        exporter_names({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_the_sampler_is_the_variables_one_else_every_span() -> None:
    assert sampler_from({}) is ALWAYS_ON
    env = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        sampler = sampler_from(env)
    assert isinstance(sampler, TraceIdRatioBased) and sampler.rate == 0.25


def processor() -> tuple[SpanProcessor, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return SimpleSpanProcessor(exporter), exporter


def test_a_span_is_dropped_until_something_takes_spans_but_keeps_its_ids() -> None:
    provider = Provider(Resource.create({}), ALWAYS_ON)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("before") as span:
        ids = span.get_span_context()
        assert not span.is_recording()
        assert ids.is_valid and not ids.trace_flags.sampled
    taker, exported = processor()
    provider.add_span_processor(taker)
    with tracer.start_as_current_span("after") as span:
        assert span.is_recording()
    assert [s.name for s in exported.get_finished_spans()] == ["after"]


def test_once_recording_a_span_is_recorded_under_a_caller_that_recorded_nothing() -> None:
    quiet = Provider(Resource.create({}), ALWAYS_ON).get_tracer("caller")
    provider = Provider(Resource.create({}), ALWAYS_ON)
    taker, exported = processor()
    provider.add_span_processor(taker)
    callee_tracer = provider.get_tracer("callee")
    with (
        quiet.start_as_current_span("caller") as caller,
        callee_tracer.start_as_current_span("callee") as callee,
    ):
        assert callee.is_recording()
    [span] = exported.get_finished_spans()
    assert span.context is not None
    assert span.context.trace_id == caller.get_span_context().trace_id  # one trace still
