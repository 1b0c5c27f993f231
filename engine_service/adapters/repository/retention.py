"""Retention (`--retention`): deleting, in bounded batches, the ended commands and the client
request ids that are older than the cutoff. Children go before their parents (they refer to
them), and so do whatever else names a command (request ids, locks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, tuple_

from engine_service.adapters.orm import CLIENT_REQUESTS, COMMANDS, EVENTS, LOCKS, TASKS
from engine_service.adapters.repository.shared import Part
from engine_service.domain.commands import CommandStatus


def _deleted(result: object) -> int:
    return int(result.rowcount)  # type: ignore[attr-defined]


def _prunable_commands(cutoff: datetime) -> Select[Any]:
    """Top-level commands that ended before `cutoff` with no task row left, oldest first."""
    has_tasks = (
        select(TASKS.c.task_id).where(TASKS.c.root_command_id == COMMANDS.c.command_id).exists()
    )
    return (
        select(COMMANDS.c.command_id)
        .where(
            COMMANDS.c.parent_id.is_(None),
            COMMANDS.c.status != CommandStatus.ACTIVE,
            COMMANDS.c.ended_at < cutoff,
            ~has_tasks,
        )
        .order_by(COMMANDS.c.ended_at)
    )


def _stray_requests(cutoff: datetime) -> Select[Any]:
    """Client request ids made before `cutoff` whose result is not an ACTIVE command."""
    active = (
        select(COMMANDS.c.command_id)
        .where(
            COMMANDS.c.command_id == CLIENT_REQUESTS.c.result_id,
            COMMANDS.c.status == CommandStatus.ACTIVE,
        )
        .exists()
    )
    return (
        select(CLIENT_REQUESTS.c.rpc, CLIENT_REQUESTS.c.request_id)
        .where(CLIENT_REQUESTS.c.created_at < cutoff, ~active)
        .correlate(None)  # its own scan of client_requests, not the DELETE's row
    )


class RetentionQueries(Part):
    """Set-based deletes of what retention no longer keeps."""

    def anything_to_prune(self, cutoff: datetime) -> bool:
        """Whether a pass would delete anything: two indexed reads, so that an idle pass never
        opens a writing transaction (on SQLite, the single writer's lock)."""
        return any(
            self.db.execute(query.limit(1)).first() is not None
            for query in (_prunable_commands(cutoff), _stray_requests(cutoff))
        )

    def prune_commands_ended_before(self, cutoff: datetime, limit: int) -> dict[str, int]:
        """Delete up to `limit` top-level commands that ended before `cutoff` (oldest first)
        and have no task row left (a command whose cleanup is still owed keeps everything),
        with their children, locks and client request ids. Returns what was deleted, by
        kind: `commands` (top-level), `child_commands`, `client_requests`."""
        ids = list(self.db.scalars(_prunable_commands(cutoff).limit(limit)))
        if not ids:
            return {"commands": 0, "child_commands": 0, "client_requests": 0}
        children = select(COMMANDS.c.command_id).where(COMMANDS.c.parent_id.in_(ids))
        requests = self.db.execute(
            CLIENT_REQUESTS.delete().where(CLIENT_REQUESTS.c.result_id.in_(ids))
        )
        # Their histories go with them.
        self.db.execute(EVENTS.delete().where(EVENTS.c.command_id.in_(ids)))
        # Locks are released when a command ends; none should be left, but one would block
        # the deletes below.
        self.db.execute(
            LOCKS.delete().where(LOCKS.c.command_id.in_(ids) | LOCKS.c.command_id.in_(children))
        )
        kids = self.db.execute(COMMANDS.delete().where(COMMANDS.c.parent_id.in_(ids)))
        roots = self.db.execute(COMMANDS.delete().where(COMMANDS.c.command_id.in_(ids)))
        return {
            "commands": _deleted(roots),
            "child_commands": _deleted(kids),
            "client_requests": _deleted(requests),
        }

    def prune_client_requests(self, cutoff: datetime, limit: int) -> int:
        """Delete up to `limit` client request ids made before `cutoff` whose result is not an
        ACTIVE command (AddHost's, AddVm's, those of ended commands); returns how many."""
        doomed = _stray_requests(cutoff).limit(limit)
        key = tuple_(CLIENT_REQUESTS.c.rpc, CLIENT_REQUESTS.c.request_id)
        return _deleted(self.db.execute(CLIENT_REQUESTS.delete().where(key.in_(doomed))))
