"""Commands' histories: events added in the caller's transaction, one by one or set-based for
a batch (reconciliation ends thousands of commands in one statement, and records their end the
same way), and read back a page at a time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select

from engine_service.adapters.orm import EVENTS, TASKS
from engine_service.adapters.repository.batches import ids_of
from engine_service.adapters.repository.shared import Part, chunks
from engine_service.domain.commands import CommandBatch
from engine_service.domain.history import CommandEvent, EventKind

_COLUMNS = ("command_id", "time", "kind", "message", "task_id", "host_id")


class HistoryQueries(Part):
    """The command_events table."""

    def add_events(self, events: Iterable[CommandEvent]) -> None:
        # event_id is given by the database, in insertion order. (Not dataclasses.asdict, which
        # copies recursively: it took about 7 % of a submission's Python.)
        rows = [
            {
                "command_id": e.command_id,
                "time": e.time,
                "kind": e.kind,
                "message": e.message,
                "task_id": e.task_id,
                "host_id": e.host_id,
            }
            for e in events
        ]
        self._insert(EVENTS, rows)

    def add_batch_event(
        self, batch: CommandBatch, kind: EventKind, message: str, at: datetime
    ) -> None:
        """One event per command of the batch, in one INSERT ... SELECT."""
        source = ids_of(batch).add_columns(
            literal(at, EVENTS.c.time.type),
            literal(kind, EVENTS.c.kind.type),
            literal(message, EVENTS.c.message.type),
        )
        self.db.execute(
            EVENTS.insert().from_select(["command_id", "time", "kind", "message"], source)
        )

    def add_events_for_tasks_on_host(
        self, host_id: str, kind: EventKind, message: str, at: datetime
    ) -> None:
        """One event per task row on a host, for its command, in one INSERT ... SELECT."""
        self._task_events(TASKS.c.host_id == host_id, kind, literal(message), at)

    def add_events_for_tasks(
        self, task_ids: Sequence[str], kind: EventKind, message: str, at: datetime
    ) -> None:
        """One event per task, for its command, set-based; the message ends with the task's
        agent id."""
        text = literal(message) + func.coalesce(TASKS.c.vdsm_task_id, "")
        for part in chunks(task_ids):
            self._task_events(TASKS.c.task_id.in_(part), kind, text, at)

    def _task_events(
        self, where: ColumnElement[bool], kind: EventKind, message: Any, at: datetime
    ) -> None:
        source = select(
            TASKS.c.root_command_id,
            literal(at, EVENTS.c.time.type),
            literal(kind, EVENTS.c.kind.type),
            message,
            TASKS.c.task_id,
            TASKS.c.host_id,
        ).where(where)
        self.db.execute(EVENTS.insert().from_select(list(_COLUMNS), source))

    def events_of(self, command_id: str, after_event_id: int, limit: int) -> list[CommandEvent]:
        """A command's events in the order they happened, after `after_event_id`."""
        query = (
            select(EVENTS)
            .where(EVENTS.c.command_id == command_id, EVENTS.c.event_id > after_event_id)
            .order_by(EVENTS.c.event_id)
            .limit(limit)
        )
        return self._objects(CommandEvent, query)
