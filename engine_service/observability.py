"""Prometheus metrics of the engine, served at /metrics when --metrics-listen is given."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COMMANDS_ENDED = Counter(
    "engine_commands_ended_total",
    "Top-level commands that became terminal",
    ["action_type", "status"],
)
COMMANDS_ACTIVE = Gauge("engine_commands_active", "Top-level commands ACTIVE at the last poll")
TASKS_IN_FLIGHT = Gauge("engine_tasks_in_flight", "Async task rows not cleared, at the last poll")
POLL_SECONDS = Histogram("engine_poll_seconds", "Duration of one poll cycle over every host")
AGENT_RPC_SECONDS = Histogram("engine_agent_rpc_seconds", "Latency of calls to agents", ["method"])
AGENT_RPC_ERRORS = Counter(
    "engine_agent_rpc_errors_total", "Failed calls to agents", ["method", "code"]
)
RPC_SECONDS = Histogram(
    "engine_rpc_seconds",
    "Time to answer an engine API call, by method and status",
    ["method", "code"],
)
RECONCILED = Counter(
    "engine_reconcile_total",
    "What reconciliation did: failed_commands, removed_placeholders, adopted_tasks,"
    " cleared_zombies",
    ["what"],
)
POLL_ERRORS = Counter(
    "engine_poll_errors_total",
    "Errors the poll loop isolated, by stage: reply (an unreadable agent reply or task status),"
    " record (recording a poll), end (ending a decided command), cycle (a whole poll cycle)",
    ["stage"],
)
PRUNED = Counter(
    "engine_pruned_total",
    "Rows --retention deleted: commands (top-level), child_commands, client_requests",
    ["what"],
)
ACTIVE_BY_TYPE = Gauge(
    "engine_active_commands", "Top-level commands ACTIVE at the last poll, by type", ["action_type"]
)
OLDEST_ACTIVE_AGE = Gauge(
    "engine_oldest_active_command_age_seconds",
    "Age of the oldest ACTIVE top-level command at the last poll (0 when none)",
)
HOSTS = Gauge(
    "engine_hosts",
    "Hosts at the last poll, by status and by whether their agent answers",
    ["status", "answering"],
)
WRITE_GROUP_UNITS = Histogram(
    "engine_write_group_units",
    "SQLite: client write units whose parts one COMMIT made durable (group commit:"
    " adapters/group_commit.py)",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, float("inf")),
)
WRITE_UNIT_SECONDS = Histogram(
    "engine_write_unit_seconds",
    "Write transactions, from BEGIN to their end (on SQLite: how long each held the one"
    " writer), by whose: client (an API call) or background (the poll cycle's work)",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, float("inf")),
)
COMMAND_SECONDS = Histogram(
    "engine_command_duration_seconds",
    "From acceptance to end, of top-level commands, by type and outcome",
    ["action_type", "status"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, float("inf")),
)
