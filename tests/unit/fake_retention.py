"""The fake repository's listing and retention methods (a part of FakeRepository, as
`listing` in commands.py and retention.py are parts of the SQL repository)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING

from engine_service.domain.commands import CommandFilter, CommandRecord, CommandStatus

if TYPE_CHECKING:
    from tests.unit.fake_repository import Store


class FakeRetention:
    """command_page, prune_commands_ended_before and prune_client_requests over the Store."""

    store: Store

    def command_page(
        self, where: CommandFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[CommandRecord]:
        """Top-level commands that `where` admits, newest first, after the keyset `after`."""
        found = [
            c
            for c in self.store.commands.values()
            if c.parent_id is None
            and where.admits(c)
            and (
                not where.host_id
                or any(
                    t.root_command_id == c.command_id and t.host_id == where.host_id
                    for t in self.store.tasks.values()
                )
            )
            and (after is None or (c.created_at, c.command_id) < after)
        ]
        found.sort(key=lambda c: (c.created_at, c.command_id), reverse=True)
        return copy.deepcopy(found[:limit])

    def prune_commands_ended_before(self, cutoff: datetime, limit: int) -> dict[str, int]:
        """Up to `limit` ended top-level commands, oldest first, with no task left: deleted
        with their children, locks and request ids."""
        ids = {c.command_id for c in self._prunable(cutoff)[:limit]}
        children = {c.command_id for c in self.store.commands.values() if c.parent_id in ids}
        requests = [k for k, r in self.store.requests.items() if r.result_id in ids]
        for key in requests:
            del self.store.requests[key]
        for key in [k for k, lock in self.store.locks.items() if lock.command_id in ids | children]:
            del self.store.locks[key]
        self.store.events = [e for e in self.store.events if e.command_id not in ids]
        for command_id in children | ids:  # children first, as the foreign keys require
            del self.store.commands[command_id]
        return {
            "commands": len(ids),
            "child_commands": len(children),
            "client_requests": len(requests),
        }

    def _prunable(self, cutoff: datetime) -> list[CommandRecord]:
        rooted = {t.root_command_id for t in self.store.tasks.values()}
        ended = [
            c
            for c in self.store.commands.values()
            if c.parent_id is None
            and c.ended_at is not None
            and c.ended_at < cutoff
            and c.command_id not in rooted
        ]
        return sorted(ended, key=lambda c: c.ended_at or cutoff)

    def _stray(self, cutoff: datetime) -> list[tuple[str, str]]:
        active = {
            c.command_id for c in self.store.commands.values() if c.status is CommandStatus.ACTIVE
        }
        return [
            key
            for key, request in self.store.requests.items()
            if request.created_at < cutoff and request.result_id not in active
        ]

    def anything_to_prune(self, cutoff: datetime) -> bool:
        return bool(self._prunable(cutoff) or self._stray(cutoff))

    def prune_client_requests(self, cutoff: datetime, limit: int) -> int:
        """Up to `limit` request ids made before `cutoff` whose result is not ACTIVE."""
        doomed = self._stray(cutoff)[:limit]
        for key in doomed:
            del self.store.requests[key]
        return len(doomed)
