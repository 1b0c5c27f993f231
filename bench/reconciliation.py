"""Benchmark 3: reconciliation at scale.

N AddDisk commands with 4 placeholders each, a quarter of them orphaned (no agent id), written
straight into a fresh database; one real agent process that knows none of them ("not found").
Measured: one `Engine.reconcile()` (what ReconcileOrphans runs: the agent lookup and the single
failing transaction), in-process so that its time and peak Python memory (tracemalloc) can be
read, against plain set-based SQL over the DBAPI doing the same updates, deletes and history
rows in one transaction on an identical copy of the database (tests/e2e/test_bench.py checks that
both leave the same rows). Each is timed untraced and its memory read in a second, traced run
on another copy: the tracer slows Python's allocations, the engine's and not the SQL's. At
10,000 and 100,000 commands; with --scale at 100,000 and 1,000,000 (one round; issue 16's
target: <= 1.5 x the SQL at 1,000,000, the memory per failed id flat).
"""

from __future__ import annotations

import itertools
import shutil
import sqlite3
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench.fixtures import Backend, start_agents
from bench.stats import Figure, median
from engine_service.adapters.db import make_engine, migrate
from engine_service.adapters.orm import (
    utcnow,
)
from engine_service.bootstrap import EngineSettings, bootstrap
from engine_service.domain.commands import CommandStatus, Outcome
from engine_service.domain.history import ended_message
from engine_service.service_layer.reconciliation import ORPHAN_REASON
from harness.databases import fresh_postgres_database

PLACEHOLDERS = 4
ENDED = ended_message(Outcome(CommandStatus.FAILED, ORPHAN_REASON))  # the history's message


def populate(url: str, n: int, agent_address: str) -> None:
    """n ACTIVE AddDisk commands of 4 tasks each; every 4th command's tasks have no agent id.
    Loaded with the drivers' bulk paths (executemany, COPY) from generators (a million
    commands' rows are never all in memory), then ANALYZEd, as autovacuum would have done on a
    live database."""
    db = make_engine(url)
    migrate(db)
    db.dispose()
    host, sd = str(uuid.uuid4()), str(uuid.uuid4())
    now = utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy stores it on SQLite
    run = uuid.uuid4().hex[:8]  # ids below: unique per run, valid UUIDs, cheap to make

    def cmd(i: int) -> str:
        return f"{run}-0001-4000-8000-{i:012x}"

    def disk(i: int) -> str:
        return f"{run}-0002-4000-8000-{i:012x}"

    def tasks() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            for k in range(PLACEHOLDERS):
                j = i * PLACEHOLDERS + k
                yield (
                    f"{run}-0003-4000-8000-{j:012x}",
                    cmd(i),
                    cmd(i),
                    host,
                    None if i % 4 == 0 else f"{run}-0004-4000-8000-{j:012x}",
                    "CreateVolume",
                    "{}",
                    sd,
                    disk(i) if k == 0 else f"{run}-0005-4000-8000-{j:012x}",
                    0,
                    "",
                    "",
                    now,
                )

    bulk_load(
        url,
        [
            ("hosts", HOST_COLUMNS, iter([(host, "h", agent_address, "UP", 0, now)])),
            (
                "storage_domains",
                ("storage_domain_id", "name", "created_at"),
                iter([(sd, "s", now)]),
            ),
            (
                "commands",
                COMMAND_COLUMNS,
                (
                    (
                        cmd(i),
                        None,
                        "AddDisk",
                        "ACTIVE",
                        f'{{"disk_id": "{disk(i)}"}}',
                        disk(i),
                        "",
                        now,
                    )
                    for i in range(n)
                ),
            ),
            (
                "disks",
                DISK_COLUMNS,
                ((disk(i), "d", sd, disk(i), 1, "LOCKED", now) for i in range(n)),
            ),
            (
                "entity_locks",
                ("entity_type", "entity_id", "command_id", "created_at"),
                (("disk", disk(i), cmd(i), now) for i in range(n)),
            ),
            ("async_tasks", TASK_COLUMNS, tasks()),
        ],
    )


HOST_COLUMNS = ("host_id", "name", "address", "status", "failed_polls", "created_at")
COMMAND_COLUMNS = (
    "command_id",
    "parent_id",
    "action_type",
    "status",
    "params",
    "target_id",
    "failure_reason",
    "created_at",
)
DISK_COLUMNS = (
    "disk_id",
    "name",
    "storage_domain_id",
    "image_id",
    "size_bytes",
    "status",
    "created_at",
)
TASK_COLUMNS = (
    "task_id",
    "command_id",
    "root_command_id",
    "host_id",
    "vdsm_task_id",
    "verb",
    "args",
    "storage_domain_id",
    "image_id",
    "progress_percent",
    "message",
    "cleanup",
    "created_at",
)


