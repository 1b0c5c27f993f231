"""`enginectl command ...`: get, list, watch and cancel the engine's commands."""

from __future__ import annotations

import sys
from datetime import datetime

import click
import grpc

from engine_service.entrypoints.cli.calls import Client, fail, pages
from engine_service.entrypoints.cli.output import (
    each,
    json_line,
    print_command,
    print_command_tree,
    status_name,
    watch_lines,
)
from engine_service.entrypoints.cli.params import Instant
from engine_service.v1 import engine_service_pb2 as pb


@click.group()
def command() -> None:
    """Commands (the engine's durable units of work)."""


@command.command("get")
@click.argument("command_id")
@click.pass_obj
def command_get(c: Client, command_id: str) -> None:
    """One command, with its children and tasks."""
    reply = c.call("GetCommand", pb.GetCommandRequest(command_id=command_id))
    c.show(reply, lambda: print_command_tree(reply.command))


@command.command("list")
@click.option(
    "--status",
    type=click.Choice(["active", "succeeded", "failed", "cancelled"], case_sensitive=False),
    help="only these",
)
@click.option("--limit", default=50, show_default=True, help="at most this many")
@click.option(
    "--ended-after",
    type=Instant(),
    help="only those that ended at or after this instant (ISO 8601, UTC unless it says)",
)
@click.option("--ended-before", type=Instant(), help="only those that ended before this instant")
@click.option(
    "--failure-reason-contains",
    "reason",
    default="",
    help="only those whose failure reason contains this text (case-insensitive)",
)
@click.pass_obj
def command_list(
    c: Client,
    status: str | None,
    limit: int,
    ended_after: datetime | None,
    ended_before: datetime | None,
    reason: str,
) -> None:
    """Top-level commands, newest first."""
    value = pb.CommandStatus.Value(f"COMMAND_STATUS_{status.upper()}") if status else 0
    request = pb.ListCommandsRequest(status=value, page_size=min(limit, 500))  # type: ignore[arg-type]
    request.failure_reason_contains = reason
    if ended_after is not None:
        request.ended_after.FromDatetime(ended_after)
    if ended_before is not None:
        request.ended_before.FromDatetime(ended_before)
    found = []
    for cmd in pages(c, "ListCommands", request, "commands"):
        found.append(cmd)
        if len(found) >= limit:
            break
    c.show(pb.ListCommandsResponse(commands=found), lambda: each(print_command, found))


@command.command("watch")
@click.argument("command_id")
@click.pass_obj
def command_watch(c: Client, command_id: str) -> None:
    """Live progress until the command ends; exit 1 if it failed or was cancelled."""
    follow(c, command_id)


@command.command("cancel")
@click.argument("command_id")
@click.pass_obj
def command_cancel(c: Client, command_id: str) -> None:
    """Stop the command's tasks, delete what it made, end it CANCELLED."""
    reply = c.call("CancelCommand", pb.CancelCommandRequest(command_id=command_id))
    c.show(reply, lambda: print_command(reply.command))


class Progress:
    """Draws a watched command: bars redrawn in place on a terminal, else a line per ten percent."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.drawn = 0
        self.last_tens: dict[str, int] = {}

    def draw(self, cmd: pb.Command) -> None:
        lines = watch_lines(cmd)
        if self.tty:
            if self.drawn:
                click.echo(f"\x1b[{self.drawn}F\x1b[J", nl=False)
            click.echo("\n".join(lines))
            self.drawn = len(lines)
            return
        tens = cmd.progress_percent // 10
        if self.last_tens.get(cmd.command_id) != tens or cmd.status != pb.COMMAND_STATUS_ACTIVE:
            per_task = " ".join(f"{t.progress_percent}%" for t in cmd.tasks)
            click.echo(lines[0] + (f"  tasks: {per_task}" if per_task else ""))
            self.last_tens[cmd.command_id] = tens


def follow(c: Client, command_id: str) -> None:
    """Show WatchCommand's stream: one progress bar per task (redrawn on a terminal, one line per
    ten percent otherwise); exit 1 unless the command SUCCEEDED."""
    progress = Progress(tty=sys.stdout.isatty() and not c.as_json)
    final: pb.Command | None = None
    stream = c.stub.WatchCommand(pb.WatchCommandRequest(command_id=command_id))
    try:
        for message in stream:
            cmd = final = message.command
            if c.as_json:
                json_line(cmd)
            else:
                progress.draw(cmd)
    except grpc.RpcError as exc:
        fail(exc)
    if final is None:
        sys.exit(10)
    if not c.as_json:
        reason = f": {final.failure_reason}" if final.failure_reason else ""
        click.echo(f"command {command_id} {status_name(final.status)}{reason}")
    sys.exit(0 if final.status == pb.COMMAND_STATUS_SUCCEEDED else 1)
