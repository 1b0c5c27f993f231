"""Idle: what an engine with nothing to do writes (issue 16's target: a poll cycle in which
nothing changed writes nothing durable).

The real `engine-service` process (its default 1 s poll interval) on a fresh database of the
backend measured, with 3 hosts (3 idle agent processes) and a storage domain, nothing in flight.
After it has settled (start-up reconciliation, the first retention pass), a window of
`seconds` is watched:

- the bytes the engine process caused to be written to storage, `write_bytes` of
  /proc/PID/io (counted when pages are dirtied; its log goes to a tmpfs when /dev/shm exists,
  so that only its database counts);
- its database commits that changed something: on SQLite `PRAGMA data_version` sampled every
  20 ms from a connection of the bench's (it changes when another connection commits; so this
  counts the 20 ms slices with at least one commit, a lower bound); on PostgreSQL the rows the
  database inserted, updated or deleted (pg_stat_database; its counters lag up to a second).

Both figures' target is the value itself: 0.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from bench.fixtures import Backend, start_agents
from bench.stats import Figure
from engine_service.v1 import engine_service_pb2 as epb
from harness.databases import ADMIN_URL
from harness.processes import EngineProcess

HOSTS = 3
POLL_INTERVAL = 1.0


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"no write_bytes in /proc/{pid}/io")


class SqliteCommits:
    """Counts the 20 ms slices in which another connection committed to a SQLite file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.slices = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        conn = sqlite3.connect(self.path)
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            while not self._stop.wait(0.02):
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                self.slices += now != last
                last = now
        finally:
            conn.close()

    def __enter__(self) -> SqliteCommits:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def pg_rows_changed(url: str) -> int:
    """Rows inserted, updated and deleted in the database of `url` so far (its statistics)."""
    name = make_url(url).database
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        row = admin.execute(
            "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
            "WHERE datname = %s",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


def watch(backend: Backend, url: str, pid: int, seconds: float) -> dict[str, float]:
    """The window: the engine's bytes written and its database's changing commits (or rows)."""
    before = write_bytes(pid)
    if backend.name == "sqlite":
        with SqliteCommits(make_url(url).database or "") as commits:
            time.sleep(seconds)
        changes = float(commits.slices)
    else:
        rows = pg_rows_changed(url)
        time.sleep(seconds)
        changes = float(pg_rows_changed(url) - rows)
    return {"write_bytes": float(write_bytes(pid) - before), "changes": changes}


def run(
    backend: Backend, seconds: float, settle: float, say: Callable[[str], None]
) -> list[Figure]:
    with ExitStack() as stack:
        agents = start_agents(backend.scratch, HOSTS, backend.scratch / "storage-idle", stack)
        url = stack.enter_context(backend.database("idle"))
        shm = Path("/dev/shm")
        workdir = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else backend.scratch)
            )
        )
        engine = EngineProcess(workdir, database_url=url, poll_interval=POLL_INTERVAL)
        stack.callback(engine.close)
        engine.start()
        stub = engine.stub()
        for i, agent in enumerate(agents):
            stub.AddHost(epb.AddHostRequest(name=f"idle{i}", address=agent.address), timeout=30)
        stub.AddStorageDomain(epb.AddStorageDomainRequest(name="idle-sd"), timeout=30)
        time.sleep(settle)
        assert engine.proc is not None
        seen = watch(backend, url, engine.proc.pid, seconds)
    what = "commits that changed rows" if backend.name == "sqlite" else "rows changed"
    say(
        f"  {backend.name}: {seconds:.0f} s idle with {HOSTS} hosts: the engine wrote "
        f"{seen['write_bytes'] / 1024:,.0f} KiB; {what}: {seen['changes']:.0f}"
    )
    cycles = seconds / POLL_INTERVAL
    details = {"seconds": seconds, "poll_cycles": cycles, "hosts": HOSTS, **seen}
    return [
        Figure(
            "idle",
            backend.name,
            f"bytes written by the engine, {seconds:.0f} s idle, {HOSTS} hosts",
            "B",
            seen["write_bytes"],
            target="<= 0",
            absolute=True,
            details={**details, "bytes_per_cycle": seen["write_bytes"] / cycles},
        ),
        Figure(
            "idle",
            backend.name,
            f"database {what}, {seconds:.0f} s idle",
            "",
            seen["changes"],
            target="<= 0",
            absolute=True,
            details=details,
        ),
    ]
