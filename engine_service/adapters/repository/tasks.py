"""Async tasks: placeholders, agent ids, statuses from polls, cleanup."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, select, update

from engine_service.adapters.orm import TASKS, TaskRow
from engine_service.adapters.repository.shared import Part, chunks
from engine_service.domain.tasks import AsyncTask, TaskCleanup, TaskUpdate, TaskView
from service_common.vdsm_tasks import TaskState

_STATUS_COLUMNS = [TASKS.c[name] for name in TaskView.__dataclass_fields__]
# Built once: building a statement costs about as much Python as executing it (a submission
# stores an agent id per task).
_STORE_AGENT_ID = (
    TASKS.update()
    .where(TASKS.c.task_id == bindparam("placeholder"))
    .values(vdsm_task_id=bindparam("agent_id"), submitted_at=bindparam("at"))
)
_UNSENT = (TASKS.c.vdsm_task_id.is_(None), TASKS.c.cleanup == TaskCleanup.NONE)


class TaskQueries(Part):
    """The async_tasks table."""

    def task(self, task_id: str) -> AsyncTask | None:
        found = self._objects(AsyncTask, select(TASKS).where(TASKS.c.task_id == task_id))
        return found[0] if found else None

    def tasks_of(self, root_id: str) -> list[AsyncTask]:
        return self.tasks_of_many([root_id])

    def tasks_of_many(self, root_ids: Iterable[str]) -> list[AsyncTask]:
        root_ids = list(root_ids)
        if not root_ids:
            return []
        query = (
            select(TASKS)
            .where(TASKS.c.root_command_id.in_(root_ids))
            .order_by(TASKS.c.created_at, TASKS.c.task_id)
        )
        return self._objects(AsyncTask, query)

    def add_tasks(self, tasks: Iterable[AsyncTask]) -> None:
        self._insert(TASKS, [dict(vars(t)) for t in tasks])

    def move_task(self, task_id: str, host_id: str) -> None:
        self.db.execute(TASKS.update().where(TASKS.c.task_id == task_id).values(host_id=host_id))

    def active_tasks(
        self, host_ids: Sequence[str] | None = None, decidable_only: bool = False
    ) -> list[TaskView]:
        """Tasks of commands that are still ACTIVE (on `host_ids`, if given; of commands with
        at least one FINISHED task, if `decidable_only`), as status views: a poll reads the
        tasks in flight, and loading thousands of whole rows each cycle cost it the most."""
        query = select(*_STATUS_COLUMNS).where(TASKS.c.cleanup == TaskCleanup.NONE)
        if host_ids is not None:
            query = query.where(TASKS.c.host_id.in_(list(host_ids)))
        if decidable_only:
            finished = select(TASKS.c.root_command_id).where(
                TASKS.c.cleanup == TaskCleanup.NONE, TASKS.c.state == TaskState.FINISHED
            )
            query = query.where(TASKS.c.root_command_id.in_(finished))
        return self._objects(TaskView, query)

    def submitted_tasks_on(self, host_ids: Sequence[str]) -> list[TaskView]:
        """The tasks on these hosts that have an agent id."""
        if not host_ids:
            return []
        query = select(*_STATUS_COLUMNS).where(
            TASKS.c.host_id.in_(list(host_ids)), TASKS.c.vdsm_task_id.is_not(None)
        )
        return self._objects(TaskView, query)

    def tasks_to_clean(self) -> list[AsyncTask]:
        return self._objects(AsyncTask, select(TASKS).where(TASKS.c.cleanup != TaskCleanup.NONE))

    def active_placeholders(self) -> list[AsyncTask]:
        return self._objects(AsyncTask, select(TASKS).where(*_UNSENT))

    def set_vdsm_task_id(self, task_id: str, vdsm_task_id: str, now: datetime) -> bool:
        """Store the agent's id on a placeholder; False if the placeholder is gone."""
        result = self.db.execute(
            _STORE_AGENT_ID, {"placeholder": task_id, "agent_id": vdsm_task_id, "at": now}
        )
        return bool(result.rowcount == 1)

    def set_vdsm_task_ids(self, agent_ids: Mapping[str, str], now: datetime) -> set[str]:
        """Store the agents' ids on their placeholders (task id -> agent id) in one
        executemany; returns the task ids stored (a placeholder that is gone is not)."""
        if not agent_ids:
            return set()
        values = [{"placeholder": t, "agent_id": a, "at": now} for t, a in agent_ids.items()]
        result = self.db.execute(_STORE_AGENT_ID, values)
        if result.rowcount == len(values):
            return set(agent_ids)
        return self.known_among("task_id", list(agent_ids))

    def update_tasks(self, updates: Sequence[TaskUpdate]) -> None:
        """One executemany for a whole poll."""
        if updates:
            values: list[dict[str, Any]] = [{"task_id": u.task_id, **u.values} for u in updates]
            # ORM bulk UPDATE by primary key: one executemany per set of changed columns.
            self.session.execute(update(TaskRow), values)

    def mark_unresolved(self, task_ids: Sequence[str]) -> None:
        """Placeholders that may or may not have reached an agent that did not answer: kept
        as debt to compensate, looked up by request id when the host answers again."""
        if task_ids:
            self.db.execute(
                TASKS.update()
                .where(TASKS.c.task_id.in_(list(task_ids)))
                .values(cleanup=TaskCleanup.COMPENSATE)
            )

    def delete_tasks(self, task_ids: Sequence[str]) -> None:
        for chunk in chunks(task_ids):
            self.db.execute(TASKS.delete().where(TASKS.c.task_id.in_(chunk)))

    def known_among(
        self, column: Literal["task_id", "vdsm_task_id"], ids: Sequence[str]
    ) -> set[str]:
        """Which of `ids` the engine has as a task's `column`."""
        col = TASKS.c[column]
        found: set[str] = set()
        for chunk in chunks(ids):
            found.update(self.db.scalars(select(col).where(col.in_(chunk))))
        return found

    def placeholders_among(self, task_ids: Sequence[str]) -> set[str]:
        """Which of these task ids are placeholders (no agent id yet)."""
        found: set[str] = set()
        for chunk in chunks(task_ids):
            query = select(TASKS.c.task_id).where(
                TASKS.c.task_id.in_(chunk), TASKS.c.vdsm_task_id.is_(None)
            )
            found.update(self.db.scalars(query))
        return found
