"""Traces of one template end to end (issue 18): enginectl's client, the engine's gRPC server
and service layer, and two agents, all in this process so that one in-memory exporter sees
every span, but each hop a real gRPC call over a socket, the trace context crossing it in the
call's metadata (W3C `traceparent`)."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from engine_service.bootstrap import EngineSettings, bootstrap
from engine_service.entrypoints.auth import SERVICE_NAME
from engine_service.entrypoints.cli.calls import Client
from engine_service.entrypoints.grpc_servicer import EngineServicer
from engine_service.service_layer.engine import Engine
from engine_service.service_layer.polling import PollSettings
from engine_service.v1 import engine_service_pb2 as pb
from engine_service.v1 import engine_service_pb2_grpc as pb_grpc
from service_common.grpc_server import GrpcServer
from service_common.tracing import configure_tracing
from tests.integration.conftest import settle
from vdsm_agent.entrypoints.server import AgentServer
from vdsm_agent.entrypoints.settings import parse_args as agent_args

ENGINE_RPC = "/engine_service.v1.EngineService/AddVmTemplate"
AGENT_RPC = "/vdsm_agent.v1.AgentService/CopyImage"
BATCH_RPC = "/vdsm_agent.v1.AgentService/StartTasks"


class Recording(SimpleSpanProcessor):
    """Exports ended spans to memory only while a test of this module records."""

    on = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.on:
            super().on_end(span)


@functools.cache
def recorder() -> tuple[Recording, InMemorySpanExporter]:
    """One for the process: the global TracerProvider is set once."""
    exporter = InMemorySpanExporter()
    processor = Recording(exporter)
    configure_tracing("engine-service").add_span_processor(processor)
    return processor, exporter


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    processor, exporter = recorder()
    exporter.clear()
    processor.on = True
    yield exporter
    processor.on = False
    exporter.clear()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[list[AgentServer]]:
    storage = tmp_path / "storage"
    storage.mkdir()
    made = []
    for name in ("host1", "host2"):
        argv = ["--listen", "127.0.0.1:0", "--storage-root", str(storage)]
        server = AgentServer(agent_args([*argv, "--state-dir", str(tmp_path / name)]))
        server.start()
        made.append(server)
    yield made
    for server in made:
        server.stop()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    settings = EngineSettings(f"sqlite:///{tmp_path / 'engine.db'}", poll=PollSettings(3600))
    engine = bootstrap(settings)
    yield engine
    engine.agents.close()


@pytest.fixture
def api(engine: Engine) -> Iterator[Client]:
    """The engine's API on a free port, and enginectl's client of it."""
    server = GrpcServer("127.0.0.1:0", [SERVICE_NAME])
    pb_grpc.add_EngineServiceServicer_to_server(EngineServicer(engine), server.server)
    server.start()
    server.set_serving(True)
    yield Client(server.address, timeout=30, as_json=False)
    server.stop(0)


def a_vm_of_two_disks(engine: Engine, agents: Sequence[AgentServer]) -> tuple[str, str]:
    for number, agent in enumerate(agents):
        engine.inventory.add_host(f"host{number + 1}", agent.address)
    src = engine.inventory.add_storage_domain("data1").storage_domain_id
    dst = engine.inventory.add_storage_domain("data2").storage_domain_id
    disk_ids = []
    for name in ("a", "b"):
        disk, _ = engine.add_disk(name, src, 64 * 1024)
        assert disk is not None
        disk_ids.append(disk.disk_id)
    settle(engine)
    return engine.inventory.add_vm("vm", disk_ids).vm_id, dst


def one(found: list[ReadableSpan]) -> ReadableSpan:
    assert len(found) == 1, [s.name for s in found]
    return found[0]


class Spans:
    """The finished spans of a test, by name, kind and parent."""

    def __init__(self, finished: Sequence[ReadableSpan]) -> None:
        self.finished = list(finished)

    def named(self, name: str, kind: SpanKind | None = None) -> list[ReadableSpan]:
        return [s for s in self.finished if s.name == name and kind in (None, s.kind)]

    def children(
        self, parent: ReadableSpan, name: str, kind: SpanKind | None = None
    ) -> list[ReadableSpan]:
        return [s for s in self.named(name, kind) if parent_id(s) == span_id(parent)]


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_one_template_is_one_trace_from_enginectl_to_each_agent(
    engine: Engine, agents: list[AgentServer], api: Client, spans: InMemorySpanExporter
) -> None:
    vm, dst = a_vm_of_two_disks(engine, agents)
    spans.clear()
    request = pb.AddVmTemplateRequest(vm_id=vm, name="t", destination_storage_domain_id=dst)
    command_id = api.call("AddVmTemplate", request).command.command_id
    settle(engine)
    found = Spans(spans.get_finished_spans())

    client = one(found.named(ENGINE_RPC, SpanKind.CLIENT))
    assert client.parent is None  # enginectl starts the trace
    server = one(found.children(client, ENGINE_RPC, SpanKind.SERVER))  # across the socket
    submit = one(found.children(server, "command.submit"))
    assert attributes(submit)["command.action_type"] == "AddVmTemplate"
    assert attributes(submit)["command.id"] == command_id
    placeholders = one(found.children(submit, "command.placeholders"))
    assert attributes(placeholders)["command.tasks"] == 2
    execute = one(found.children(submit, "command.execute"))
    first = one(found.children(execute, "agent.start"))  # the first copy, alone
    rest = one(found.children(execute, "agent.start_many"))  # the others, one call per host
    assert attributes(rest)["tasks"] == 1
    for start, rpc in ((first, AGENT_RPC), (rest, BATCH_RPC)):
        call = one(found.children(start, rpc, SpanKind.CLIENT))
        agent_side = one(found.children(call, rpc, SpanKind.SERVER))  # the agent's
        assert trace_id(agent_side) == trace_id(client)
    assert {attributes(s)["host.name"] for s in (first, rest)} == {"host1", "host2"}

    end = one([s for s in found.named("command.end") if attributes(s)["command.ended"]])
    assert list(attributes(end)["command.ended"]) == [command_id]
    polls = found.named("engine.poll")
    assert polls and all(p.parent is None for p in polls)  # the poll loop's own traces
    assert trace_id(end) in {trace_id(p) for p in polls}
    statuses = found.named("/vdsm_agent.v1.AgentService/GetAllTasksStatuses", SpanKind.SERVER)
    assert statuses and {trace_id(s) for s in statuses} <= {trace_id(p) for p in polls}
    assert not found.named("/grpc.health.v1.Health/Check")  # probes make no spans
