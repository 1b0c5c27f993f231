"""Load held: the real engine process under a steady open-loop load for ten minutes
(`--load-seconds`), reported per minute.

Set-up: `agents` real agent processes (throttled, so that every copy and every new volume takes
about half a second: `image_bytes` at `throttle` bytes/s, with `agent_workers` tasks moving
bytes at once), the real `engine-service` on a fresh database (SQLite unless --backends names
others) at its default 1 s poll interval, with `--retention` short (60 s) so that what ended
is pruned during the run; a storage domain with 4 source images and a pool of VMs of 4 disks
each written into its database. The workload (bench/loadgen.py) alternates AddDisk and
AddVmTemplate (4 copies), and a janitor removes each disk and template once its command has
ended, so that the inventory stays level: what is left to grow is the engine's own state.

1. The maximum: `clients` threads adding back to back (closed loop) for `max_seconds`; adds
   accepted per second.
2. The load: adds due at `fraction` (80 %) of that maximum, evenly spaced, whatever the engine's
   pace (open loop: a latency runs from when the add was due, so a stall counts in every add it
   delays), for `seconds`, cut into windows of `window` seconds ("minutes").

Per window: p50 and p99 of the adds due in it; at its end the engine's and the agents' RSS
(/proc/PID/status VmRSS), the database's size (SQLite: the file and its WAL; PostgreSQL:
pg_database_size), the agents' task records (the tasks they report: one record each, whatever
the layout of their state directories; how many of them have finished and wait for the engine
to clear them), the files in the agents' state directories and their size, the janitor's
backlog. Targets (issue 16): p99 <= 3 x p50 in every window; the last window's p99 <= 1.2 x the
first's; RSS growth, last window against the first, <= 10 % (the engine, and the agents
together); the database bounded, read as: its size at the end of the last window <= 1.2 x its
size at the end of the middle one (window 5 of 10). By then several retention periods have
passed and pruning runs every retention/10 s, so the history the database holds is level, and
the janitor keeps the inventory level. Not the second window: a SQLite file never gives pages
back, so its size is the high-water mark of what it held (plus its WAL), and what it holds
swings with the engine's backlog of tasks to clear (a rise in window 3 or 4 that then stays
flat is a high-water mark, not growth). A file that still grows in the second half holds state
that is not pruned. The adds slower than each window's p99 are kept in the details (when they
were due, how long they took), to see whether they come in bursts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench.fixtures import Backend, start_agents, write_images
from bench.loadgen import Sample, Workload, closed_loop, open_loop, write_vms
from bench.stats import Figure, percentile
from engine_service.v1 import engine_service_pb2 as epb
from harness.databases import ADMIN_URL
from harness.processes import AgentProcess, EngineProcess
from harness.waiting import poll_until
from vdsm_agent.v1 import agent_service_pb2 as apb


@dataclass(frozen=True)
class LoadSettings:
    """The load's sizes and pace."""

    seconds: float = 600.0
    window: float = 60.0
    max_seconds: float = 30.0
    clients: int = 16
    fraction: float = 0.8
    retention: float = 60.0
    agents: int = 2
    throttle: int = 128 * 1024
    image_bytes: int = 64 * 1024
    agent_workers: int = 64
    vms: int = 400


