"""Checks of the invariants of docs/design.md §5 from outside the engine: its database (read only),
the agents' task lists and the storage directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select

from engine_service.adapters.db import make_engine
from engine_service.adapters.orm import (
    CommandEventRow,
    CommandRow,
    DiskRow,
    EntityLockRow,
    TaskRow,
    TemplateRow,
)


@dataclass(frozen=True)
class DatabaseState:
    """What the engine\'s tables hold, for invariant checks (docs/design.md §5)."""

    commands: dict[str, int]  # status -> top-level commands
    task_rows: int
    placeholders: int  # task rows without an agent id
    locks: int
    locked_disks: int
    locked_templates: int


def database_state(url: str) -> DatabaseState:
    engine = make_engine(url)
    try:
        with engine.connect() as db:
            commands = dict(
                db.execute(
                    select(CommandRow.status, func.count())
                    .where(CommandRow.parent_id.is_(None))
                    .group_by(CommandRow.status)
                ).all()
            )

            def count(query: Select[Any]) -> int:
                return int(db.execute(query).scalar() or 0)

            return DatabaseState(
                commands={str(k): int(v) for k, v in commands.items()},
                task_rows=count(select(func.count()).select_from(TaskRow)),
                placeholders=count(
                    select(func.count()).select_from(TaskRow).where(TaskRow.vdsm_task_id.is_(None))
                ),
                locks=count(select(func.count()).select_from(EntityLockRow)),
                locked_disks=count(
                    select(func.count()).select_from(DiskRow).where(DiskRow.status == "LOCKED")
                ),
                locked_templates=count(
                    select(func.count())
                    .select_from(TemplateRow)
                    .where(TemplateRow.status == "LOCKED")
                ),
            )
    finally:
        engine.dispose()


def assert_settled(url: str) -> DatabaseState:
    """Nothing active, nothing locked, no task row left (every command settled), and every
    history agrees with its command (history_disagreements)."""
    state = database_state(url)
    assert state.commands.get("ACTIVE", 0) == 0, state
    assert (state.task_rows, state.placeholders, state.locks) == (0, 0, 0), state
    assert (state.locked_disks, state.locked_templates) == (0, 0), state
    problems = history_disagreements(url)
    assert problems == [], problems
    return state


def history_disagreements(url: str) -> list[str]:
    """Where a command's history says something its state does not, or misses something it
    holds (each event is written in the transaction of the change it records): every
    top-level command was accepted exactly once; a terminal one ended exactly once, with its
    status; an ACTIVE one never ended; no task was cleared, adopted or accepted twice."""
    engine = make_engine(url)
    problems: list[str] = []
    try:
        with engine.connect() as db:
            events: dict[str, list[tuple[str, str, str | None]]] = {}
            for command_id, kind, message, task_id in db.execute(
                select(
                    CommandEventRow.command_id,
                    CommandEventRow.kind,
                    CommandEventRow.message,
                    CommandEventRow.task_id,
                ).order_by(CommandEventRow.event_id)
            ):
                events.setdefault(command_id, []).append((str(kind), message, task_id))
            for command_id, status in db.execute(
                select(CommandRow.command_id, CommandRow.status).where(
                    CommandRow.parent_id.is_(None)
                )
            ):
                problems += disagreements_of(command_id, str(status), events.get(command_id, []))
    finally:
        engine.dispose()
    return problems


def disagreements_of(
    command_id: str, status: str, events: list[tuple[str, str, str | None]]
) -> list[str]:
    kinds = [kind for kind, _, _ in events]
    ends = [message for kind, message, _ in events if kind == "ended"]
    found = []
    if kinds.count("accepted") != 1:
        found.append(f"{command_id}: accepted {kinds.count('accepted')} times")
    if status == "ACTIVE" and ends:
        found.append(f"{command_id}: ACTIVE, but its history says it ended ({ends})")
    if status != "ACTIVE" and (len(ends) != 1 or not ends[0].startswith(status)):
        found.append(f"{command_id}: {status}, but its history's ends are {ends}")
    for kind in ("task_cleared", "task_adopted", "task_accepted"):
        tasks = [task for k, _, task in events if k == kind]
        if len(tasks) != len(set(tasks)):
            found.append(f"{command_id}: a task {kind} twice")
    return found


def storage_debris(url: str, storage_root: Path) -> list[str]:
    """Files under the storage root that are not the image of a disk the engine knows: partial
    files, and images a failed command left behind."""
    engine = make_engine(url)
    try:
        with engine.connect() as db:
            known = {
                (sd, image)
                for sd, image in db.execute(
                    select(DiskRow.storage_domain_id, DiskRow.image_id)
                ).all()
            }
    finally:
        engine.dispose()
    return sorted(
        str(p.relative_to(storage_root))
        for p in storage_root.rglob("*")
        if p.is_file() and (p.parent.parent.name, p.name) not in known
    )
