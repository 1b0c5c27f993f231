"""The `limit`: the shortest path the durable work of one 4-disk template allows on this
machine, measured in the same run as the figures it is compared with.

Its three parts, each timed here many times (the median is kept):

- `commit`: one fsync'd commit on a fresh database of the backend measured, with the engine's
  durability settings: a tiny INSERT and COMMIT (SQLite: WAL, synchronous=FULL, BEGIN IMMEDIATE
  ... COMMIT; PostgreSQL: synchronous_commit=on, the INSERT autocommitted, one round trip);
- `round trip`: an empty gRPC call to a real agent process, GetAllTasksStatuses on an idle agent
  (no task: an empty reply), over a plain channel;
- `record`: one fsync'd record on the agent's disk: a new 512-byte file written and fsynced,
  then its directory fsynced, in a directory beside the agent's state directory (the same
  filesystem, checked), as the agent makes a task record durable.

Combined as the durable work allows, with the four agent calls in parallel and each agent record
group-committed: placeholders committed (1 commit), then 4 calls at once, each making one record
durable before it answers (the slowest of them: 1 round trip + 1 record fsync), then the 4 agent
ids committed together (1 commit):

    limit = 2 x commit + round trip + record

A throughput limit at concurrency c is min(c / limit, 1 / (2 x commit + record)): the clients'
paths overlap, but without group commit the disk's fsyncs (3 per template) do not.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
import psycopg
from sqlalchemy.engine import make_url

from bench.fixtures import Backend
from bench.stats import Figure
from harness.processes import AgentProcess
from vdsm_agent.v1 import agent_service_pb2 as pb
from vdsm_agent.v1 import agent_service_pb2_grpc as pb_grpc

SAMPLES = 100
RECORD = b"x" * 512


@dataclass(frozen=True)
class Limit:
    """The three parts (seconds, medians) and the limit they make."""

    commit: float
    round_trip: float
    record: float

    @property
    def seconds(self) -> float:
        return 2 * self.commit + self.round_trip + self.record

    def throughput(self, clients: int) -> float:
        """Templates per second at most with `clients` submitting at once."""
        return min(clients / self.seconds, 1 / (2 * self.commit + self.record))

    @classmethod
    def median_of(cls, limits: list[Limit]) -> Limit:
        return cls(
            statistics.median(x.commit for x in limits),
            statistics.median(x.round_trip for x in limits),
            statistics.median(x.record for x in limits),
        )


def timed(work: Callable[[], object], samples: int) -> float:
    """The median seconds of `samples` calls of `work`, after a few unmeasured ones."""
    for _ in range(max(3, samples // 10)):
        work()
    seen = []
    for _ in range(samples):
        began = time.perf_counter()
        work()
        seen.append(time.perf_counter() - began)
    return statistics.median(seen)


def commit_seconds(url: str, samples: int) -> float:
    """One tiny INSERT + COMMIT on the (fresh) database at `url`, as durable as the engine's."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(parsed.database or "", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE IF NOT EXISTS limit_rows (id INTEGER PRIMARY KEY, v TEXT)")

            def commit() -> None:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO limit_rows (v) VALUES (?)", (uuid.uuid4().hex,))
                conn.execute("COMMIT")

            return timed(commit, samples)
        finally:
            conn.close()
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as pg:
        pg.execute("SET synchronous_commit = on")
        pg.execute("CREATE TABLE IF NOT EXISTS limit_rows (id SERIAL PRIMARY KEY, v TEXT)")
        return timed(
            lambda: pg.execute("INSERT INTO limit_rows (v) VALUES (%s)", (uuid.uuid4().hex,)),
            samples,
        )


def round_trip_seconds(agent: AgentProcess, samples: int) -> float:
    """An empty GetAllTasksStatuses on `agent`, which must be idle (no task at all)."""
    with grpc.insecure_channel(agent.address) as channel:
        stub = pb_grpc.AgentServiceStub(channel)
        request = pb.GetAllTasksStatusesRequest()
        if stub.GetAllTasksStatuses(request, timeout=30).statuses:
            raise RuntimeError(f"the agent at {agent.address} is not idle")
        return timed(lambda: stub.GetAllTasksStatuses(request, timeout=30), samples)


def record_seconds(agent: AgentProcess, samples: int) -> float:
    """A new small file written, fsynced, and its directory fsynced, beside the agent's state
    directory (the same filesystem)."""
    where = agent.state_dir.parent / "limit-records"
    where.mkdir(exist_ok=True)
    if where.stat().st_dev != agent.state_dir.stat().st_dev:
        raise RuntimeError(f"{where} is not on the filesystem of {agent.state_dir}")
    written: list[Path] = []

    def record() -> None:
        path = where / f"{uuid.uuid4()}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, RECORD)
            os.fsync(fd)
        finally:
            os.close(fd)
        dir_fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        written.append(path)

    try:
        return timed(record, samples)
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def measure(backend: Backend, agent: AgentProcess, samples: int = SAMPLES) -> Limit:
    """The limit on `backend` now, the agent idle; its database is made and dropped here."""
    with backend.database("limit") as url:
        commit = commit_seconds(url, samples)
    return Limit(commit, round_trip_seconds(agent, samples), record_seconds(agent, samples))


def figures(backend: str, limit: Limit, per_round: list[Limit]) -> list[Figure]:
    """The limit and its parts, in ms; they have no baseline (they are one)."""
    details = {"per_round_ms": [{k: v * 1e3 for k, v in asdict(x).items()} for x in per_round]}
    rows = [
        ("limit, 4-disk template: 2 commits + round trip + record", limit.seconds, details),
        ("limit part: fsync'd commit (tiny INSERT + COMMIT)", limit.commit, {}),
        ("limit part: gRPC round trip (GetAllTasksStatuses, idle agent)", limit.round_trip, {}),
        ("limit part: fsync'd record (file + fsync + dir fsync)", limit.record, {}),
    ]
    return [
        Figure("limit", backend, metric, "ms", seconds * 1e3, runs=len(per_round), details=d)
        for metric, seconds, d in rows
    ]