# `make test` runs this (tests/e2e/test_bench.py): two windows of 10 s.
QUICK = LoadSettings(seconds=20.0, window=10.0, max_seconds=4.0, retention=5.0, vms=100)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Gauges:
    """What is read at the end of each window."""

    def __init__(self, engine: EngineProcess, agents: list[AgentProcess], url: str) -> None:
        self.engine = engine
        self.agents = agents
        self.url = make_url(url)

    def db_mb(self) -> tuple[float, float]:
        """The database's size, MB, and of it the WAL's (SQLite; 0 on PostgreSQL)."""
        if self.url.get_backend_name() == "sqlite":
            path = self.url.database or ""
            main, wal = Path(path), Path(f"{path}-wal")
            wal_bytes = wal.stat().st_size if wal.exists() else 0
            return (main.stat().st_size + wal_bytes) / 1e6, wal_bytes / 1e6
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            row = admin.execute("SELECT pg_database_size(%s)", (self.url.database,)).fetchone()
        return (int(row[0]) / 1e6 if row else 0.0), 0.0

    def agent_tasks(self) -> tuple[float, float]:
        """The tasks the agents hold a record of (all they report), and how many of them have
        finished and wait for the engine to clear them."""
        held = finished = 0
        for agent in self.agents:
            reply = agent.stub().GetAllTasksStatuses(apb.GetAllTasksStatusesRequest(), timeout=30)
            held += len(reply.statuses)
            finished += sum(s.state == apb.TASK_STATE_FINISHED for s in reply.statuses)
        return float(held), float(finished)

    def read(self) -> dict[str, float]:
        assert self.engine.proc is not None
        held, finished = self.agent_tasks()
        state = [p for a in self.agents for p in a.state_dir.rglob("*") if p.is_file()]
        db, wal = self.db_mb()
        return {
            "db_mb": db,
            "wal_mb": wal,
            "task_records": held,
            "finished_uncleared": finished,
            "state_files": float(len(state)),
            "state_mb": sum(p.stat().st_size for p in state) / 1e6,
            "engine_rss_mb": rss_mb(self.engine.proc.pid),
            "agents_rss_mb": sum(rss_mb(a.proc.pid) for a in self.agents if a.proc is not None),
        }


def sample_windows(
    gauges: Gauges, workload: Workload, began: float, window: float, count: int
) -> tuple[threading.Thread, list[dict[str, Any]]]:
    """A thread reading the gauges at the end of each window (started here)."""
    seen: list[dict[str, Any]] = []

    def run() -> None:
        for k in range(1, count + 1):
            time.sleep(max(0.0, began + k * window - time.monotonic()))
            seen.append(
                {**gauges.read(), "backlog": workload.backlog, "free_vms": workload.free_vms}
            )

    thread = threading.Thread(target=run, name="gauges", daemon=True)
    thread.start()
    return thread, seen


def summarize(
    samples: list[Sample],
    gauges: list[dict[str, Any]],
    removals: list[tuple[float, float]],
    began: float,
    window: float,
) -> list[dict[str, Any]]:
    rows = []
    for k, read in enumerate(gauges):
        mine = [s for s in samples if k * window <= s.due < (k + 1) * window]
        ok = [s.latency for s in mine if s.ok] or [0.0]
        removed = [d for end, d in removals if k * window <= end - began < (k + 1) * window]
        removed = removed or [0.0]
        p99 = percentile(ok, 99)
        slow = [
            {"due_s": round(s.due, 3), "ms": round(s.latency * 1e3, 1), "kind": s.kind}
            for s in mine
            if s.ok and s.latency > p99
        ]
        rows.append(
            {
                "window": k + 1,
                "adds": len(mine),
                "failed": sum(not s.ok for s in mine),
                "p50_ms": percentile(ok, 50) * 1e3,
                "p99_ms": percentile(ok, 99) * 1e3,
                "max_ms": max(ok) * 1e3,
                "removals": len(removed),
                "removal_p50_ms": percentile(removed, 50) * 1e3,
                **read,
                "slowest": slow,
            }
        )
    return rows


# What the services log when something may hold the others up: a write unit of the engine
# that held the database's writer over 250 ms, and an agent's compaction of its task journal.
SLOW_UNIT = re.compile(r"a write transaction took (\d+) ms \(opened at (.+), (client|background)\)")
COMPACTED = re.compile(r"compacted the task journal .*: (\d+) -> (\d+) bytes, .* in (\d+) ms")


def logged(
    lines: Iterable[str], pattern: re.Pattern[str], since: float
) -> list[tuple[float, re.Match[str]]]:
    """(seconds after `since`, match) of the lines of a service's text log that match `pattern`
    (their time, local as the text format writes it, read back to the millisecond)."""
    found = []
    for line in lines:
        match = pattern.search(line)
        if match is None:
            continue
        try:
            at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            continue
        if at >= since:
            found.append((at - since, match))
    return found


