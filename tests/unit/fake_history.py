"""The fake repository's history methods (a part of FakeRepository, as history.py is a part of
the SQL repository)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from engine_service.domain.commands import CommandBatch
from engine_service.domain.history import CommandEvent, EventKind

if TYPE_CHECKING:
    from tests.unit.fake_repository import Store


class FakeHistory:
    """add_events, add_batch_event, add_events_for_tasks_on_host and events_of over the Store."""

    store: Store

    def _in(self, batch: CommandBatch) -> list[str]:
        raise NotImplementedError  # FakeRepository's

    def add_events(self, events: Iterable[CommandEvent]) -> None:
        for event in events:
            assert event.command_id in self.store.commands, "foreign key: command_events"
            self.store.events.append(replace(event, event_id=len(self.store.events) + 1))

    def add_batch_event(
        self, batch: CommandBatch, kind: EventKind, message: str, at: datetime
    ) -> None:
        self.add_events(CommandEvent(c, at, kind, message) for c in self._in(batch))

    def add_events_for_tasks_on_host(
        self, host_id: str, kind: EventKind, message: str, at: datetime
    ) -> None:
        self.add_events(
            CommandEvent(t.root_command_id, at, kind, message, t.task_id, t.host_id)
            for t in self.store.tasks.values()
            if t.host_id == host_id
        )

    def add_events_for_tasks(
        self, task_ids: Sequence[str], kind: EventKind, message: str, at: datetime
    ) -> None:
        self.add_events(
            CommandEvent(
                t.root_command_id, at, kind, message + (t.vdsm_task_id or ""), t.task_id, t.host_id
            )
            for t in (self.store.tasks[i] for i in task_ids if i in self.store.tasks)
        )

    def events_of(self, command_id: str, after_event_id: int, limit: int) -> list[CommandEvent]:
        found = [
            e
            for e in self.store.events
            if e.command_id == command_id and e.event_id > after_event_id
        ]
        return copy.deepcopy(found[:limit])
