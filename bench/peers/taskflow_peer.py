"""The template job as an OpenStack TaskFlow linear flow (peer of the floor in benchmark 2).

Mapping: one linear flow per job, made by `template_job_flow` (a reimportable factory, whose
name and arguments TaskFlow saves in the flow detail so that the flow can be rebuilt and
resumed with `engines.load_from_detail`): `insert-job`, then per copy `start-copy-N` (the
agent RPC; it *provides* `vdsm_task_id_N`, which TaskFlow persists as the task's result) and
`store-agent-id-N` (which *requires* it). Each job gets its own logbook (uuid = command id)
holding one flow detail, saved through TaskFlow's SQLAlchemy persistence backend on the
benchmark's database; each job runs in the submitting thread on a serial engine. The store and
the agent are injected as transient (not persisted) values, as TaskFlow intends for resources.

Settings: PostgreSQL URLs get the psycopg (3) driver, the one installed (SQLAlchemy's default
for `postgresql://` is psycopg2), and a pool of 16 (the benchmark's top concurrency; the
SQLAlchemy default, 5 + 10 overflow, would make the 16th thread wait). On SQLite TaskFlow uses
a NullPool (a new connection per operation); the sqlite3 busy timeout is raised from 5 s to
60 s, as PlainStore's, so that 16 threads queueing for the single writer wait rather than fail.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from sqlalchemy.engine import make_url
from taskflow import engines, task
from taskflow.patterns import linear_flow
from taskflow.persistence import backends, models

from bench.workload import AgentCaller, Copy, PlainStore, TemplateJob

POOL_SIZE = 16
SQLITE_BUSY_TIMEOUT_S = 60


class InsertJob(task.Task):
    def __init__(self, job: TemplateJob) -> None:
        super().__init__(name="insert-job")
        self.job = job

    def execute(self, plain_store: PlainStore) -> None:
        plain_store.insert_job(self.job)


class StartCopy(task.Task):
    def __init__(self, index: int, copy: Copy) -> None:
        super().__init__(name=f"start-copy-{index}", provides=f"vdsm_task_id_{index}")
        self.copy = copy

    def execute(self, agent_caller: AgentCaller) -> str:
        return agent_caller.start_copy(self.copy)


class StoreAgentId(task.Task):
    def __init__(self, index: int, copy: Copy) -> None:
        super().__init__(
            name=f"store-agent-id-{index}", rebind={"vdsm_task_id": f"vdsm_task_id_{index}"}
        )
        self.copy = copy

    def execute(self, plain_store: PlainStore, vdsm_task_id: str) -> None:
        plain_store.store_agent_id(self.copy.task_id, vdsm_task_id)


def template_job_flow(command_id: str, name: str, copies: list[dict[str, str]]) -> Any:
    """The flow factory; its arguments are JSON, as TaskFlow stores them in the flow detail."""
    job = TemplateJob(command_id, name, tuple(Copy(**c) for c in copies))
    flow = linear_flow.Flow(f"template-job-{command_id}").add(InsertJob(job))
    for index, copy in enumerate(job.copies):
        flow.add(StartCopy(index, copy), StoreAgentId(index, copy))
    return flow


def backend_conf(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return {
            "connection": url,
            "engine_args": {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}},
        }
    return {
        "connection": parsed.set(drivername="postgresql+psycopg").render_as_string(
            hide_password=False
        ),
        "max_pool_size": POOL_SIZE,
        "max_overflow": 0,
    }


class TaskflowPeer:
    """The template job as one TaskFlow flow per job, in its own logbook."""

    name = "TaskFlow"

    def __init__(self, url: str, agent_address: str) -> None:
        self.store = PlainStore(url)
        self.agent = AgentCaller(agent_address)
        self.backend = backends.fetch(backend_conf(url))
        with contextlib.closing(self.backend.get_connection()) as conn:
            conn.upgrade()

    def submit(self, job: TemplateJob) -> None:
        book = models.LogBook(job.name, uuid=job.command_id)
        engine = engines.load_from_factory(
            template_job_flow,
            factory_kwargs={
                "command_id": job.command_id,
                "name": job.name,
                "copies": [dataclasses.asdict(c) for c in job.copies],
            },
            book=book,
            backend=self.backend,
            engine="serial",
        )
        engine.storage.inject(
            {"plain_store": self.store, "agent_caller": self.agent}, transient=True
        )
        engine.run()

    def close(self) -> None:
        self.backend.close()
        self.store.close()
        self.agent.close()