def stalls(
    windows: list[dict[str, Any]],
    engine: EngineProcess,
    agents: list[AgentProcess],
    began_wall: float,
    window: float,
) -> None:
    """Each window gets the engine's write units over 250 ms and the agents' journal
    compactions that happened in it (`slow_units`, `compactions`, and their counts)."""

    def lines(process: EngineProcess | AgentProcess) -> list[str]:
        return process.log_path.read_text(errors="replace").splitlines()

    units = logged(lines(engine), SLOW_UNIT, began_wall)
    compactions = [
        (at, i, m)
        for i, a in enumerate(agents)
        for at, m in logged(lines(a), COMPACTED, began_wall)
    ]
    for w in windows:
        low, high = (w["window"] - 1) * window, w["window"] * window
        w["slow_units"] = [
            {"at_s": round(at, 3), "ms": int(m[1]), "opened_at": m[2], "kind": m[3]}
            for at, m in units
            if low <= at < high
        ]
        w["compactions"] = [
            {"at_s": round(at, 3), "agent": i, "bytes_before": int(m[1]), "ms": int(m[3])}
            for at, i, m in compactions
            if low <= at < high
        ]
        w["slow_unit_count"] = len(w["slow_units"])
        w["slowest_unit_ms"] = max((u["ms"] for u in w["slow_units"]), default=0)
        w["compaction_count"] = len(w["compactions"])


