"""The work every contender of the submission benchmark does, and the plain way to do it.

One *template job* is what AddVmTemplate makes durable before it returns: a command with four
child tasks, each a CopyImage on an agent. Written plainly (the floor) that is:

1. one transaction inserting 5 rows: the command and its 4 task placeholders (ids made here);
2. for each task, one CopyImage RPC to the agent, with the task id as the request id;
3. after each RPC, one transaction storing the agent's task id in the placeholder.

`PlainStore` holds the SQL of steps 1 and 3 (plain DBAPI: sqlite3 or psycopg, with the same
durability settings as the engine: WAL + synchronous=FULL on SQLite, synchronous_commit=on on
PostgreSQL), and `AgentCaller` the RPC of step 2. The floor and the peers (DBOS, TaskFlow) all
use these two, so that they differ only in how they drive the steps.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import psycopg
from sqlalchemy.engine import make_url

from vdsm_agent.v1 import agent_service_pb2 as pb
from vdsm_agent.v1 import agent_service_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class Copy:
    """One CopyImage; `task_id` is the placeholder's id and the agent request id."""

    task_id: str
    src_storage_domain_id: str
    src_image_id: str
    dst_storage_domain_id: str
    dst_image_id: str


@dataclass(frozen=True)
class TemplateJob:
    command_id: str
    name: str
    copies: tuple[Copy, ...]

    @classmethod
    def new(
        cls, name: str, sources: list[tuple[str, str]], dst_storage_domain_id: str
    ) -> TemplateJob:
        """A job copying `sources` ((storage domain id, image id) pairs) to new images."""
        return cls(
            str(uuid.uuid4()),
            name,
            tuple(
                Copy(str(uuid.uuid4()), sd, image, dst_storage_domain_id, str(uuid.uuid4()))
                for sd, image in sources
            ),
        )


class Contender(Protocol):
    """One way of doing a template job durably; `submit` returns when the job is accepted
    (every agent id stored), not when the copies end. Safe to call from many threads."""

    name: str

    def submit(self, job: TemplateJob) -> None: ...

    def close(self) -> None: ...


class AgentCaller:
    """Step 2: CopyImage on one agent. Thread-safe (one shared channel)."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.AgentServiceStub(self.channel)

    def start_copy(self, copy: Copy) -> str:
        reply = self.stub.CopyImage(
            pb.CopyImageRequest(
                request_id=copy.task_id,
                src_storage_domain_id=copy.src_storage_domain_id,
                src_image_id=copy.src_image_id,
                dst_storage_domain_id=copy.dst_storage_domain_id,
                dst_image_id=copy.dst_image_id,
            ),
            timeout=30,
        )
        return str(reply.task_id)

    def close(self) -> None:
        self.channel.close()


SCHEMA = (
    """CREATE TABLE IF NOT EXISTS plain_commands (
        command_id VARCHAR(36) PRIMARY KEY,
        name VARCHAR(255) NOT NULL UNIQUE,
        status VARCHAR(20) NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS plain_tasks (
        task_id VARCHAR(36) PRIMARY KEY,
        command_id VARCHAR(36) NOT NULL REFERENCES plain_commands (command_id),
        vdsm_task_id VARCHAR(36),
        src_storage_domain_id VARCHAR(36) NOT NULL,
        src_image_id VARCHAR(36) NOT NULL,
        dst_storage_domain_id VARCHAR(36) NOT NULL,
        dst_image_id VARCHAR(36) NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
)


class PlainStore:
    """Steps 1 and 3 in plain SQL over plain DBAPI connections, kept in a pool: a transaction
    takes an idle one (or opens one) and gives it back, so there are never more connections
    than threads at once."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        self.path = parsed.database or ""
        self.dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        self.mark = "?" if self.sqlite else "%s"
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        with self.transaction() as cur:
            for statement in SCHEMA:
                cur.execute(statement)

    def _connect(self) -> Any:
        conn: Any
        if self.sqlite:
            conn = sqlite3.connect(
                self.path, timeout=60, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            return conn
        conn = psycopg.connect(self.dsn, autocommit=True)
        conn.execute("SET synchronous_commit = on")
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
            with self._lock:
                self._all.append(conn)
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE" if self.sqlite else "BEGIN")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        finally:
            self._idle.put(conn)

    def insert_job(self, job: TemplateJob) -> None:
        """Step 1: the command and its placeholders, in one transaction."""
        m = self.mark
        with self.transaction() as cur:
            cur.execute(
                f"INSERT INTO plain_commands (command_id, name, status) VALUES ({m}, {m}, {m})",
                (job.command_id, job.name, "ACTIVE"),
            )
            cur.executemany(
                "INSERT INTO plain_tasks (task_id, command_id, src_storage_domain_id, "
                "src_image_id, dst_storage_domain_id, dst_image_id) "
                f"VALUES ({m}, {m}, {m}, {m}, {m}, {m})",
                [
                    (
                        c.task_id,
                        job.command_id,
                        c.src_storage_domain_id,
                        c.src_image_id,
                        c.dst_storage_domain_id,
                        c.dst_image_id,
                    )
                    for c in job.copies
                ],
            )

    def store_agent_id(self, task_id: str, vdsm_task_id: str) -> None:
        """Step 3: one placeholder gets the agent's task id, in its own transaction."""
        m = self.mark
        with self.transaction() as cur:
            cur.execute(
                f"UPDATE plain_tasks SET vdsm_task_id = {m} WHERE task_id = {m}",
                (vdsm_task_id, task_id),
            )

    def count_submitted(self) -> tuple[int, int]:
        """(commands, tasks with an agent id): what a contender made durable."""
        with self.transaction() as cur:
            cur.execute("SELECT count(*) FROM plain_commands")
            commands = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM plain_tasks WHERE vdsm_task_id IS NOT NULL")
            tasks = cur.fetchone()[0]
        return int(commands), int(tasks)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


class Floor:
    """The floor: the three steps, nothing else."""

    name = "floor"

    def __init__(self, url: str, agent_address: str) -> None:
        self.store = PlainStore(url)
        self.agent = AgentCaller(agent_address)

    def submit(self, job: TemplateJob) -> None:
        self.store.insert_job(job)
        for copy in job.copies:
            self.store.store_agent_id(copy.task_id, self.agent.start_copy(copy))

    def close(self) -> None:
        self.store.close()
        self.agent.close()
