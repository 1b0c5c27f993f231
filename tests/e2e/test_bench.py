"""`make bench` must keep working: its quick mode (small sizes, one round, SQLite) runs every
benchmark against real processes and writes every figure, the load benchmark included (held
for two windows of 10 s). Timings are not checked here (they belong to the benchmark, not to
tests); what is checked is that each figure exists, has its baseline from the same run (the
limit's parts are baselines themselves; the idle figures bound the value), that every
submission figure has its ratio to the limit, and that the counts the targets rest on are
right."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.databases import postgres_unavailable

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_bench_measures_every_figure(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--backends", "sqlite", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((tmp_path / "quick.json").read_text())
    figures = results["figures"]
    by_bench: dict[str, list[dict]] = {}
    for f in figures:
        by_bench.setdefault(f["benchmark"], []).append(f)
        if f["absolute"]:
            assert f["value"] >= 0 and f["baseline"] is None and f["met"] is not None, f
            continue
        assert f["value"] > 0 and (f["baseline"] is None or f["baseline"] > 0), f
        assert f["ratio"] is not None or f["benchmark"] == "limit", f
    assert {
        "submission",
        "group_commit",
        "reconciliation",
        "polling",
        "copying",
        "limit",
        "idle",
        "load",
    } <= set(by_bench)
    (units, _) = by_bench["group_commit"]
    assert units["details"]["units_per_commit"] >= 1 and units["baseline"] > 0
    targets = {f["metric"] for f in figures if f["target"]}
    assert "p50 latency, concurrency 1" in targets
    assert "p99 vs p50 latency, concurrency 1" in targets
    assert all(f["limit_ratio"] is not None for f in by_bench["submission"] if f["limit"]), figures
    p50 = next(f for f in by_bench["submission"] if f["metric"] == "p50 latency, concurrency 1")
    assert p50["limit_target"] and p50["limit"] == by_bench["limit"][0]["value"]
    assert p50["limit"] < p50["baseline"], "the limit must be below the floor it bounds"
    (held,) = [f for f in by_bench["load"] if "windows" in f["details"]]
    windows = held["details"]["windows"]
    assert len(windows) == 2 and all(w["adds"] > 0 and w["failed"] == 0 for w in windows)
    assert all(w["engine_rss_mb"] > 0 and w["db_mb"] > 0 for w in windows)
    assert sum(bool(f["target"]) for f in by_bench["load"]) >= 5
    assert any(m.startswith("time, ") for m in targets)
    assert any(m.startswith("copy speed") or " copy speed vs cp" in m for m in targets)
    calls = [f for f in by_bench["polling"] if f["metric"].startswith("agent calls")]
    assert calls and all(f["value"] == f["baseline"] == 20 for f in calls)
    peers_installed = all(importlib.util.find_spec(m) for m in ("dbos", "taskflow"))
    if peers_installed:
        assert {f["baseline_name"] for f in by_bench["peers"]} == {"DBOS", "TaskFlow"}
    else:
        assert any("not measured" in note for note in results["notes"])
    markdown = (tmp_path / "quick.md").read_text()
    assert "| benchmark |" in markdown and "| x limit |" in markdown
    assert "| window | adds |" in markdown


RECONCILED_ROWS = (
    "SELECT kind, message, count(*) FROM command_events GROUP BY kind, message",
    "SELECT status, failure_reason IS NULL, count(*) FROM commands GROUP BY 1, 2",
    "SELECT vdsm_task_id IS NULL, cleanup, count(*) FROM async_tasks GROUP BY 1, 2",
    "SELECT count(*) FROM disks",
    "SELECT count(*) FROM entity_locks",
)


@pytest.mark.parametrize(
    "backend_name", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_the_reconciliation_baseline_does_the_engines_work(
    backend_name: str, tmp_path: Path
) -> None:
    """Benchmark 3 compares the engine's reconciliation with plain SQL: both must leave the
    same rows (statuses, placeholders, compensations, disks, locks, history), or the ratio
    compares different work. Each on its own copy of one populated database."""
    from contextlib import ExitStack

    from sqlalchemy import create_engine, text

    from bench.fixtures import Backend, start_agents
    from bench.reconciliation import measure_engine, measure_plain, populate

    problem = postgres_unavailable() if backend_name == "postgresql" else None
    if problem is not None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    backend = Backend(backend_name, tmp_path)
    with ExitStack() as stack:
        (agent,) = start_agents(tmp_path, 1, tmp_path / "storage", stack)
        rows = {}
        for name, measure in (("engine", measure_engine), ("plain", measure_plain)):
            url = stack.enter_context(backend.database(name))
            populate(url, 200, agent.address)
            assert measure(url)[2] == 50  # a quarter of the commands fail, both ways
            db = create_engine(url)
            with db.connect() as conn:
                rows[name] = [sorted(map(tuple, conn.execute(text(q)))) for q in RECONCILED_ROWS]
            db.dispose()
        assert rows["engine"] == rows["plain"], backend.name
