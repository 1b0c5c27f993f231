"""What `enginectl` prints: human tables, --json rendering, progress bars, errors and exits."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn, cast

import click
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from engine_service.v1 import engine_service_pb2 as pb

INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def die(message: str, code: int) -> NoReturn:
    """`error: MESSAGE` on stderr, then exit with CODE."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def as_dict(message: Message) -> dict[str, Any]:
    """The message for --json: every field by its proto name, zero and empty values included,
    an unset message field (a timestamp...) as null, enums by name, 64-bit integers as
    numbers where a double holds them exactly (as any JSON reader reads them), else strings."""
    shown = MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return complete(cast(Descriptor, message.DESCRIPTOR), shown)


def complete(descriptor: Descriptor, shown: dict[str, Any]) -> dict[str, Any]:
    """SHOWN, MessageToDict of a DESCRIPTOR message, with nulls and numbers (`as_dict`), its
    fields in the order the message declares them."""
    done: dict[str, Any] = {}
    for field in descriptor.fields:
        value = shown.get(field.name)
        if value is None:  # a field with presence (a message) that is unset
            done[field.name] = None
        elif field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            done[field.name] = {k: one(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            done[field.name] = [one(field, v) for v in value]
        else:
            done[field.name] = one(field, value)
    return done


def one(field: FieldDescriptor, value: Any) -> Any:
    """One value of FIELD as `as_dict` shows it."""
    if field.message_type is not None:
        if field.message_type.full_name.startswith("google.protobuf."):
            return value  # a well-known type has a JSON form of its own (a timestamp's string)
        return complete(field.message_type, value)
    if field.type in INT64_TYPES and isinstance(value, str):
        number = int(value)
        return number if float(number) == number else value
    return value


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


def table(header: str, show: Callable[[Any], None], items: Iterable[Any]) -> None:
    """A header row naming the columns, then one row per item (SHOW prints one)."""
    click.echo(header)
    each(show, items)


def print_started(show: Callable[[Any], None], entity: Message, cmd: pb.Command) -> None:
    if entity.ByteSize():  # unset: the command ended already and took the entity with it
        show(entity)
    click.echo(f"command {cmd.command_id}")


def name_of(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix)


def status_name(value: int) -> str:
    return name_of(pb.CommandStatus, value, "COMMAND_STATUS_")


def bar(percent: int, width: int = 30) -> str:
    filled = width * percent // 100
    return "[" + "#" * filled + "." * (width - filled) + f"] {percent:3d}%"


# Each header names the columns of its printer's rows, each name where the values start.
HOST_HEADER = f"{'HOST_ID':<36}  {'NAME':<16} {'ADDRESS':<22} {'STATUS':<15} TASKS"
DOMAIN_HEADER = f"{'STORAGE_DOMAIN_ID':<36}  NAME"
DISK_HEADER = f"{'DISK_ID':<36}  {'NAME':<20} {'SIZE':>14}  {'STATUS':<8} DOMAIN"
TEMPLATE_HEADER = f"{'TEMPLATE_ID':<36}  {'NAME':<20} {'STATUS':<8} {'VM':<39} DISKS"
COMMAND_HEADER = (
    f"{'COMMAND_ID':<36}  {'TYPE':<14} {'STATUS':<10} DONE  {'TASKS':<7}  FAILURE_REASON"
)


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


def print_domain(d: pb.StorageDomain) -> None:
    click.echo(f"{d.storage_domain_id}  {d.name}")


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


def print_history(events: Sequence[pb.CommandEvent], hosts: dict[str, str]) -> None:
    """A readable timeline: when (and + seconds since the first event), what, which task on
    which host (by name; a removed host by its id), and the details."""
    if not events:
        click.echo("(no events)")
        return
    start = events[0].time.ToDatetime()
    for e in events:
        at = e.time.ToDatetime()
        task = f"  task {e.task_id[:8]}" if e.task_id else ""
        host = f" on {hosts.get(e.host_id, e.host_id[:8])}" if e.host_id else ""
        details = f"  {e.message}" if e.message else ""
        click.echo(
            f"{at:%Y-%m-%d %H:%M:%S} +{(at - start).total_seconds():7.2f}s  "
            f"{e.kind:<18}{task}{host}{details}"
        )
