"""What `execute` works through (lifecycle.py): a command's unsent placeholders, its children
and the hosts they were assigned to."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandRecord
from engine_service.domain.tasks import AsyncTask, TaskPlan, Verb
from engine_service.service_layer.commands.base import CommandBase
from engine_service.service_layer.host_selection import HostSnapshot


@dataclass(frozen=True)
class Pending:
    """A placeholder whose agent task is still to be started."""

    task_id: str
    host_id: str
    command_id: str
    verb: str
    args: dict[str, Any]

    @classmethod
    def of(cls, task: AsyncTask) -> Pending:
        return cls(task.task_id, task.host_id, task.command_id, task.verb, dict(task.args))

    def placeholder(self, root_id: str) -> AsyncTask:
        """This task as a record, made by the one factory of placeholders."""
        plan = TaskPlan(Verb(self.verb), self.args)
        return AsyncTask.placeholder(
            plan, self.command_id, root_id, self.host_id, utcnow(), self.task_id
        )


@dataclass
class Plan:
    """What `execute` works through: a command's children, its unsent placeholders, and the
    hosts they were assigned to."""

    children: dict[str, CommandBase[Any]]
    pending: list[Pending]
    hosts: HostSnapshot
    # What the submission wrote, kept to answer its client without reading it back (`held`);
    # empty for a plan read back from the database.
    records: list[CommandRecord] = field(default_factory=list)
    placeholders: list[AsyncTask] = field(default_factory=list)
    entity: object | None = None

    def held(self, stored: Stored) -> Held | None:
        """The command as its submission left it, once `stored` says every start was accepted
        and its agent id stored; None for a plan read back."""
        if not self.records:
            return None
        tasks = [
            dataclasses.replace(
                t,
                host_id=stored.hosts[t.task_id],
                vdsm_task_id=stored.agent_ids[t.task_id],
                submitted_at=stored.at,
            )
            for t in self.placeholders
        ]
        return Held(self.records, tasks, self.entity)


@dataclass(frozen=True)
class Stored:
    """Every start of a plan accepted and its agent id stored, in the commit made at `at`."""

    at: datetime
    hosts: dict[str, str]  # task id -> the host it was started on
    agent_ids: dict[str, str]  # task id -> the agent's task id


@dataclass(frozen=True)
class Held:
    """A command as its submission left it: its records (the command first), its tasks with
    their agents' ids and the entity it made, if the type says which. Nothing else can have
    changed it by then: an end deletes a command's placeholders in the transaction that ends
    it, so that storing every agent id on them shows it was still ACTIVE."""

    records: list[CommandRecord]
    tasks: list[AsyncTask]
    entity: object | None
