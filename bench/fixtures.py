"""What the benchmarks run against: real agent processes, a fresh SQLite file or a fresh
PostgreSQL database per measurement, and source images written straight into a domain."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.databases import fresh_postgres_database, postgres_unavailable
from harness.processes import AgentProcess
from vdsm_agent.v1 import agent_service_pb2 as pb


@dataclass(frozen=True)
class Backend:
    name: str  # "sqlite" or "postgresql"
    scratch: Path

    @contextmanager
    def database(self, label: str) -> Iterator[str]:
        """A fresh, empty database; yields its URL."""
        if self.name == "sqlite":
            path = self.scratch / f"{label}-{uuid.uuid4().hex[:8]}.db"
            yield f"sqlite:///{path}"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            with fresh_postgres_database() as url:
                yield url


def backends(scratch: Path, wanted: list[str]) -> tuple[list[Backend], list[str]]:
    """The backends to measure, and why any wanted one is left out."""
    chosen, skipped = [], []
    for name in wanted:
        if name == "postgresql":
            why = postgres_unavailable()
            if why is not None:
                skipped.append(f"postgresql: skipped ({why})")
                continue
        chosen.append(Backend(name, scratch))
    return chosen, skipped


def start_agents(
    scratch: Path,
    count: int,
    storage_root: Path,
    stack: ExitStack,
    throttle: int | None = None,
    extra_args: list[str] | None = None,
) -> list[AgentProcess]:
    """`count` agent processes sharing `storage_root`, started in parallel, killed on exit."""
    agents = [
        AgentProcess(
            scratch / f"agent{i}-{uuid.uuid4().hex[:6]}",
            storage_root=storage_root,
            throttle=throttle,
            extra_args=extra_args,
        )
        for i in range(count)
    ]
    for agent in agents:
        stack.callback(agent.close)
        stack.callback(agent.kill)
        agent.start(wait=False)
    for agent in agents:
        agent.wait_serving(timeout=60)
    return agents


def create_domain(agent: AgentProcess, storage_domain_id: str | None = None) -> str:
    sd = storage_domain_id or str(uuid.uuid4())
    request = pb.CreateStorageDomainRequest(storage_domain_id=sd)
    agent.stub().CreateStorageDomain(request, timeout=30)
    return sd


def write_images(storage_root: Path, storage_domain_id: str, count: int, size: int) -> list[str]:
    """`count` images of `size` bytes written straight into a domain (setup, not measured)."""
    images = []
    data = os.urandom(size)
    for _ in range(count):
        image = str(uuid.uuid4())
        (storage_root / storage_domain_id / "images" / image).write_bytes(data)
        images.append(image)
    return images
