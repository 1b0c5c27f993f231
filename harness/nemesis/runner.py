"""One nemesis run: the data center set up, the workload and the faults together, the checker
after healing; and the command line."""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from durable_virt_tasks_client import EngineClient, RetryPolicy, pb
from harness import netfaults
from harness.nemesis.checker import Outcome, check
from harness.nemesis.datacenter import DataCenter
from harness.nemesis.schedule import DISK_BYTES, DISKS_PER_VM, VMS, Fault, schedule
from harness.nemesis.workload import Workload
from harness.pg_server import problem as postgres_problem


def unavailable() -> str | None:
    """Why the nemesis cannot run here (it needs PostgreSQL's server binaries and root)."""
    return postgres_problem()


def run(seconds: float, seed: int, workdir: Path, say: Callable[[str], None] = print) -> Outcome:
    use_namespace = netfaults.unavailable() is None
    faults = schedule(seed, seconds, partitions=use_namespace)
    say(f"nemesis: seed {seed}, {seconds:.0f} s, workdir {workdir}")
    if not use_namespace:
        say(f"nemesis: no partitions here ({netfaults.unavailable()})")
    say("nemesis: fault schedule:")
    for fault in faults:
        say(f"  {fault.describe()}")
    dc = DataCenter(workdir, say)
    try:
        dc.start(use_namespace)
        # Patient enough to ride out any one fault (an engine restart, a database restart).
        policy = RetryPolicy(attempts=40, initial_backoff=0.1, max_backoff=1.0)
        with EngineClient.connect(dc.address, retry=policy, timeout=15) as client:
            workload = Workload(client, seed, *setup(client, dc))
            return soak(dc, workload, faults, seconds, seed, say)
    finally:
        dc.close()


def setup(client: EngineClient, dc: DataCenter) -> tuple[tuple[str, str], list[str]]:
    for name, agent in dc.agents.items():
        client.add_host(name, agent.address)
    src = client.add_storage_domain("data1").storage_domain_id
    dst = client.add_storage_domain("data2").storage_domain_id
    vms = []
    for v in range(VMS):
        disks = []
        for d in range(DISKS_PER_VM):
            disk, command = client.add_disk(f"vm{v}-disk{d}", src, DISK_BYTES)
            if client.wait(command.command_id, timeout=60).status != pb.COMMAND_STATUS_SUCCEEDED:
                raise RuntimeError(f"setup: disk vm{v}-disk{d} failed")
            disks.append(disk.disk_id)
        vms.append(client.add_vm(f"vm{v}", disks).vm_id)
    return (src, dst), vms


def soak(
    dc: DataCenter,
    workload: Workload,
    faults: list[Fault],
    seconds: float,
    seed: int,
    say: Callable[[str], None],
) -> Outcome:
    stop = threading.Event()
    workers = [
        threading.Thread(target=workload.run, args=(w, stop), name=f"workload-{w}", daemon=True)
        for w in range(2)
    ]
    injected: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    for worker in workers:
        worker.start()
    try:
        for fault in faults:
            _sleep_until(started + fault.at)
            say(f"nemesis: {fault.describe()}")
            dc.inject(fault)
            injected[fault.kind] += 1
            _sleep_until(started + fault.at + fault.hold)
            dc.heal()
        _sleep_until(started + seconds)
    finally:
        stop.set()
        dc.heal()
    for worker in workers:
        worker.join(timeout=120)
    say(f"nemesis: healed at t={time.monotonic() - started:.1f}s; checking")
    return check(dc, workload, injected, seed, say)


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.nemesis", description=__doc__)
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("NEMESIS_SECONDS", "120")),
        help="how long the faults go on (default: $NEMESIS_SECONDS or 120)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=int(os.environ["NEMESIS_SEED"]) if os.environ.get("NEMESIS_SEED") else None,
        help="the seed (default: $NEMESIS_SEED, else one drawn and printed)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    ns = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the data center (processes, namespace, PostgreSQL) is torn
    # down by the `finally` blocks instead of being left running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    why = unavailable()
    if why:
        print(f"nemesis: cannot run here: {why}", file=sys.stderr)
        return 2
    seed = ns.seed if ns.seed is not None else random.SystemRandom().randrange(1, 1 << 31)
    workdir = Path(tempfile.mkdtemp(prefix=f"nemesis-{seed}-"))
    outcome: Outcome | None = None
    try:
        outcome = run(ns.seconds, seed, workdir, lambda line: print(line, flush=True))
    finally:
        keep = ns.keep or outcome is None or not outcome.ok
        if keep:
            print(f"nemesis: logs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if not outcome.ok:
        print(
            f"nemesis: replay with NEMESIS_SEED={seed} NEMESIS_SECONDS={ns.seconds:g} make nemesis",
            flush=True,
        )
    print(outcome.last_line(), flush=True)
    return 0 if outcome.ok else 1


def faults_of(lines: Iterator[str]) -> list[str]:
    """The fault lines of a run's output (to compare two runs of one seed)."""
    return [line.strip() for line in lines if line.startswith("  t=")]
