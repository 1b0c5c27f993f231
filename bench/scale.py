"""Scale in simulation (with --scale): one engine polling 1,000 agent endpoints with 100 tasks
each, against 100 endpoints with 100 tasks each (the growth).

The endpoints are simulated by one `bench.farm` process (a gRPC server per endpoint, each
answering GetAllTasksStatuses with its 100 RUNNING tasks); the engine's database (fresh, per
backend) gets one UP host per endpoint and one ACTIVE AddDisk command per 4 of its tasks, with
the farm's task ids. The engine's real AsyncTaskManager then runs in this process, as in the
polling benchmark (bench/polling.py): one cycle recording the first statuses, then measured
cycles (wall time, CPU time of this process, agent calls), then one under tracemalloc (peak
Python memory of a cycle). What the farm leaves out against real agents: each endpoint's own
process and its CPU (the farm answers from one thread, replies built once).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bench import farm
from bench.fixtures import Backend
from bench.polling import measure, populate
from bench.stats import Figure

TASKS = 100
SIZES = (100, 1_000)  # endpoints


def start_farm(scratch: Path, endpoints: int, stack: ExitStack) -> list[str]:
    """The farm process (killed on exit) and its endpoints' addresses, once all listen."""
    address_file = scratch / f"farm-{uuid.uuid4().hex[:6]}.addresses"
    log = open(scratch / "farm.log", "ab")  # noqa: SIM115 (closed by the stack)
    stack.callback(log.close)
    argv = [sys.executable, "-m", "bench.farm", "--endpoints", str(endpoints)]
    proc = subprocess.Popen(
        [*argv, "--tasks", str(TASKS), "--address-file", str(address_file)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack.callback(proc.wait, 30)
    stack.callback(proc.kill)
    deadline = time.monotonic() + 300
    while not address_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the farm did not start ({scratch / 'farm.log'})")
        time.sleep(0.2)
    return address_file.read_text().split()


def run(
    chosen: list[Backend], quick: bool, say: Callable[[str], None], stack: ExitStack
) -> list[Figure]:
    sizes = (10, 100) if quick else SIZES
    cycles = 2 if quick else 3
    scratch = chosen[0].scratch if chosen else Path("/tmp")
    began = time.perf_counter()
    addresses = start_farm(scratch, sizes[-1], stack)
    say(f"  {len(addresses):,} simulated endpoints listening ({time.perf_counter() - began:.1f} s)")
    sd = str(uuid.uuid4())
    figures: list[Figure] = []
    for backend in chosen:
        seen: dict[int, dict[str, float]] = {}
        for endpoints in sizes:
            tasks = {
                addresses[e]: [(str(uuid.uuid4()), farm.task_id(e, i)) for i in range(TASKS)]
                for e in range(endpoints)
            }
            with backend.database(f"farm{endpoints}") as url:
                populate(url, sd, tasks)
                r = seen[endpoints] = measure(url, cycles, hosts=endpoints)
            say(
                f"  {backend.name} {endpoints:>5,} endpoints x {TASKS} tasks: first cycle "
                f"{r['first_s']:.2f} s, then {r['wall_s'] * 1e3:.0f} ms wall, "
                f"{r['cpu_s'] * 1e3:.0f} ms CPU, {r['calls']:.0f} agent calls per cycle, peak "
                f"{r['peak_bytes'] / 1e6:.1f} MB ({r['peak_bytes'] / (endpoints * TASKS):,.0f} B "
                "per task)"
            )
        small, large = sizes
        lo, hi = seen[small], seen[large]
        what = f"{large:,} vs {small:,} simulated endpoints x {TASKS} tasks"
        details = {
            "first_cycle_s": {str(small): lo["first_s"], str(large): hi["first_s"]},
            "peak_bytes_per_task": {str(n): seen[n]["peak_bytes"] / (n * TASKS) for n in sizes},
        }
        for metric, key, unit, factor, target in (
            ("wall time per cycle", "wall_s", "ms", 1e3, "<= 10"),
            ("CPU time per cycle", "cpu_s", "ms", 1e3, ""),
            ("peak memory of a cycle", "peak_bytes", "MB", 1e-6, ""),
        ):
            figures.append(
                Figure(
                    "scale",
                    backend.name,
                    f"{metric}, {what}",
                    unit,
                    hi[key] * factor,
                    f"{small:,}",
                    lo[key] * factor,
                    target=target,
                    runs=1 if key == "peak_bytes" else cycles,
                    details=details if key == "wall_s" else {},
                )
            )
        figures.append(
            Figure(
                "scale",
                backend.name,
                f"agent calls per cycle, {large:,} simulated endpoints",
                "calls",
                hi["max_calls"],
                "endpoints",
                large,
                target="<= 1",
                runs=cycles,
            )
        )
    return figures
