"""The standard gRPC metrics (issue 18), named as go-grpc-prometheus names them, which is what
stock gRPC dashboards read: a real agent server and the engine's client of it in this process,
and /metrics served over HTTP beside the domain metrics."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families

from engine_service.adapters.agent_client import AgentClient, AgentRejected
from vdsm_agent.entrypoints.server import AgentServer
from vdsm_agent.entrypoints.settings import parse_args as agent_args

AGENT_SERVICE = "vdsm_agent.v1.AgentService"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentServer]:
    (tmp_path / "storage").mkdir()
    server = AgentServer(
        agent_args(
            [
                "--listen",
                "127.0.0.1:0",
                "--storage-root",
                str(tmp_path / "storage"),
                "--state-dir",
                str(tmp_path / "state"),
            ]
        )
    )
    server.start()
    yield server
    server.stop()


def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics, served as `--metrics-listen` serves it, by name and labels."""
    httpd, thread = start_http_server(0, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{httpd.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(method: str, code: str | None = None) -> frozenset[tuple[str, str]]:
    labels = {"grpc_type": "UNARY", "grpc_service": AGENT_SERVICE, "grpc_method": method}
    return frozenset({**labels, **({"grpc_code": code} if code else {})}.items())


def test_metrics_has_the_standard_grpc_server_and_client_series(agent: AgentServer) -> None:
    client = AgentClient(agent.address, timeout=10)
    try:
        client.all_statuses()
        with pytest.raises(AgentRejected):
            client.clear_task("0b8ff5a5-8a6a-4bb4-9e4e-5e6a8f4f3c11")  # no such task
    finally:
        client.close()
    samples = scrape()
    statuses, clear = "GetAllTasksStatuses", "ClearTask"
    assert samples[("grpc_server_started_total", series(statuses))] >= 1
    assert samples[("grpc_server_handled_total", series(statuses, "OK"))] >= 1
    assert samples[("grpc_server_handled_total", series(clear, "NOT_FOUND"))] >= 1
    assert samples[("grpc_server_handling_seconds_count", series(statuses))] >= 1
    bucket = series(statuses) | {("le", "+Inf")}
    assert samples[("grpc_server_handling_seconds_bucket", bucket)] >= 1
    assert samples[("grpc_client_started_total", series(statuses))] >= 1
    assert samples[("grpc_client_handled_total", series(statuses, "OK"))] >= 1
    assert samples[("grpc_client_handled_total", series(clear, "NOT_FOUND"))] >= 1
    assert samples[("grpc_client_handling_seconds_count", series(statuses))] >= 1
    # beside the domain metrics, on the same /metrics
    domain = frozenset({"method": statuses, "code": "OK"}.items())
    assert samples[("vdsm_agent_rpc_seconds_count", domain)] >= 1
    assert any(name == "engine_agent_rpc_seconds_count" for name, _ in samples)
