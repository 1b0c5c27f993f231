"""The data center under the nemesis: an engine and three throttled agents in a network
namespace of their own (when one can be made), on a PostgreSQL server of its own; how each
fault is injected, and how everything heals."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from durable_virt_tasks_client import pb
from harness import netfaults
from harness.nemesis.schedule import AGENTS, ENGINE_ARGS, THROTTLE, Fault
from harness.pg_server import PostgresServer
from harness.processes import AgentProcess, EngineProcess


class DataCenter:
    """The engine, the agents and the database server under the nemesis."""

    def __init__(self, workdir: Path, say: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.say = say
        self.storage = workdir / "storage"
        self.storage.mkdir(parents=True)
        self.namespace: netfaults.DataCenterNamespace | None = None
        self.postgres = PostgresServer()  # its own directory: the postgres user must reach it
        self.agents: dict[str, AgentProcess] = {}
        self.engine: EngineProcess | None = None
        self.partitions: list[netfaults.Partition] = []
        self.paused: set[str] = set()

    def start(self, use_namespace: bool) -> None:
        self.postgres.initdb()
        self.postgres.start()
        url = self.postgres.create_database("engine")
        if use_namespace:
            self.namespace = netfaults.DataCenterNamespace(log_dir=self.workdir).create()
            self.namespace.import_port(self.postgres.port)
        for n in range(1, AGENTS + 1):
            agent = AgentProcess(
                self.workdir / f"host{n}", storage_root=self.storage, throttle=THROTTLE
            )
            if self.namespace is not None:
                self.namespace.place(agent)
            self.agents[f"host{n}"] = agent
            agent.start()
        engine = EngineProcess(self.workdir / "engine", database_url=url, extra_args=ENGINE_ARGS)
        if self.namespace is not None:
            self.namespace.place(engine)
        self.engine = engine
        engine.start(timeout=60)

    @property
    def address(self) -> str:
        assert self.engine is not None
        return self.engine.address

    # -- faults and their healing ----------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        if fault.kind == "partition":
            assert self.namespace is not None
            port = self.agents[fault.target].port
            self.partitions.append(
                self.namespace.partition(port, fault.mode, fault.direction)  # type: ignore[arg-type]
            )
        elif fault.kind == "pause_agent":
            self._signal(fault.target, signal.SIGSTOP)
            self.paused.add(fault.target)
        elif fault.kind == "kill_agent":
            self.agents[fault.target].kill()
        elif fault.kind == "kill_engine":
            assert self.engine is not None
            self.engine.kill()
        elif fault.kind == "restart_postgres":
            self.postgres.stop(mode="fast")
        elif fault.kind == "kill_postgres":
            self.postgres.kill9()

    def heal(self) -> None:
        """Undo every fault: rules gone, paused agents resumed, everything running."""
        for partition in self.partitions:
            partition.heal()
        self.partitions.clear()
        if self.namespace is not None:
            self.namespace.heal()
        for name in sorted(self.paused):
            self._signal(name, signal.SIGCONT)
        self.paused.clear()
        if not self.postgres.running:
            self.postgres.start()
        for agent in self.agents.values():
            if not agent.running:
                agent.start()
        assert self.engine is not None
        if not self.engine.running:
            self.engine.start(timeout=120)

    def _signal(self, name: str, signum: int) -> None:
        proc = self.agents[name].proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signum)

    def image(self, disk: pb.Disk) -> Path:
        return self.storage / disk.storage_domain_id / "images" / disk.image_id

    def agent_tasks(self) -> list[str]:
        from vdsm_agent.v1 import agent_service_pb2 as apb

        found = []
        for name, agent in self.agents.items():
            reply = agent.stub().GetAllTasksInfo(apb.GetAllTasksInfoRequest(), timeout=10)
            found += [f"{name}:{t.task_id}" for t in reply.tasks]
        return found

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.heal()
        for process in [*self.agents.values(), *([self.engine] if self.engine else [])]:
            with contextlib.suppress(Exception):
                process.close()
        if self.namespace is not None:
            self.namespace.close()
        self.postgres.cleanup()