def bulk_load(
    url: str, tables: list[tuple[str, tuple[str, ...], Iterator[tuple[Any, ...]]]]
) -> None:
    """Rows (values as text, None for NULL, no tabs or newlines) straight into tables with the
    driver's fastest path (sqlite3 executemany in one transaction; COPY), then ANALYZE. Setup
    only: nothing here is measured."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(parsed.database or "", isolation_level=None)
        try:
            conn.execute("PRAGMA cache_size = -262144")  # 256 MiB: random keys, big indexes
            conn.execute("BEGIN")
            for table, columns, rows in tables:
                marks = ", ".join("?" * len(columns))
                conn.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
                )
            conn.execute("COMMIT")
            conn.execute("ANALYZE")
        finally:
            conn.close()
        return
    with psycopg.connect(parsed.set(drivername="postgresql").render_as_string(False)) as pg:
        with pg.cursor() as cur:
            # The rows are consistent by construction: skip the per-row foreign key triggers
            # (a superuser setting; the test server's `postgres` role is one).
            cur.execute("SET session_replication_role = replica")
            for table, columns, rows in tables:
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    while chunk := list(itertools.islice(rows, 10_000)):
                        copy.write(
                            "".join(
                                "\t".join(r"\N" if v is None else str(v) for v in row) + "\n"
                                for row in chunk
                            )
                        )
        pg.commit()
        pg.autocommit = True
        pg.execute("ANALYZE")


@contextmanager
def copy_of(backend: Backend, url: str) -> Iterator[str]:
    """An identical copy of a populated database (a file copy; CREATE DATABASE ... TEMPLATE)."""
    if backend.name == "sqlite":
        source = Path(make_url(url).database or "")
        with sqlite3.connect(source) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        target = source.with_name(f"{source.stem}-{uuid.uuid4().hex[:6]}.db")
        shutil.copyfile(source, target)
        try:
            yield f"sqlite:///{target}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
        return
    with fresh_postgres_database(template=make_url(url).database or "") as copy:
        yield copy


def measured(work: Callable[[], int], memory: bool) -> tuple[float, float, int]:
    """Seconds, peak traced Python memory in bytes (0 unless `memory`), and what `work`
    returned. Memory is measured in a run of its own, as polling's is: tracemalloc slows every
    Python allocation several times over, which would charge the engine (Python objects) and
    not plain SQL (nearly none) for the tracer's own cost."""
    if memory:
        tracemalloc.start()
    began = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - began
    peak = 0.0
    if memory:
        peak = float(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return seconds, peak, result


def measure_engine(url: str, memory: bool = False) -> tuple[float, float, int]:
    engine = bootstrap(EngineSettings(url))  # migrations checked here, before the clock starts
    try:
        return measured(lambda: engine.reconcile().failed_commands, memory)
    finally:
        engine.agents.close()


def measure_plain(url: str, memory: bool = False) -> tuple[float, float, int]:
    return measured(lambda: plain_reconcile(url), memory)


BATCH = (
    "SELECT command_id FROM commands WHERE parent_id IS NULL AND status = 'FAILED' "
    "AND failure_reason = {m} AND ended_at = {m}"
)
PLAIN = (
    # The ACTIVE commands with a placeholder (no agent id) fail, then their children.
    "UPDATE commands SET status = 'FAILED', failure_reason = {m}, ended_at = {m} "
    "WHERE parent_id IS NULL AND status = 'ACTIVE' AND command_id IN ("
    "SELECT root_command_id FROM async_tasks WHERE vdsm_task_id IS NULL AND cleanup = '' "
    "AND created_at < {m})",
    "UPDATE commands SET status = 'FAILED', failure_reason = {m}, ended_at = {m} "
    "WHERE parent_id IN (" + BATCH + ") AND status = 'ACTIVE'",
    # The disks they were creating go; the placeholders are deleted; other tasks compensated.
    "DELETE FROM disks WHERE image_id IN (SELECT image_id FROM async_tasks "
    "WHERE root_command_id IN (" + BATCH + "))",
    "DELETE FROM async_tasks WHERE root_command_id IN (" + BATCH + ") "
    "AND vdsm_task_id IS NULL AND cleanup = ''",
    "UPDATE async_tasks SET cleanup = 'compensate' WHERE root_command_id IN (" + BATCH + ") "
    "AND cleanup = ''",
    "DELETE FROM entity_locks WHERE command_id IN (" + BATCH + ")",
    # Each failed command's history says so (one `ended` event), as the engine's does.
    "INSERT INTO command_events (command_id, time, kind, message) "
    "SELECT command_id, {m}, 'ended', {m} FROM (" + BATCH + ") AS failed",
)


def plain_reconcile(url: str) -> int:
    """The same updates, deletes and history rows as set-based SQL in one transaction; returns
    the failed command ids' count (they are fetched, as the API returns them)."""
    parsed = make_url(url)
    now = utcnow()
    if parsed.get_backend_name() == "sqlite":
        conn: Any = sqlite3.connect(parsed.database or "", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        m, begin = "?", "BEGIN IMMEDIATE"
        stamp: Any = now.strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy stores DateTime
    else:
        conn = psycopg.connect(parsed.set(drivername="postgresql").render_as_string(False))
        conn.autocommit = True
        m, begin, stamp = "%s", "BEGIN", now
    params: list[tuple[Any, ...]] = [
        (ORPHAN_REASON, stamp, stamp),
        (ORPHAN_REASON, stamp, ORPHAN_REASON, stamp),
        (ORPHAN_REASON, stamp),
        (ORPHAN_REASON, stamp),
        (ORPHAN_REASON, stamp),
        (ORPHAN_REASON, stamp),
        (stamp, ENDED, ORPHAN_REASON, stamp),
    ]
    try:
        cur = conn.cursor()
        cur.execute(begin)
        for statement, args in zip(PLAIN, params, strict=True):
            cur.execute(statement.format(m=m), args)
        cur.execute(BATCH.format(m=m), (ORPHAN_REASON, stamp))
        failed = [row[0] for row in cur.fetchall()]
        cur.execute("COMMIT")
    finally:
        conn.close()
    return len(failed)


def run(
    backend: Backend, quick: bool, say: Callable[[str], None], scale: bool = False
) -> list[Figure]:
    sizes = (1_000, 4_000) if quick else (100_000, 1_000_000) if scale else (10_000, 100_000)
    rounds = 1 if quick or scale else 3
    figures: list[Figure] = []
    peaks: dict[int, float] = {}
    with ExitStack() as stack:
        (agent,) = start_agents(backend.scratch, 1, backend.scratch / "storage-r", stack)
        for n in sizes:
            url = stack.enter_context(backend.database(f"reconcile{n}"))
            began = time.perf_counter()
            populate(url, n, agent.address)
            say(f"  {backend.name}: {n:,} commands written in {time.perf_counter() - began:.1f} s")
            seen: dict[str, list[tuple[float, float]]] = {"engine": [], "sql": []}
            for round_no in range(rounds):
                for name, measure in (("engine", measure_engine), ("sql", measure_plain)):
                    # Timed untraced; the peak memory from a traced run on another copy.
                    with copy_of(backend, url) as copy:
                        seconds, _, failed = measure(copy, False)
                    with copy_of(backend, url) as copy:
                        _, peak, failed_traced = measure(copy, True)
                    if {failed, failed_traced} != {n // 4}:
                        raise RuntimeError(f"{name} failed {failed} commands, not {n // 4}")
                    seen[name].append((seconds, peak))
                    say(
                        f"  {backend.name} {n:>7,} commands round {round_no + 1}/{rounds} "
                        f"{name:<6} {seconds:6.2f} s  peak {peak / 1e6:5.1f} MB"
                    )
            engine_s = median([s for s, _ in seen["engine"]])
            sql_s = median([s for s, _ in seen["sql"]])
            engine_mb = median([p for _, p in seen["engine"]]) / 1e6
            sql_mb = median([p for _, p in seen["sql"]]) / 1e6
            peaks[n] = engine_mb
            figures.append(
                Figure(
                    "reconciliation",
                    backend.name,
                    f"time, {n:,} commands x4, 1/4 orphaned",
                    "s",
                    engine_s,
                    "plain SQL",
                    sql_s,
                    target="<= 1.5" if n == sizes[-1] else "",
                    runs=rounds,
                )
            )
            figures.append(
                Figure(
                    "reconciliation",
                    backend.name,
                    f"peak memory, {n:,} commands",
                    "MB",
                    engine_mb,
                    "plain SQL",
                    sql_mb,
                    runs=rounds,
                    details={"failed_command_ids": n // 4},
                )
            )
    small, large = sizes
    figures.append(
        Figure(
            "reconciliation",
            backend.name,
            f"peak memory growth, {large:,} vs {small:,} commands",
            "MB",
            peaks[large],
            f"{small:,}",
            peaks[small],
        )
    )
    # The reply counts the failed commands (a quarter of N) and lists the first 1000 ids only
    # (issue 14): nothing in it grows with N, so the bytes per failed command should fall.
    per_id = {n: peaks[n] * 1e6 / (n // 4) for n in sizes}
    figures.append(
        Figure(
            "reconciliation",
            backend.name,
            f"peak memory per failed id returned, {large:,} vs {small:,} commands",
            "B",
            per_id[large],
            f"{small:,}",
            per_id[small],
            target="<= 1.2",
        )
    )
    return figures
