"""What each console page shows, built from the engine's use cases (the `Engine` the gRPC
servicer calls too) as plain JSON-ready dictionaries: the page is rendered from one, and its
JSON endpoint returns the very same one, which the page's script polls every second.

Text is formatted here (times in UTC, ages, percentages), so the script only copies it into the
page. Every row has a `key` (its id), by which the script updates rows in place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandFilter, CommandStatus
from engine_service.domain.history import CommandEvent
from engine_service.domain.hosts import HostStatus
from engine_service.service_layer.commands.base import CommandBase
from engine_service.service_layer.engine import Engine
from engine_service.service_layer.reconciliation import ReconcileReport
from engine_service.service_layer.views import (
    MAX_PAGE_SIZE,
    CommandView,
    HostView,
    TaskInfo,
)
from service_common.errors import InvalidArgument

Json = dict[str, Any]

COMMANDS_PER_PAGE = 50
MAX_EVENTS = 2000  # a command's timeline shows at most this many events (4 pages of 500)
LISTED_FAILED = 20  # failed command ids a reconciliation report links to


# -- text ------------------------------------------------------------------------------------


def when(instant: datetime | None) -> str:
    """An instant (naive UTC, as the engine keeps them) as `2026-01-31 12:00:01 UTC`."""
    return instant.strftime("%Y-%m-%d %H:%M:%S UTC") if instant else ""


def span(seconds: float) -> str:
    """A duration, to the second under a minute: `42 s`, `3 min 5 s`, `2 h 4 min`."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def ago(instant: datetime | None, now: datetime) -> str:
    """`2026-01-31 12:00:01 UTC (4 s ago)`; empty for no instant."""
    if instant is None:
        return ""
    return f"{when(instant)} ({span((now - instant).total_seconds())} ago)"


def short(identifier: str | None) -> str:
    """The first eight characters of an id, as people read it."""
    return (identifier or "")[:8]


# -- hosts -----------------------------------------------------------------------------------


def host_row(view: HostView, now: datetime) -> Json:
    """One host: status, whether it answers (and since when not), load, last seen."""
    host = view.host
    if host.unreachable_since is None:
        answering = "yes"
    else:
        silent = span((now - host.unreachable_since).total_seconds())
        answering = f"no, since {when(host.unreachable_since)} ({silent})"
    return {
        "key": host.host_id,
        "name": host.name,
        "address": host.address,
        "status": host.status.value,
        "answering": answering,
        "answers": "yes" if host.is_answering else "no",
        "tasks_in_flight": view.tasks_in_flight,
        "last_seen": ago(host.last_seen_at, now) or "never",
        "maintenance": "yes" if host.status is HostStatus.MAINTENANCE else "no",
    }


def hosts_view(engine: Engine, now: datetime | None = None) -> Json:
    """The hosts page: every host (`Engine.inventory.hosts()`)."""
    now = now or utcnow()
    rows = [host_row(view, now) for view in engine.inventory.hosts()]
    silent = sum(1 for row in rows if row["answers"] == "no")
    return {
        "hosts": rows,
        "empty": not rows,
        "summary": f"{len(rows)} host(s), {silent} not answering",
        "updated": when(now),
    }


# -- commands --------------------------------------------------------------------------------


def command_filter(status: str = "", action_type: str = "") -> CommandFilter:
    """The listing's filter from the page's parameters (`status` by name, any case)."""
    chosen: CommandStatus | None = None
    if status:
        try:
            chosen = CommandStatus(status.upper())
        except ValueError:
            known = ", ".join(s.value for s in CommandStatus)
            raise InvalidArgument("status", f"{status[:40]!r} is not one of: {known}") from None
    return CommandFilter(status=chosen, action_type=action_type)


def command_row(view: CommandView, now: datetime) -> Json:
    """A command (top-level or child) with its progress."""
    ended = view.ended_at
    took = ((ended or now) - view.created_at).total_seconds()
    return {
        "key": view.command_id,
        "command_id": view.command_id,
        "short_id": short(view.command_id),
        "href": f"/commands/{view.command_id}",
        "action_type": view.action_type,
        "status": view.status.value,
        "progress": view.progress_percent,
        "progress_text": f"{view.progress_percent}%",
        "created": ago(view.created_at, now),
        "duration": f"took {span(took)}" if ended else f"running for {span(took)}",
        "ended": when(ended),
        "failure_reason": view.failure_reason,
        "children": len(view.children),
        "tasks_left": len(view.tasks),
    }


