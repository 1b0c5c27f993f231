"""What `enginectl` prints: human tables, --json rendering, progress bars, errors and exits."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import click
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from engine_service.v1 import engine_service_pb2 as pb


def die(message: str, code: int) -> NoReturn:
    """`error: MESSAGE` on stderr, then exit with CODE."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def as_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def render(message: Message, as_json: bool, human: Callable[[], None]) -> None:
    """The reply as indented JSON (--json), otherwise whatever HUMAN prints."""
    if as_json:
        click.echo(json.dumps(as_dict(message), indent=2))
    else:
        human()


def json_line(message: Message) -> None:
    """The message as JSON on one line (one per message of a stream)."""
    click.echo(json.dumps(as_dict(message)))


def each(show: Callable[[Any], None], items: Iterable[Any]) -> None:
    for item in items:
        show(item)


def print_started(show: Callable[[Any], None], entity: Message, cmd: pb.Command) -> None:
    show(entity)
    click.echo(f"command {cmd.command_id}")


def name_of(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix)


def status_name(value: int) -> str:
    return name_of(pb.CommandStatus, value, "COMMAND_STATUS_")


def bar(percent: int, width: int = 30) -> str:
    filled = width * percent // 100
    return "[" + "#" * filled + "." * (width - filled) + f"] {percent:3d}%"


def print_host(h: pb.Host) -> None:
    notes = []
    if h.HasField("unreachable_since"):
        since = h.unreachable_since.ToDatetime()
        notes.append(f"not answering since {since:%Y-%m-%d %H:%M:%S} UTC")
    if h.HasField("confirmed_rebooted_at"):
        at = h.confirmed_rebooted_at.ToDatetime()
        notes.append(
            f"confirmed rebooted {at:%Y-%m-%d %H:%M:%S} UTC by {h.confirmed_rebooted_by}: "
            f"{h.confirmed_rebooted_reason}"
        )
    click.echo(
        f"{h.host_id}  {h.name:<16} {h.address:<22} "
        f"{name_of(pb.HostStatus, h.status, 'HOST_STATUS_'):<15} tasks={h.tasks_in_flight}"
        + "".join(f"  ({note})" for note in notes)
    )


def print_disk(d: pb.Disk) -> None:
    click.echo(
        f"{d.disk_id}  {d.name:<20} {d.size_bytes:>12} B  "
        f"{name_of(pb.DiskStatus, d.status, 'DISK_STATUS_'):<8} domain={d.storage_domain_id}"
    )


def print_template(t: pb.VmTemplate) -> None:
    click.echo(
        f"{t.template_id}  {t.name:<20} "
        f"{name_of(pb.TemplateStatus, t.status, 'TEMPLATE_STATUS_'):<8} vm={t.vm_id} "
        f"disks={len(t.disk_ids)}"
    )


def print_command(cmd: pb.Command) -> None:
    reason = f"  {cmd.failure_reason}" if cmd.failure_reason else ""
    click.echo(
        f"{cmd.command_id}  {cmd.action_type:<14} {status_name(cmd.status):<10} "
        f"{cmd.progress_percent:3d}%  tasks={len(cmd.tasks)}{reason}"
    )


def print_command_tree(cmd: pb.Command) -> None:
    """The command, then one line per child command and per task."""
    print_command(cmd)
    for child in cmd.child_commands:
        click.echo(
            "  child " + f"{child.command_id} {child.action_type} {status_name(child.status)}"
        )
    for task in cmd.tasks:
        click.echo(
            f"  task {task.task_id} agent={task.vdsm_task_id or '(placeholder)'} "
            f"{name_of(pb.TaskState, task.state, 'TASK_STATE_')} "
            f"{task.progress_percent}%"
        )


def watch_lines(cmd: pb.Command) -> list[str]:
    """The command's progress bar, then one per task."""
    lines = [f"{cmd.action_type} {status_name(cmd.status):<10} {bar(cmd.progress_percent)}"]
    lines += [
        f"  task {t.task_id[:8]} {t.verb:<12} "
        f"{name_of(pb.TaskState, t.state, 'TASK_STATE_').lower():<11}"
        f"{bar(t.progress_percent)}"
        for t in cmd.tasks
    ]
    return lines
