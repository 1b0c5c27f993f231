"""Commands, their entity locks, and client request ids."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, func, select

from engine_service.adapters.orm import CLIENT_REQUESTS, COMMANDS, LOCKS, TASKS
from engine_service.adapters.repository.shared import Part
from engine_service.domain.commands import CommandFilter, CommandRecord, CommandStatus, Outcome
from engine_service.domain.inventory import EntityLock
from engine_service.domain.requests import StoredRequest

_COMMAND_FAMILY = (
    select(COMMANDS)
    .where(
        (COMMANDS.c.command_id == bindparam("command_id"))
        | (COMMANDS.c.parent_id == bindparam("command_id"))
    )
    .order_by(COMMANDS.c.created_at, COMMANDS.c.command_id)
)
_TOP_LEVEL = COMMANDS.c.parent_id.is_(None)


def _conditions(where: CommandFilter) -> list[ColumnElement[bool]]:
    """The filter's conditions that are given, as SQL (CommandFilter.admits is the same in
    Python)."""
    c = where
    col = COMMANDS.c
    given: list[tuple[object, Callable[[], ColumnElement[bool]]]] = [
        (c.status, lambda: col.status == c.status),
        (c.ended_after, lambda: col.ended_at >= c.ended_after),
        (c.ended_before, lambda: col.ended_at < c.ended_before),
        (
            c.failure_reason_contains,
            lambda: col.failure_reason.icontains(c.failure_reason_contains, autoescape=True),
        ),
        (c.action_type, lambda: col.action_type == c.action_type),
        (c.target_id, lambda: col.target_id == c.target_id),
        (c.created_after, lambda: col.created_at >= c.created_after),
        (c.created_before, lambda: col.created_at < c.created_before),
        (
            c.host_id,
            lambda: col.command_id.in_(
                select(TASKS.c.root_command_id).where(TASKS.c.host_id == c.host_id)
            ),
        ),
    ]
    return [make() for value, make in given if value not in (None, "")]


class CommandQueries(Part):
    """The commands, entity_locks and client_requests tables."""

    def command(self, command_id: str) -> CommandRecord | None:
        found = self._objects(
            CommandRecord, select(COMMANDS).where(COMMANDS.c.command_id == command_id)
        )
        return found[0] if found else None

    def command_for_update(self, command_id: str) -> CommandRecord | None:
        """The command, its row locked until the transaction ends (PostgreSQL: a concurrent
        end waits for it; SQLite has one writer at a time anyway)."""
        query = select(COMMANDS).where(COMMANDS.c.command_id == command_id).with_for_update()
        found = self._objects(CommandRecord, query)
        return found[0] if found else None

    def commands_for_update(self, command_ids: Sequence[str]) -> dict[str, CommandRecord]:
        """These commands by id (the ones that exist), their rows locked until the transaction
        ends, in the order of their ids (two transactions locking some of the same commands
        take them in the same order)."""
        query = (
            select(COMMANDS)
            .where(COMMANDS.c.command_id.in_(list(command_ids)))
            .order_by(COMMANDS.c.command_id)
            .with_for_update()
        )
        return {c.command_id: c for c in self._objects(CommandRecord, query)}

    def command_family(self, command_id: str) -> list[CommandRecord]:
        """The command and its children (oldest first), in one query."""
        return self._objects(CommandRecord, _COMMAND_FAMILY, command_id=command_id)

    def children_of_many(self, command_ids: Sequence[str]) -> dict[str, list[CommandRecord]]:
        """Each command's children, oldest first, in one query."""
        found: dict[str, list[CommandRecord]] = {}
        if command_ids:
            query = (
                select(COMMANDS)
                .where(COMMANDS.c.parent_id.in_(list(command_ids)))
                .order_by(COMMANDS.c.created_at, COMMANDS.c.command_id)
            )
            for child in self._objects(CommandRecord, query):
                found.setdefault(str(child.parent_id), []).append(child)
        return found

    def command_page(
        self, where: CommandFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[CommandRecord]:
        """Top-level commands that `where` admits, newest first."""
        query = select(COMMANDS).where(_TOP_LEVEL, *_conditions(where))
        if after is not None:
            created_at, command_id = after
            query = query.where(
                (COMMANDS.c.created_at < created_at)
                | ((COMMANDS.c.created_at == created_at) & (COMMANDS.c.command_id < command_id))
            )
        query = query.order_by(COMMANDS.c.created_at.desc(), COMMANDS.c.command_id.desc())
        return self._objects(CommandRecord, query.limit(limit))

    def add_commands(self, commands: Iterable[CommandRecord]) -> None:
        """Parents before children: children refer to them."""
        self._insert(COMMANDS, [dict(vars(c)) for c in commands])

    def end_command_tree(self, root_id: str, outcome: Outcome, now: datetime) -> bool:
        """CommandRecord.end for a command and its children, as conditional UPDATEs: the
        condition on ACTIVE is what makes ending happen exactly once when the poller, a cancel
        and a reconciliation race. False if the command was not ACTIVE."""
        values = {"status": outcome.status, "failure_reason": outcome.reason, "ended_at": now}
        active = COMMANDS.c.status == CommandStatus.ACTIVE
        ended = self.db.execute(
            COMMANDS.update().where(COMMANDS.c.command_id == root_id, active).values(values)
        )
        if ended.rowcount != 1:
            return False
        self.db.execute(
            COMMANDS.update().where(COMMANDS.c.parent_id == root_id, active).values(values)
        )
        return True

    def end_command_trees(self, root_ids: Sequence[str], outcome: Outcome, now: datetime) -> int:
        """end_command_tree for many commands at once, in two statements; returns how many of
        them were ACTIVE and ended."""
        values = {"status": outcome.status, "failure_reason": outcome.reason, "ended_at": now}
        active = COMMANDS.c.status == CommandStatus.ACTIVE
        ended = self.db.execute(
            COMMANDS.update()
            .where(COMMANDS.c.command_id.in_(list(root_ids)), _TOP_LEVEL, active)
            .values(values)
        ).rowcount
        self.db.execute(
            COMMANDS.update().where(COMMANDS.c.parent_id.in_(list(root_ids)), active).values(values)
        )
        return int(ended)

    def active_root_ids(self) -> list[str]:
        return list(
            self.db.scalars(
                select(COMMANDS.c.command_id).where(
                    _TOP_LEVEL, COMMANDS.c.status == CommandStatus.ACTIVE
                )
            )
        )

    def count_active_roots(self) -> int:
        query = select(func.count()).where(_TOP_LEVEL, COMMANDS.c.status == CommandStatus.ACTIVE)
        return int(self.db.scalar(query.select_from(COMMANDS)) or 0)

    def active_roots_by_type(self) -> dict[str, int]:
        query = (
            select(COMMANDS.c.action_type, func.count())
            .where(_TOP_LEVEL, COMMANDS.c.status == CommandStatus.ACTIVE)
            .group_by(COMMANDS.c.action_type)
        )
        return {t: int(n) for t, n in self.db.execute(query).all()}

    def oldest_active_root_created_at(self) -> datetime | None:
        """When the oldest ACTIVE top-level command was accepted (ix_commands_listing)."""
        query = select(func.min(COMMANDS.c.created_at)).where(
            _TOP_LEVEL, COMMANDS.c.status == CommandStatus.ACTIVE
        )
        return self.db.scalar(query)

    # -- locks and client requests ---------------------------------------------------------

    def add_locks(self, locks: Iterable[EntityLock], now: datetime) -> None:
        self._insert(
            LOCKS,
            [
                {
                    "entity_type": lock.kind.value,
                    "entity_id": lock.entity_id,
                    "command_id": lock.command_id,
                    "created_at": now,
                }
                for lock in locks
            ],
        )

    def client_request(self, rpc: str, request_id: str) -> StoredRequest | None:
        query = select(
            CLIENT_REQUESTS.c.rpc,
            CLIENT_REQUESTS.c.request_id,
            CLIENT_REQUESTS.c.fingerprint,
            CLIENT_REQUESTS.c.result_id,
            CLIENT_REQUESTS.c.created_at,
        ).where(CLIENT_REQUESTS.c.rpc == rpc, CLIENT_REQUESTS.c.request_id == request_id)
        found = self._objects(StoredRequest, query)
        return found[0] if found else None

    def add_client_request(self, request: StoredRequest) -> None:
        self._insert(CLIENT_REQUESTS, [dict(vars(request))])
