"""Benchmark 4: one poll cycle with many tasks in flight.

20 real agent processes (state and storage on /dev/shm when it exists, so that accepting
10,000 tasks takes seconds; the engine's side does not touch those files), each given
CreateVolume tasks that stay in flight (throttled to 4 KiB/s, most of them queued). The
engine's database (fresh, per backend) gets one ACTIVE command per 4 tasks with the agents'
task ids. The engine's real AsyncTaskManager then runs in this process against the real agents:
one cycle to record the first statuses, then measured cycles: wall time, CPU time of this
process (the engine; the agents are other processes) and agent calls, counted by the engine's
own metric engine_agent_rpc_seconds; then one more cycle under tracemalloc, for the peak
Python memory a cycle takes (per task in flight). At 1,000 and at 10,000 tasks, to show the
growth; with --scale at 10,000 and 100,000 (issue 16's target: the cycle at 10 x the tasks
<= 10 x the time, held at every pair of sizes).
"""

from __future__ import annotations

import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import insert

from bench.fixtures import Backend, create_domain, start_agents
from bench.stats import Figure
from engine_service.adapters.db import make_engine, migrate
from engine_service.adapters.orm import CommandRow, HostRow, StorageDomainRow, TaskRow, utcnow
from engine_service.bootstrap import EngineSettings, bootstrap
from engine_service.service_layer.async_task_manager import PollSettings
from harness.processes import AgentProcess
from vdsm_agent.v1 import agent_service_pb2 as pb

AGENTS = 20
TASKS_PER_COMMAND = 4
VOLUME_BYTES = 1 << 30  # never finishes at the throttle below
THROTTLE = 4096


def agent_calls() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "engine_agent_rpc_seconds":
            total += sum(s.value for s in metric.samples if s.name.endswith("_count"))
    return total


def start_tasks(agent: AgentProcess, sd: str, count: int) -> list[tuple[str, str]]:
    """`count` CreateVolume tasks; (engine task id = request id, agent task id) pairs."""
    stub = agent.stub()
    started = []
    for _ in range(count):
        task_id = str(uuid.uuid4())
        reply = stub.CreateVolume(
            pb.CreateVolumeRequest(
                request_id=task_id,
                storage_domain_id=sd,
                image_id=str(uuid.uuid4()),
                size_bytes=VOLUME_BYTES,
            ),
            timeout=30,
        )
        started.append((task_id, reply.task_id))
    return started


def populate(url: str, sd: str, tasks: dict[str, list[tuple[str, str]]]) -> None:
    """One UP host per address of `tasks`, with its tasks ((engine task id, agent task id)
    pairs) in flight, 4 per ACTIVE AddDisk command."""
    db = make_engine(url)
    migrate(db)
    now = utcnow()
    hosts = {address: str(uuid.uuid4()) for address in tasks}
    commands: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for address, started in tasks.items():
        for i in range(0, len(started), TASKS_PER_COMMAND):
            cmd = str(uuid.uuid4())
            commands.append(
                dict(
                    command_id=cmd,
                    parent_id=None,
                    action_type="AddDisk",
                    status="ACTIVE",
                    params={},
                    target_id=None,
                    failure_reason="",
                    created_at=now,
                )
            )
            for task_id, vdsm_task_id in started[i : i + TASKS_PER_COMMAND]:
                rows.append(
                    dict(
                        task_id=task_id,
                        command_id=cmd,
                        root_command_id=cmd,
                        host_id=hosts[address],
                        vdsm_task_id=vdsm_task_id,
                        submitted_at=now,
                        verb="CreateVolume",
                        args={},
                        storage_domain_id=sd,
                        image_id=str(uuid.uuid4()),
                        state=None,
                        result=None,
                        progress_percent=0,
                        message="",
                        cleanup="",
                        created_at=now,
                    )
                )
    with db.begin() as c:
        c.execute(
            insert(HostRow),
            [
                dict(
                    host_id=host_id,
                    name=f"host{i:02d}",
                    address=address,
                    status="UP",
                    failed_polls=0,
                    created_at=now,
                )
                for i, (address, host_id) in enumerate(hosts.items())
            ],
        )
        c.execute(insert(StorageDomainRow), [dict(storage_domain_id=sd, name="s", created_at=now)])
        c.execute(insert(CommandRow), commands)
        c.execute(insert(TaskRow), rows)
    with db.connect() as c:
        c.exec_driver_sql("ANALYZE")
        c.commit()
    db.dispose()


