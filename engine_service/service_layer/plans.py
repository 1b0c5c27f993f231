"""What `execute` works through (lifecycle.py): a command's unsent placeholders, its children
and the hosts they were assigned to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine_service.domain.clock import utcnow
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