def commands_view(
    engine: Engine,
    status: str = "",
    action_type: str = "",
    page: str = "",
    now: datetime | None = None,
) -> Json:
    """The commands page: a page of top-level commands, newest first (`Engine.commands`)."""
    now = now or utcnow()
    views, next_token = engine.commands(
        command_filter(status, action_type), COMMANDS_PER_PAGE, page
    )
    rows = [command_row(view, now) for view in views]
    shown = {"status": status, "type": action_type}
    older = urlencode({**{k: v for k, v in shown.items() if v}, "page": next_token})
    return {
        "commands": rows,
        "empty": not rows,
        "summary": f"{len(rows)} command(s) on this page"
        + (", newest first" if len(rows) > 1 else ""),
        "older_href": f"/commands?{older}" if next_token else "",
        "updated": when(now),
    }


def filter_choices() -> Json:
    """What the filter form offers: every status and every command type."""
    return {
        "statuses": [s.value for s in CommandStatus],
        "types": sorted(CommandBase.action_types()),
    }


# -- one command -----------------------------------------------------------------------------


def task_state(task: TaskInfo) -> str:
    """VDSM's state of a task, once a poll has seen it."""
    if task.state is not None:
        return task.state.value
    return "accepted, not polled yet" if task.vdsm_task_id else "placeholder"


def task_row(task: TaskInfo, host_names: dict[str, str]) -> Json:
    """A task still on record: its host, the agent's task id, state and progress."""
    return {
        "key": task.task_id,
        "task_id": task.task_id,
        "short_id": short(task.task_id),
        "child": short(task.command_id),
        "verb": task.verb,
        "host": host_names.get(task.host_id, short(task.host_id)),
        "vdsm_task_id": task.vdsm_task_id or "none yet (a placeholder)",
        "state": task_state(task),
        "result": task.result.value if task.result else "",
        "progress": task.progress_percent,
        "progress_text": f"{task.progress_percent}%",
        "message": task.message,
    }


def event_row(event: CommandEvent, host_names: dict[str, str]) -> Json:
    """One entry of a command's history."""
    return {
        "key": str(event.event_id),
        "time": when(event.time),
        "kind": event.kind.value,
        "message": event.message,
        "host": host_names.get(event.host_id or "", short(event.host_id)),
        "task": short(event.task_id),
    }


def history(engine: Engine, command_id: str) -> tuple[list[CommandEvent], bool]:
    """A top-level command's events, oldest first, up to MAX_EVENTS; whether there are more."""
    events: list[CommandEvent] = []
    token = ""
    while True:
        page, token = engine.command_events(command_id, MAX_PAGE_SIZE, token)
        events += page
        if not token or len(events) >= MAX_EVENTS:
            return events[:MAX_EVENTS], bool(token) or len(events) > MAX_EVENTS


def command_detail_view(engine: Engine, command_id: str, now: datetime | None = None) -> Json:
    """The page of one command (`Engine.command`): its children, each task with its host, and
    its history (`Engine.command_events`); a child's history is its parent's."""
    now = now or utcnow()
    view = engine.command(command_id)
    host_names = {h.host.host_id: h.host.name for h in engine.inventory.hosts()}
    events, more = ([], False) if view.parent_id else history(engine, view.command_id)
    return {
        "command": {
            **command_row(view, now),
            "target_id": view.target_id or "",
            "parent_href": f"/commands/{view.parent_id}" if view.parent_id else "",
            "parent_short_id": short(view.parent_id),
        },
        "children": [command_row(child, now) for child in view.children],
        "no_children": not view.children,
        "tasks": [task_row(task, host_names) for task in view.tasks],
        "no_tasks": not view.tasks,
        "events": [event_row(event, host_names) for event in events],
        "events_more": f"only the first {MAX_EVENTS} events are shown" if more else "",
        "updated": when(now),
    }


# -- reconciliation --------------------------------------------------------------------------


def report_view(report: ReconcileReport | None, at: datetime | None, now: datetime) -> Json:
    """A reconciliation report: what it counted, and links to the first commands it failed."""
    if report is None or at is None:
        return {"ran": False, "at": "not yet"}
    listed = report.failed_command_ids[:LISTED_FAILED]
    rest = report.failed_commands - len(listed)
    return {
        "ran": True,
        "at": ago(at, now) or "unknown",
        "failed_commands": report.failed_commands,
        "failed_at": when(report.failed_at) or "none failed",
        "removed_placeholders": report.removed_placeholders,
        "adopted_tasks": report.adopted_tasks,
        "cleared_zombies": report.cleared_zombies,
        "failed": [{"key": c, "href": f"/commands/{c}", "short_id": short(c)} for c in listed],
        "failed_rest": f"and {rest} more (filter the commands by FAILED)" if rest > 0 else "",
    }


def reconciliation_view(engine: Engine, now: datetime | None = None) -> Json:
    """The reports of the startup reconciliation and of the latest one (at startup or asked
    for with `enginectl reconcile`)."""
    now = now or utcnow()
    reconciler = engine.reconciler
    return {
        "startup": report_view(reconciler.startup_report, reconciler.startup_at, now),
        "last": report_view(reconciler.last_report, reconciler.last_at, now),
        "updated": when(now),
    }
