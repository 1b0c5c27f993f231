"""Benchmarks 1 and 2: submitting AddVmTemplate with 4 disks.

Contenders, each on a fresh database of the backend measured and each doing the same durable
work (see `bench.workload`) against a real agent process (throttle off; the copies are not
awaited):

- engine: the real `engine-service` process; the client times AddVmTemplate until it returns;
- floor: the work written plainly (1 transaction of 5 rows, 4 agent RPCs, 4 commits);
- DBOS and TaskFlow: the work as a workflow of each library, persisted on the same database.

Each round first measures the `limit` (bench/limit.py) with the agents idle, then runs every
contender at concurrency 1 and then 16 (threads each submitting one job after another), and
between runs lets every copy finish and be cleared, so that a run only competes with the
background work it caused itself. Figures are medians over the rounds; each is also given as a
ratio to the limit (the median of the rounds' limits).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, insert, select

from bench import limit
from bench.driving import Run, drain_agent, drive
from bench.fixtures import Backend, create_domain, write_images
from bench.stats import Figure, median
from bench.workload import Contender, Floor, PlainStore, TemplateJob
from engine_service.adapters.db import make_engine
from engine_service.adapters.orm import CommandRow, DiskRow, VmDiskRow, VmRow, utcnow
from engine_service.v1 import engine_service_pb2 as epb
from harness.processes import AgentProcess, EngineProcess

IMAGE_BYTES = 64 * 1024
DISKS = 4


# Jobs per run at concurrency 1 and 16: fewer for the slower peers, so that the whole bench
# stays within its 10 minutes (TaskFlow does about one job per second here).
JOBS = {"engine": (30, 96), "floor": (30, 96), "DBOS": (12, 32), "TaskFlow": (4, 16)}
QUICK_JOBS = {"engine": (8, 32), "floor": (8, 32), "DBOS": (4, 16), "TaskFlow": (2, 16)}


@dataclass(frozen=True)
class Settings:
    rounds: int = 3
    jobs: tuple[tuple[str, tuple[int, int]], ...] = tuple(JOBS.items())
    warmup: int = 3
    limit_samples: int = limit.SAMPLES

    def count(self, contender: str, threads: int) -> int:
        c1, c16 = dict(self.jobs)[contender]
        return c1 if threads == 1 else c16


class EngineContender:
    """The engine process; VMs with 4 disks each are written into its database before a run
    (setup, not measured), one per job, all disks pointing at the same 4 source images."""

    name = "engine"

    def __init__(self, workdir: Path, url: str, agent: AgentProcess, storage_root: Path) -> None:
        self.agent = agent
        self.url = url
        self.process = EngineProcess(workdir, database_url=url, poll_interval=1.0)
        self.process.start()
        self.stub = self.process.stub()
        self.stub.AddHost(epb.AddHostRequest(name="bench-host", address=agent.address), timeout=30)
        reply = self.stub.AddStorageDomain(epb.AddStorageDomainRequest(name="bench-sd"), timeout=30)
        self.storage_domain_id = reply.storage_domain.storage_domain_id
        self.sources = write_images(storage_root, self.storage_domain_id, DISKS, IMAGE_BYTES)
        self.db = make_engine(url)
        self.vm_of: dict[str, str] = {}
        self.submitted = 0

    def prepare(self, jobs: Sequence[TemplateJob]) -> None:
        now = utcnow()
        disks, vms, links = [], [], []
        for job in jobs:
            vm = str(uuid.uuid4())
            self.vm_of[job.command_id] = vm
            vms.append({"vm_id": vm, "name": f"vm-{job.name}", "created_at": now})
            for position, image in enumerate(self.sources):
                disk = str(uuid.uuid4())
                disks.append(
                    {
                        "disk_id": disk,
                        "name": f"disk{position}",
                        "storage_domain_id": self.storage_domain_id,
                        "image_id": image,
                        "size_bytes": IMAGE_BYTES,
                        "status": "OK",
                        "created_at": now,
                    }
                )
                links.append({"vm_id": vm, "position": position, "disk_id": disk})
        with self.db.begin() as conn:
            conn.execute(insert(VmRow), vms)
            conn.execute(insert(DiskRow), disks)
            conn.execute(insert(VmDiskRow), links)

    def submit(self, job: TemplateJob) -> None:
        self.stub.AddVmTemplate(
            epb.AddVmTemplateRequest(
                vm_id=self.vm_of[job.command_id],
                name=job.name,
                destination_storage_domain_id=self.storage_domain_id,
            ),
            timeout=60,
        )

    def drain(self, count: int) -> None:
        drain_agent(self.agent, clear=False)
        self.submitted += count
        with self.db.connect() as conn:
            succeeded = conn.scalar(
                select(func.count())
                .select_from(CommandRow)
                .where(CommandRow.action_type == "AddVmTemplate", CommandRow.status == "SUCCEEDED")
            )
        if succeeded != self.submitted:
            raise RuntimeError(f"engine: {succeeded} templates succeeded of {self.submitted}")

    def close(self) -> None:
        self.db.dispose()
        self.process.terminate()
        self.process.close()


class PlainContender:
    """A contender of `bench.workload` (floor or peer) on its own database and agent. It is
    opened (`start`) for each round and closed after it, so that at most one peer holds its
    connections at a time (PostgreSQL's max_connections is 100 by default)."""

    def __init__(
        self,
        name: str,
        factory: Callable[[str, str], Contender],
        url: str,
        agent: AgentProcess,
        storage_root: Path,
    ) -> None:
        self.name = name
        self.factory = factory
        self.url = url
        self.agent = agent
        self.contender: Contender | None = None
        self.store = PlainStore(url)
        self.storage_domain_id = create_domain(agent)
        self.sources = write_images(storage_root, self.storage_domain_id, DISKS, IMAGE_BYTES)
        self.submitted = 0

    def start(self) -> None:
        self.contender = self.factory(self.url, self.agent.address)

    def stop(self) -> None:
        if self.contender is not None:
            self.contender.close()
            self.contender = None

    def prepare(self, jobs: Sequence[TemplateJob]) -> None:
        pass

    def submit(self, job: TemplateJob) -> None:
        assert self.contender is not None, "start() the contender first"
        self.contender.submit(job)

    def drain(self, count: int) -> None:
        drain_agent(self.agent, clear=True)
        self.submitted += count
        commands, tasks = self.store.count_submitted()
        if (commands, tasks) != (self.submitted, DISKS * self.submitted):
            raise RuntimeError(
                f"{self.name}: {commands} commands and {tasks} started tasks stored, "
                f"expected {self.submitted} and {DISKS * self.submitted}"
            )

    def close(self) -> None:
        self.stop()
        self.store.close()


AnyContender = EngineContender | PlainContender


def jobs_for(contender: AnyContender, count: int, label: str) -> list[TemplateJob]:
    sources = [(contender.storage_domain_id, image) for image in contender.sources]
    return [
        TemplateJob.new(f"{label}-{uuid.uuid4().hex[:12]}", sources, contender.storage_domain_id)
        for _ in range(count)
    ]


def measure(contender: AnyContender, count: int, threads: int, label: str) -> Run:
    jobs = jobs_for(contender, count, label)
    contender.prepare(jobs)
    run = drive(contender.submit, jobs, threads)
    contender.drain(count)
    return run


def peer_factories() -> tuple[dict[str, Callable[[str, str], Contender]], list[str]]:
    """The peers whose optional packages are installed, and a note for each one missing."""
    factories: dict[str, Callable[[str, str], Contender]] = {}
    missing = []
    try:
        from bench.peers.dbos_peer import DbosPeer

        factories["DBOS"] = DbosPeer
    except ImportError as exc:
        missing.append(f"DBOS not measured ({exc}); pip install -e '.[bench]'")
    try:
        from bench.peers.taskflow_peer import TaskflowPeer

        factories["TaskFlow"] = TaskflowPeer
    except ImportError as exc:
        missing.append(f"TaskFlow not measured ({exc}); pip install -e '.[bench]'")
    return factories, missing


def run(
    backend: Backend,
    engine_agent: AgentProcess,
    plain_agent: AgentProcess,
    storage_root: Path,
    settings: Settings,
    with_peers: bool,
    say: Callable[[str], None],
) -> tuple[list[Figure], list[str]]:
    notes: list[str] = []
    results: dict[tuple[str, int], list[Run]] = {}
    limits: list[limit.Limit] = []
    with ExitStack() as stack:
        contenders: list[AnyContender] = []
        url = stack.enter_context(backend.database("engine"))
        engine = EngineContender(
            backend.scratch / f"engine-{backend.name}", url, engine_agent, storage_root
        )
        stack.callback(engine.close)
        contenders.append(engine)
        factories: dict[str, Callable[[str, str], Contender]] = {"floor": Floor}
        if with_peers:
            peers, missing = peer_factories()
            factories.update(peers)
            notes += missing
        for name, factory in factories.items():
            url = stack.enter_context(backend.database(name.lower()))
            plain = PlainContender(name, factory, url, plain_agent, storage_root)
            stack.callback(plain.close)
            contenders.append(plain)
        for round_no in range(settings.rounds):
            limits.append(limit.measure(backend, plain_agent, settings.limit_samples))
            x = limits[-1]
            say(
                f"  {backend.name} round {round_no + 1}/{settings.rounds} limit "
                f"{x.seconds * 1e3:.2f} ms (commit {x.commit * 1e3:.2f}, round trip "
                f"{x.round_trip * 1e3:.2f}, record {x.record * 1e3:.2f})"
            )
            for contender in contenders:
                if isinstance(contender, PlainContender):
                    contender.start()
                if round_no == 0:
                    measure(contender, settings.warmup, 1, "warmup")
                for threads in (1, 16):
                    count = settings.count(contender.name, threads)
                    r = measure(contender, count, threads, f"r{round_no}c{threads}")
                    results.setdefault((contender.name, threads), []).append(r)
                    say(
                        f"  {backend.name} round {round_no + 1}/{settings.rounds} "
                        f"{contender.name:<8} c={threads:<2} p50 {r.p50 * 1e3:6.1f} ms  "
                        f"p99 {r.p99 * 1e3:6.1f} ms  {r.throughput:6.1f} templates/s"
                    )
                if isinstance(contender, PlainContender):
                    contender.stop()
    best = limit.Limit.median_of(limits)
    return limit.figures(backend.name, best, limits) + figures(
        backend.name, results, settings, best
    ), notes


def figures(
    backend: str,
    results: dict[tuple[str, int], list[Run]],
    settings: Settings,
    best: limit.Limit,
) -> list[Figure]:
    """The engine against the floor and the limit, and against the peers (issue 16's targets:
    p50 at concurrency 1 <= 0.6 x the floor and <= 5 x the limit, p99 <= 2 x its p50, and
    throughput at concurrency 16 >= 5 x each peer)."""

    def med(name: str, threads: int, what: Callable[[Run], float]) -> float:
        return median([what(r) for r in results[(name, threads)]])

    def p50(r: Run) -> float:
        return r.p50

    def p99(r: Run) -> float:
        return r.p99

    def per_s(r: Run) -> float:
        return r.throughput

    out: list[Figure] = []
    details = {
        "rounds": settings.rounds,
        "jobs_per_run_c1_c16": dict(settings.jobs),
        "limit_ms": best.seconds * 1e3,
        "per_round": {
            f"{name} c={threads}": [
                {"p50_ms": r.p50 * 1e3, "p99_ms": r.p99 * 1e3, "per_s": r.throughput} for r in runs
            ]
            for (name, threads), runs in results.items()
        },
    }
    for threads in (1, 16):
        for stat, pick in (("p50", p50), ("p99", p99)):
            out.append(
                Figure(
                    "submission",
                    backend,
                    f"{stat} latency, concurrency {threads}",
                    "ms",
                    med("engine", threads, pick) * 1e3,
                    "floor",
                    med("floor", threads, pick) * 1e3,
                    target="<= 0.6" if threads == 1 and stat == "p50" else "",
                    runs=settings.rounds,
                    details=details if threads == 1 and stat == "p50" else {},
                    limit=best.seconds * 1e3,
                    limit_target="<= 5" if threads == 1 and stat == "p50" else "",
                )
            )
        out.append(
            Figure(
                "submission",
                backend,
                f"p99 vs p50 latency, concurrency {threads}",
                "ms",
                med("engine", threads, p99) * 1e3,
                "p50",
                med("engine", threads, p50) * 1e3,
                target="<= 2" if threads == 1 else "",
                runs=settings.rounds,
            )
        )
        out.append(
            Figure(
                "submission",
                backend,
                f"throughput, concurrency {threads}",
                "/s",
                med("engine", threads, per_s),
                "floor",
                med("floor", threads, per_s),
                inverse=True,
                runs=settings.rounds,
                limit=best.throughput(threads),
            )
        )
    peers = [name for name, threads in results if threads == 16 and name not in ("engine", "floor")]
    for name in peers:
        for threads in (1, 16):
            out.append(
                Figure(
                    "peers",
                    backend,
                    f"throughput vs {name}, concurrency {threads}",
                    "/s",
                    med("engine", threads, per_s),
                    name,
                    med(name, threads, per_s),
                    inverse=False,
                    target=">= 5" if threads == 16 else "",
                    runs=settings.rounds,
                )
            )
    return out
