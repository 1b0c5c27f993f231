"""Prometheus metrics of the agent, served at /metrics when --metrics-listen is given."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TASKS_ACCEPTED = Counter("vdsm_agent_tasks_accepted_total", "Tasks accepted", ["verb"])
TASKS_FINISHED = Counter(
    "vdsm_agent_tasks_finished_total", "Tasks finished, by result", ["verb", "result"]
)
TASKS_IN_FLIGHT = Gauge("vdsm_agent_tasks_in_flight", "Accepted tasks not yet finished")
BYTES_WRITTEN = Counter("vdsm_agent_bytes_written_total", "Image bytes written by tasks")
RPC_SECONDS = Histogram(
    "vdsm_agent_rpc_seconds", "Time to answer an RPC, by method and status", ["method", "code"]
)