def measure(url: str, cycles: int, hosts: int = AGENTS) -> dict[str, float]:
    """The engine in-process over `url`: its first cycle, then `cycles` measured ones and one
    under tracemalloc. A cycle waits for every host here (interval = agent deadline = 10 s; the
    engine's default 1 s would leave a host slower than that out of the cycle, answering in a
    later one), so that every measured cycle has every host's answer."""
    poll = PollSettings(interval=10.0, agent_deadline=10.0)
    engine = bootstrap(EngineSettings(url, poll=poll))
    manager = engine.manager
    try:
        began = time.perf_counter()
        manager.poll_once()  # the first statuses of every task are recorded here
        first = time.perf_counter() - began
        walls, cpus, calls = [], [], []
        for _ in range(cycles):
            counted, cpu, began = agent_calls(), time.process_time(), time.perf_counter()
            result = manager.poll_once()
            walls.append(time.perf_counter() - began)
            cpus.append(time.process_time() - cpu)
            calls.append(agent_calls() - counted)
            if result.unreachable or len(result.statuses) != hosts:
                raise RuntimeError(
                    f"a poll heard {len(result.statuses)} of {hosts} hosts: {result.unreachable}"
                )
        tracemalloc.start()
        manager.poll_once()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        manager.stop()
        engine.agents.close()
    return {
        "first_s": first,
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "calls": statistics.median(calls),
        "max_calls": max(calls),
        "peak_bytes": float(peak),
    }


def run(
    scratch: Path,
    chosen: list[Backend],
    quick: bool,
    say: Callable[[str], None],
    stack: ExitStack,
    scale: bool = False,
) -> tuple[list[Figure], list[str]]:
    sizes = (100, 1_000) if quick else (10_000, 100_000) if scale else (1_000, 10_000)
    cycles = 2 if quick else 3 if scale else 5
    shm = Path("/dev/shm")
    where = Path(
        stack.enter_context(tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else scratch))
    )
    say(f"polling: starting {AGENTS} agents")
    agents = start_agents(
        where, AGENTS, where / "storage", stack, throttle=THROTTLE, extra_args=["--workers", "2"]
    )
    sd = create_domain(agents[0])
    tasks: dict[str, list[tuple[str, str]]] = {a.address: [] for a in agents}
    figures: list[Figure] = []
    results: dict[tuple[str, int], dict[str, float]] = {}
    for size in sizes:
        began = time.perf_counter()
        more = size // AGENTS - len(tasks[agents[0].address])
        with ThreadPoolExecutor(AGENTS) as pool:
            batches = pool.map(partial(start_tasks, sd=sd, count=more), agents)
            for agent, started in zip(agents, batches, strict=True):
                tasks[agent.address] += started
        say(f"  {size:,} tasks in flight on {AGENTS} agents ({time.perf_counter() - began:.1f} s)")
        for backend in chosen:
            with backend.database(f"poll{size}") as url:
                populate(url, sd, tasks)
                r = results[(backend.name, size)] = measure(url, cycles)
            say(
                f"  {backend.name} {size:>6,} tasks: first cycle {r['first_s']:.2f} s, then "
                f"{r['wall_s'] * 1e3:.0f} ms wall, {r['cpu_s'] * 1e3:.0f} ms CPU, "
                f"{r['calls']:.0f} agent calls per cycle, peak {r['peak_bytes'] / 1e6:.1f} MB "
                f"({r['peak_bytes'] / size:,.0f} B per task)"
            )
    small, large = sizes
    for backend in chosen:
        lo, hi = results[(backend.name, small)], results[(backend.name, large)]
        for metric, key, unit, factor, target in (
            ("wall time", "wall_s", "ms", 1e3, "<= 10"),
            ("CPU time", "cpu_s", "ms", 1e3, ""),
            ("peak memory", "peak_bytes", "MB", 1e-6, ""),
        ):
            figures.append(
                Figure(
                    "polling",
                    backend.name,
                    f"{metric} per cycle, {large:,} vs {small:,} tasks",
                    unit,
                    hi[key] * factor,
                    f"{small:,}",
                    lo[key] * factor,
                    target=target,
                    runs=1 if key == "peak_bytes" else cycles,
                    details={
                        "first_cycle_s": {str(small): lo["first_s"], str(large): hi["first_s"]},
                        "peak_bytes_per_task": {
                            str(small): lo["peak_bytes"] / small,
                            str(large): hi["peak_bytes"] / large,
                        },
                    },
                )
            )
        for size, r in ((small, lo), (large, hi)):
            figures.append(
                Figure(
                    "polling",
                    backend.name,
                    f"agent calls per cycle, {size:,} tasks",
                    "calls",
                    r["max_calls"],
                    "agents",
                    AGENTS,
                    target="<= 1",
                    runs=cycles,
                )
            )
    return figures, []
