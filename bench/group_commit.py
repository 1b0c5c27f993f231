"""Group commit on SQLite (engine_service/adapters/group_commit.py): the engine's own write
units, 16 threads at once, with and without the group commit, on fresh databases of the same
kind in the same run.

Each unit is the engine's real UnitOfWork over its repository, writing five rows (as a
placeholder transaction writes a command and its four placeholders) and committing. The
baseline runs the same units each with its own COMMIT (the gate alone, as before the group
commit); the measured one lets the units queued at the gate share one. Rounds alternate the two
so that the machine's drift falls on both. Figures: units per second and the units' p99
latency; the units each COMMIT held go in the details. No target: the issue names group commit
as a means (its targets are the submission's); this shows what it does on this disk.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from bench.driving import drive
from bench.fixtures import Backend
from bench.stats import Figure
from engine_service.adapters.db import make_engine, migrate, session_factory
from engine_service.adapters.group_commit import GroupCommit
from engine_service.adapters.writers import WriterGate
from engine_service.domain.hosts import Host
from engine_service.domain.tasks import new_id
from engine_service.service_layer.unit_of_work import UnitOfWork

THREADS = 16
ROWS = 5


def _units(url: str, grouped: bool, per_thread: int) -> dict[str, Any]:
    """`THREADS` threads each running `per_thread` units; their rate, latencies, group sizes."""
    db = make_engine(url)
    migrate(db)
    sessions = session_factory(db)
    gate = WriterGate()
    sizes: list[int] = []
    groups = GroupCommit(gate, db.connect, on_commit=sizes.append) if grouped else None

    def unit(_: int) -> None:
        with UnitOfWork(sessions, False, gate, groups) as uow:
            for _ in range(ROWS):
                name = new_id()
                uow.repo.add_host(Host(name, name, name))
            uow.commit()

    run = drive(unit, range(THREADS * per_thread), THREADS)
    db.dispose()
    return {
        "per_s": run.throughput,
        "p50_ms": run.p50 * 1e3,
        "p99_ms": run.p99 * 1e3,
        "units_per_commit": sum(sizes) / len(sizes) if sizes else 1.0,
    }


def run(backend: Backend, quick: bool, say: Callable[[str], None]) -> list[Figure]:
    if backend.name != "sqlite":
        return []  # PostgreSQL's writers run side by side: no gate, no group
    rounds, per_thread = (1, 20) if quick else (3, 150)
    results: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for round_no in range(rounds):
        for grouped in (False, True):
            with backend.database("groups" if grouped else "alone") as url:
                r = _units(url, grouped, per_thread)
            results[grouped].append(r)
            say(
                f"  sqlite round {round_no + 1}/{rounds} {'grouped' if grouped else 'alone  '}"
                f" {r['per_s']:6.0f} units/s  p50 {r['p50_ms']:5.1f} ms  p99 "
                f"{r['p99_ms']:5.1f} ms  {r['units_per_commit']:.1f} units/COMMIT"
            )

    def median(grouped: bool, key: str) -> float:
        return statistics.median(r[key] for r in results[grouped])

    details = {"rounds": {str(k): v for k, v in results.items()}, "threads": THREADS}
    details["units_per_commit"] = median(True, "units_per_commit")
    return [
        Figure(
            "group_commit",
            "sqlite",
            f"write units per second, {THREADS} threads ({ROWS} rows each)",
            "/s",
            median(True, "per_s"),
            "each its own COMMIT",
            median(False, "per_s"),
            inverse=True,
            runs=rounds,
            details=details,
        ),
        Figure(
            "group_commit",
            "sqlite",
            f"p99 write unit latency, {THREADS} threads",
            "ms",
            median(True, "p99_ms"),
            "each its own COMMIT",
            median(False, "p99_ms"),
            runs=rounds,
        ),
    ]
