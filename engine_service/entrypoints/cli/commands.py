"""`enginectl command ...`: get, list, watch and cancel the engine's commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
import grpc

from engine_service.entrypoints.cli.calls import Client, fail, pages
from engine_service.entrypoints.cli.formats import Noun
from engine_service.entrypoints.cli.output import (
    COMMAND_HEADER,
    json_line,
    print_command,
    print_command_tree,
    print_history,
    status_name,
    table,
    watch_lines,
)
from engine_service.entrypoints.cli.params import Instant, request_id_option
from engine_service.v1 import engine_service_pb2 as pb


@click.group(cls=Noun)
def command() -> None:
    """Commands (the engine's durable units of work)."""


@command.command("get")
@click.argument("command_id")
@click.pass_obj
def command_get(c: Client, command_id: str) -> None:
    """One command, with its children and tasks."""
    reply = c.call("GetCommand", pb.GetCommandRequest(command_id=command_id))
    c.show(reply, lambda: print_command_tree(reply.command))


def list_filters(f: Callable[..., Any]) -> Callable[..., Any]:
    """The ListCommands filters as options (command list, command cancel --all)."""
    options = [
        click.option(
            "--type", "action_type", default="", help="only this action type (AddDisk...)"
        ),
        click.option("--target", default="", help="only those on this disk or template id"),
        click.option("--host", default="", help="only those with a task on this host id"),
        click.option("--since", type=Instant(), help="only those accepted at or after (ISO 8601)"),
        click.option("--until", type=Instant(), help="only those accepted before (ISO 8601)"),
        click.option(
            "--ended-after",
            type=Instant(),
            help="only those that ended at or after this instant (ISO 8601, UTC unless it says)",
        ),
        click.option(
            "--ended-before", type=Instant(), help="only those that ended before this instant"
        ),
        click.option(
            "--error",
            "--failure-reason-contains",
            "reason",
            default="",
            help="only those whose failure reason contains this text (case-insensitive)",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def list_request(status: str | None, **filters: Any) -> pb.ListCommandsRequest:
    value = pb.CommandStatus.Value(f"COMMAND_STATUS_{status.upper()}") if status else 0
    request = pb.ListCommandsRequest(
        status=value,  # type: ignore[arg-type]
        action_type=filters["action_type"],
        target_id=filters["target"],
        host_id=filters["host"],
        failure_reason_contains=filters["reason"],
    )
    for field, option in (
        ("created_after", "since"),
        ("created_before", "until"),
        ("ended_after", "ended_after"),
        ("ended_before", "ended_before"),
    ):
        if filters[option] is not None:
            getattr(request, field).FromDatetime(filters[option])
    return request


def listed(c: Client, request: pb.ListCommandsRequest, limit: int) -> list[pb.Command]:
    request.page_size = min(limit, 500)
    found = []
    for cmd in pages(c, "ListCommands", request, "commands"):
        found.append(cmd)
        if len(found) >= limit:
            break
    return found


@command.command("list")
@click.option(
    "--status",
    type=click.Choice(["active", "succeeded", "failed", "cancelled"], case_sensitive=False),
    help="only these",
)
@click.option("--limit", default=50, show_default=True, help="at most this many")
@list_filters
@click.pass_obj
def command_list(c: Client, status: str | None, limit: int, **filters: Any) -> None:
    """Top-level commands, newest first; every filter given applies (AND)."""
    found = listed(c, list_request(status, **filters), limit)
    c.show(
        pb.ListCommandsResponse(commands=found),
        lambda: table(COMMAND_HEADER, print_command, found),
    )


@command.command("retry")
@click.argument("command_id")
@request_id_option
@click.pass_obj
def command_retry(c: Client, command_id: str, request_id: str) -> None:
    """Run a FAILED or CANCELLED command again, as a new command with the same parameters."""
    reply = c.call(
        "RetryCommand", pb.RetryCommandRequest(command_id=command_id, request_id=request_id)
    )
    c.show(reply, lambda: print_command(reply.command))


@command.command("watch")
@click.argument("command_id")
@click.pass_obj
def command_watch(c: Client, command_id: str) -> None:
    """Live progress until the command ends; exit 1 if it failed or was cancelled."""
    follow(c, command_id)


@command.command("cancel")
@click.argument("command_id", required=False)
@click.option("--all", "everything", is_flag=True, help="every ACTIVE command the filters admit")
@click.option("--yes", is_flag=True, help="with --all: do not ask for confirmation")
@list_filters
@click.pass_obj
def command_cancel(
    c: Client, command_id: str | None, everything: bool, yes: bool, **filters: Any
) -> None:
    """Stop the command's tasks, delete what it made, end it CANCELLED. With --all (and
    --type, --host, ...), every ACTIVE command those admit, after a confirmation."""
    if everything == bool(command_id):
        raise click.UsageError("give a COMMAND_ID or --all, not both or neither")
    if command_id:
        reply = c.call("CancelCommand", pb.CancelCommandRequest(command_id=command_id))
        c.show(reply, lambda: print_command(reply.command))
        return
    active = listed(c, list_request("active", **filters), 100_000)
    if not active:
        c.show(pb.ListCommandsResponse(), lambda: click.echo("no ACTIVE command matches"))
        return
    if not yes and not click.confirm(f"cancel {len(active)} ACTIVE command(s)?", err=True):
        raise click.Abort
    done = []
    for cmd in active:
        try:
            reply = c.stub.CancelCommand(
                pb.CancelCommandRequest(command_id=cmd.command_id), timeout=c.timeout
            )
            done.append(reply.command)
        except grpc.RpcError as exc:  # ended meanwhile: say so and go on
            click.echo(f"{cmd.command_id}: {exc.code().name}: {exc.details()}", err=True)
    c.show(
        pb.ListCommandsResponse(commands=done),
        lambda: table(COMMAND_HEADER, print_command, done),
    )


@command.command("history")
@click.argument("command_id")
@click.pass_obj
def command_history(c: Client, command_id: str) -> None:
    """The command's history, oldest first: accepted, each task accepted by its host, progress,
    each task finished, the end, compensation and clearing, reconciliation's decisions and
    operators' actions."""
    request = pb.ListCommandEventsRequest(command_id=command_id, page_size=500)
    events = list(pages(c, "ListCommandEvents", request, "events"))

    def human() -> None:
        names = {h.host_id: h.name for h in c.call("ListHosts", pb.ListHostsRequest()).hosts}
        print_history(events, names)

    c.show(pb.ListCommandEventsResponse(events=events), human)


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