class StallDumps:
    """While the open loop runs: when the oldest unanswered add has waited over `after`
    seconds, the stacks of every thread of the engine, the agents and this process (py-spy
    dump), to see what holds the requests; at most one set every `every` seconds and `most` in
    all. Nothing when py-spy is not installed (the bench extras)."""

    def __init__(
        self,
        pids: dict[str, int],
        inflight: dict[int, float],
        began: float,
        after: float = 0.5,
        every: float = 20.0,
        most: int = 8,
    ) -> None:
        self.pids = pids
        self.inflight = inflight
        self.began = began
        self.after, self.every, self.most = after, every, most
        self.dumps: list[dict[str, Any]] = []
        self.spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stall-dumps", daemon=True)

    def start(self) -> StallDumps:
        if Path(self.spy).exists():
            self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)
        return self.dumps

    def _watch(self) -> None:
        last = -self.every
        while not self._stop.wait(0.05) and len(self.dumps) < self.most:
            dues = list(self.inflight.values())
            now = time.monotonic()
            if not dues or now - min(dues) < self.after or now - last < self.every:
                continue
            last = now
            stacks = {}
            for name, pid in self.pids.items():
                done = subprocess.run(
                    [self.spy, "dump", "--pid", str(pid)],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
                stacks[name] = done.stdout or done.stderr
            self.dumps.append(
                {
                    "at_s": round(now - self.began, 3),
                    "oldest_waiting_ms": round((now - min(dues)) * 1e3, 1),
                    "waiting": len(dues),
                    "stacks": stacks,
                }
            )


def run(backend: Backend, settings: LoadSettings, say: Callable[[str], None]) -> list[Figure]:
    t0 = time.monotonic()
    with ExitStack() as stack:
        storage_root = backend.scratch / f"storage-load-{backend.name}"
        agents = start_agents(
            backend.scratch,
            settings.agents,
            storage_root,
            stack,
            throttle=settings.throttle,
            extra_args=["--workers", str(settings.agent_workers)],
        )
        url = stack.enter_context(backend.database("load"))
        engine = EngineProcess(
            backend.scratch / f"engine-load-{backend.name}",
            database_url=url,
            poll_interval=1.0,
            extra_args=["--retention", f"{settings.retention:g}"],
        )
        stack.callback(engine.close)
        engine.start()
        stub = engine.stub()
        for i, agent in enumerate(agents):
            stub.AddHost(epb.AddHostRequest(name=f"load{i}", address=agent.address), timeout=30)
        reply = stub.AddStorageDomain(epb.AddStorageDomainRequest(name="load-sd"), timeout=30)
        sd = reply.storage_domain.storage_domain_id
        images = write_images(storage_root, sd, 4, settings.image_bytes)
        vms = write_vms(url, sd, images, settings.image_bytes, settings.vms)
        workload = Workload(engine.channel(), sd, vms, settings.image_bytes)
        workload.start()
        stack.callback(workload.stop)
        say(f"  {backend.name} set up in {time.monotonic() - t0:.1f} s")
        maximum, closed = closed_loop(workload, settings.clients, settings.max_seconds)
        ok = [s.latency for s in closed if s.ok] or [0.0]
        say(
            f"  {backend.name} maximum: {maximum:.1f} adds/s with {settings.clients} clients "
            f"(closed loop, {settings.max_seconds:.0f} s; p50 {percentile(ok, 50) * 1e3:.0f} ms)"
        )
        drained = time.monotonic()
        poll_until(lambda: workload.backlog, lambda n: n == 0, 120, 0.2, lambda n: f"{n} left")
        rate = maximum * settings.fraction
        count = max(1, round(settings.seconds / settings.window))
        say(
            f"  {backend.name} load: {rate:.1f} adds/s for {count} windows of "
            f"{settings.window:.0f} s (after {time.monotonic() - drained:.1f} s for the janitor "
            "to remove what the maximum made)"
        )
        began, began_wall = time.monotonic(), time.time()
        gauges = Gauges(engine, agents, url)
        thread, reads = sample_windows(gauges, workload, began, settings.window, count)
        inflight: dict[int, float] = {}
        pids = {"engine": engine.proc.pid, "load generator": os.getpid()} if engine.proc else {}
        pids.update({f"agent {i}": a.proc.pid for i, a in enumerate(agents) if a.proc})
        dumps = StallDumps(pids, inflight, began).start()
        samples = open_loop(workload, rate, count * settings.window, began, inflight=inflight)
        stall_dumps = dumps.stop()
        thread.join()
        windows = summarize(samples, reads, list(workload.removals), began, settings.window)
        stalls(windows, engine, agents, began_wall, settings.window)
        for w in windows:
            say(
                f"  {backend.name} window {w['window']:>2}: {w['adds']} adds "
                f"({w['failed']} failed), p50 {w['p50_ms']:6.1f} ms, p99 {w['p99_ms']:7.1f} ms; "
                f"RSS engine {w['engine_rss_mb']:.0f} MB, agents {w['agents_rss_mb']:.0f} MB; "
                f"db {w['db_mb']:.2f} MB; task records {w['task_records']:.0f} "
                f"({w['finished_uncleared']:.0f} finished, {w['state_files']:.0f} files, "
                f"{w['state_mb']:.2f} MB); "
                f"backlog {w['backlog']}; write units over 250 ms {w['slow_unit_count']} "
                f"(longest {w['slowest_unit_ms']} ms), journal compactions {w['compaction_count']}"
            )
        if Path(dumps.spy).exists():
            say(
                f"  {backend.name}: {len(stall_dumps)} set(s) of stacks taken while an add waited "
                f"over {dumps.after * 1e3:.0f} ms (py-spy dump; in the JSON, load.stall_dumps)"
            )
        counts = dict(workload.counts)
    details = {
        "settings": asdict(settings),
        "maximum_per_s": maximum,
        "rate_per_s": rate,
        "counts": counts,
        "windows": windows,
        "stall_dumps": stall_dumps,
    }
    achieved = sum(s.ok for s in samples) / (count * settings.window)
    return figures(backend.name, settings, maximum, rate, achieved, windows, details)


def figures(
    backend: str,
    settings: LoadSettings,
    maximum: float,
    rate: float,
    achieved: float,
    windows: list[dict[str, Any]],
    details: dict[str, Any],
) -> list[Figure]:
    first, last = windows[0], windows[-1]
    second = windows[min(1, len(windows) - 1)]
    middle = windows[(len(windows) - 1) // 2]
    worst = max(windows, key=lambda w: w["p99_ms"] / max(w["p50_ms"], 1e-9))
    span = f"{len(windows)} windows of {settings.window:.0f} s"

    def fig(metric: str, unit: str, value: float, name: str, base: float, **kw: Any) -> Figure:
        return Figure("load", backend, metric, unit, value, name, base, **kw)

    return [
        fig(
            f"offered rate, {settings.fraction:.0%} of the closed-loop maximum",
            "/s",
            rate,
            "maximum",
            maximum,
            details=details,
        ),
        fig("adds accepted per second, held", "/s", achieved, "offered", rate, inverse=True),
        fig(
            f"p99 vs p50, worst of {span} (window {worst['window']})",
            "ms",
            worst["p99_ms"],
            "p50",
            worst["p50_ms"],
            target="<= 3",
        ),
        fig(
            "p99, last window vs first",
            "ms",
            last["p99_ms"],
            "first",
            first["p99_ms"],
            target="<= 1.2",
        ),
        fig(
            "engine RSS, last window vs first",
            "MB",
            last["engine_rss_mb"],
            "first",
            first["engine_rss_mb"],
            target="<= 1.1",
        ),
        fig(
            f"agents' RSS ({settings.agents}), last window vs first",
            "MB",
            last["agents_rss_mb"],
            "first",
            first["agents_rss_mb"],
            target="<= 1.1",
        ),
        fig(
            f"database size, last window vs window {middle['window']}",
            "MB",
            last["db_mb"],
            f"window {middle['window']}",
            middle["db_mb"],
            target="<= 1.2",
        ),
        fig(
            "agents' task records, last window vs the second",
            "tasks",
            last["task_records"],
            "second",
            max(second["task_records"], 1.0),
        ),
        fig(
            "agents' state directories, last window vs the second",
            "MB",
            last["state_mb"],
            "second",
            second["state_mb"],
        ),
    ]


def windows_table(figures: list[Figure]) -> str:
    """Each load run's windows as a markdown table (empty without a load run)."""
    columns = (
        ("window", "window", "{:.0f}"),
        ("adds", "adds", "{:.0f}"),
        ("failed", "failed", "{:.0f}"),
        ("p50 ms", "p50_ms", "{:.1f}"),
        ("p99 ms", "p99_ms", "{:.1f}"),
        ("engine RSS MB", "engine_rss_mb", "{:.1f}"),
        ("agents RSS MB", "agents_rss_mb", "{:.1f}"),
        ("db MB", "db_mb", "{:.2f}"),
        ("of it WAL", "wal_mb", "{:.2f}"),
        ("task records", "task_records", "{:.0f}"),
        ("of them finished", "finished_uncleared", "{:.0f}"),
        ("state files", "state_files", "{:.0f}"),
        ("state MB", "state_mb", "{:.2f}"),
        ("janitor backlog", "backlog", "{:.0f}"),
        ("write units > 250 ms", "slow_unit_count", "{:.0f}"),
        ("longest, ms", "slowest_unit_ms", "{:.0f}"),
        ("journal compactions", "compaction_count", "{:.0f}"),
    )
    out = []
    for f in figures:
        if f.benchmark != "load" or "windows" not in f.details:
            continue
        d = f.details
        out += [
            f"\nLoad, {f.backend}: {d['rate_per_s']:.1f} adds/s offered "
            f"({f.details['settings']['fraction']:.0%} of {d['maximum_per_s']:.1f}), "
            f"per window of {d['settings']['window']:.0f} s:\n",
            "| " + " | ".join(c[0] for c in columns) + " |",
            "|" + "---|" * len(columns),
        ]
        out += [
            "| " + " | ".join(fmt.format(w[key]) for _, key, fmt in columns) + " |"
            for w in d["windows"]
        ]
    return "\n".join(out)


def with_seconds(settings: LoadSettings, seconds: float | None) -> LoadSettings:
    """`settings` with the load's length set by --load-seconds, if given."""
    if seconds is None:
        return settings
    window = min(settings.window, seconds / 2)
    return replace(settings, seconds=seconds, window=window)
