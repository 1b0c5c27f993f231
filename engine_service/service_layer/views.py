"""Read models the entrypoints receive (never ORM rows): commands with their children and
tasks, hosts with their load, and keyset page tokens. Disks, storage domains, VMs and templates
are handed out as the domain's own frozen or detached objects."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from engine_service.adapters.repository import Repository
from engine_service.domain.commands import (
    CommandFilter,
    CommandRecord,
    CommandStatus,
    mean_progress,
)
from engine_service.domain.hosts import Host
from engine_service.domain.tasks import AsyncTask
from engine_service.service_layer.commands.base import CommandBase
from service_common.errors import InvalidArgument, NotFound
from service_common.ids import require_uuid
from service_common.vdsm_tasks import TaskResult, TaskState

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_FILTER_TEXT = 1000  # characters of failure_reason_contains


@dataclass(frozen=True)
class HostView:
    """A host and how many tasks it holds."""

    host: Host
    tasks_in_flight: int


@dataclass(frozen=True)
class TaskInfo:
    """A task as the API shows it."""

    task_id: str
    vdsm_task_id: str | None
    host_id: str
    state: TaskState | None
    result: TaskResult | None
    progress_percent: int
    verb: str
    command_id: str
    message: str


@dataclass
class CommandView:
    """A command with its progress, its children and the tasks still to be cleared."""

    command_id: str
    action_type: str
    status: CommandStatus
    progress_percent: int
    failure_reason: str
    parent_id: str | None
    target_id: str | None
    created_at: datetime
    ended_at: datetime | None
    tasks: list[TaskInfo] = field(default_factory=list)
    children: list[CommandView] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        """Terminal, and nothing left to clean up."""
        return self.status.terminal and not self.tasks


def _task_info(t: AsyncTask) -> TaskInfo:
    return TaskInfo(
        t.task_id,
        t.vdsm_task_id,
        t.host_id,
        t.state,
        t.result,
        t.progress_percent,
        t.verb,
        t.command_id,
        t.message,
    )


def _view(row: CommandRecord, tasks: Sequence[AsyncTask]) -> CommandView:
    status = row.status
    progress = 100 if status is CommandStatus.SUCCEEDED else mean_progress(tasks)
    return CommandView(
        row.command_id,
        row.action_type,
        status,
        progress,
        row.failure_reason,
        row.parent_id,
        row.target_id,
        row.created_at,
        row.ended_at,
        [_task_info(t) for t in tasks],
    )


def command_view(repo: Repository, command_id: str) -> CommandView:
    family = repo.command_family(command_id)  # the command and its children, in one query
    row = next((r for r in family if r.command_id == command_id), None)
    if row is None:
        raise NotFound(f"command_id: no command {command_id}")
    return command_views(repo, [row], {command_id: [r for r in family if r is not row]})[0]


def command_views(
    repo: Repository,
    rows: Sequence[CommandRecord],
    children: Mapping[str, Sequence[CommandRecord]] | None = None,
) -> list[CommandView]:
    """Views of commands (top-level or children): one query for the tasks of the whole list
    and, unless `children` (of each top-level row) is given, one for the children."""
    root_ids = [r.parent_id or r.command_id for r in rows]
    tasks = repo.tasks_of_many(set(root_ids))
    if children is None:
        children = repo.children_of_many([r.command_id for r in rows if r.parent_id is None])
    views = []
    for row in rows:
        if row.parent_id is not None:
            views.append(_view(row, [t for t in tasks if t.command_id == row.command_id]))
            continue
        mine = [t for t in tasks if t.root_command_id == row.command_id]
        views.append(_family_view(row, children.get(row.command_id, ()), mine))
    return views


def _family_view(
    row: CommandRecord, children: Sequence[CommandRecord], tasks: Sequence[AsyncTask]
) -> CommandView:
    """A top-level command's view with its children's, each with its own of `tasks`."""
    view = _view(row, tasks)
    view.children = [
        _view(child, [t for t in tasks if t.command_id == child.command_id]) for child in children
    ]
    return view


def held_view(records: Sequence[CommandRecord], tasks: Sequence[AsyncTask]) -> CommandView:
    """The view of a top-level command built from records this process holds (the command
    first, then its children, oldest first, and the tasks of them all), as `command_view`
    would read them back (in the same order)."""
    children = sorted(records[1:], key=lambda r: (r.created_at, r.command_id))
    return _family_view(
        records[0], children, sorted(tasks, key=lambda t: (t.created_at, t.task_id))
    )


def page_size(value: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", f"must not be negative, not {value}")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def checked_filter(where: CommandFilter) -> CommandFilter:
    """A listing's filter, refused with the field at fault if it cannot admit anything or is
    too long."""
    for name in ("ended", "created"):
        after, before = getattr(where, f"{name}_after"), getattr(where, f"{name}_before")
        if after is not None and before is not None and after >= before:
            raise InvalidArgument(
                f"{name}_after",
                f"must be before {name}_before ({before.isoformat()}), not {after.isoformat()}",
            )
    if where.target_id:
        require_uuid("target_id", where.target_id)
    if where.host_id:
        require_uuid("host_id", where.host_id)
    if where.action_type and where.action_type not in CommandBase.action_types():
        known = ", ".join(CommandBase.action_types())
        raise InvalidArgument("action_type", f"{where.action_type[:80]!r} is not one of: {known}")
    if len(where.failure_reason_contains) > MAX_FILTER_TEXT:
        raise InvalidArgument(
            "failure_reason_contains",
            f"at most {MAX_FILTER_TEXT} characters, not {len(where.failure_reason_contains)}",
        )
    return where


def encode_token(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str] | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created, row_id = json.loads(raw)
        return datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidArgument("page_token", "is not a token this server gave out") from None


def encode_event_token(event_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(["event", event_id]).encode()).decode().rstrip("=")


def decode_event_token(token: str) -> int:
    """The last event id a page ended with; 0 for the first page."""
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        tag, event_id = json.loads(raw)
        if tag == "event" and isinstance(event_id, int) and event_id >= 0:
            return event_id
    except (ValueError, TypeError, binascii.Error):
        pass
    raise InvalidArgument("page_token", "is not a token this server gave out")


def encode_name_token(kind: str, name: str) -> str:
    """The token of a page of `kind` (hosts, domains) listed by name that ended at `name`."""
    return base64.urlsafe_b64encode(json.dumps([kind, name]).encode()).decode().rstrip("=")


def decode_name_token(kind: str, token: str) -> str | None:
    """The name a page of `kind` ended with; None for the first page."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        tag, name = json.loads(raw)
        if tag == kind and isinstance(name, str):
            return name
    except (ValueError, TypeError, binascii.Error):
        pass
    raise InvalidArgument("page_token", "is not a token this server gave out")
