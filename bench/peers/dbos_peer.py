"""The template job as a DBOS workflow (peer of the floor in benchmark 2).

Mapping: one `@DBOS.workflow` per job, with the command id as its workflow id. Its body is
`insert_job` (a step), then per copy `start_copy` (a step: the agent RPC, whose result, the
agent task id, DBOS checkpoints) and `store_agent_id` (a step). Each step runs the floor's own
code (`PlainStore`, `AgentCaller`); DBOS adds its checkpoints around them. DBOS's system
database is the benchmark's database: on SQLite the very same file (DBOS puts its tables next
to the job tables), on PostgreSQL the same database (DBOS's tables live in its `dbos` schema).

DBOS is a process-wide singleton and its workflow functions are registered once, at import,
so steps reach the peer's store and agent through a module-level slot: one DbosPeer may be
open at a time; `close()` destroys DBOS so that another can be opened later in the process.

Steps, not DBOS transactions: since DBOS 3.0 database writes that commit atomically with their
checkpoint are "datasource transactions" on DBOS's own SQLAlchemy session; the job rows are
written by `PlainStore` on its own connection, so they run as steps (at least once).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from dbos import DBOS, DBOSConfig, SetWorkflowID

from bench.workload import AgentCaller, Copy, PlainStore, TemplateJob


@dataclass(frozen=True)
class _Resources:
    store: PlainStore
    agent: AgentCaller


_active: _Resources | None = None
_active_lock = threading.Lock()


def _resources() -> _Resources:
    if _active is None:
        raise RuntimeError("no DbosPeer is open")
    return _active


@DBOS.step()
def insert_job(job: TemplateJob) -> None:
    _resources().store.insert_job(job)


@DBOS.step()
def start_copy(copy: Copy) -> str:
    return _resources().agent.start_copy(copy)


@DBOS.step()
def store_agent_id(task_id: str, vdsm_task_id: str) -> None:
    _resources().store.store_agent_id(task_id, vdsm_task_id)


@DBOS.workflow()
def template_job(job: TemplateJob) -> None:
    insert_job(job)
    for copy in job.copies:
        store_agent_id(copy.task_id, start_copy(copy))


class DbosPeer:
    """The template job as one DBOS workflow, run to completion in the submitting thread."""

    name = "DBOS"

    def __init__(self, url: str, agent_address: str) -> None:
        global _active
        with _active_lock:
            if _active is not None:
                raise RuntimeError("DBOS is a process-wide singleton: close the open DbosPeer")
            # PlainStore first: it creates the job tables and, on SQLite, sets WAL mode.
            store = PlainStore(url)
            _active = _Resources(store, AgentCaller(agent_address))
        config: DBOSConfig = {
            "name": "bench-dbos",
            "system_database_url": url,
            "log_level": "WARNING",
            "enable_otlp": False,  # no telemetry export; no conductor_key: no Conductor
        }
        try:
            DBOS(config=config)
            DBOS.launch()
        except BaseException:
            self.close()
            raise

    def submit(self, job: TemplateJob) -> None:
        with SetWorkflowID(job.command_id):
            template_job(job)

    def close(self) -> None:
        global _active
        DBOS.destroy()
        with _active_lock:
            if _active is not None:
                _active.store.close()
                _active.agent.close()
            _active = None
