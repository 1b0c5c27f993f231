"""`enginectl host ...`: hypervisor hosts."""

from __future__ import annotations

import click

from engine_service.entrypoints.cli.calls import Client, pages
from engine_service.entrypoints.cli.formats import Noun
from engine_service.entrypoints.cli.output import HOST_HEADER, print_host, table
from engine_service.entrypoints.cli.params import request_id_option
from engine_service.v1 import engine_service_pb2 as pb


@click.group(cls=Noun)
def host() -> None:
    """Hypervisor hosts (each runs a vdsm-agent)."""


@host.command("add")
@click.argument("name")
@click.argument("address")
@request_id_option
@click.pass_obj
def host_add(c: Client, name: str, address: str, request_id: str) -> None:
    """Register the host NAME whose agent answers at ADDRESS (HOST:PORT)."""
    reply = c.call("AddHost", pb.AddHostRequest(name=name, address=address, request_id=request_id))
    c.show(reply, lambda: print_host(reply.host))


@host.command("list")
@click.pass_obj
def host_list(c: Client) -> None:
    """Every host with its status and tasks in flight (all pages)."""
    hosts = list(pages(c, "ListHosts", pb.ListHostsRequest(page_size=500), "hosts"))
    c.show(pb.ListHostsResponse(hosts=hosts), lambda: table(HOST_HEADER, print_host, hosts))


@host.command("maintenance")
@click.argument("host_id")
@click.option("--on/--off", "on", default=True, help="into maintenance (default) or out of it")
@click.pass_obj
def host_maintenance(c: Client, host_id: str, on: bool) -> None:
    """Stop giving HOST_ID new tasks (--on) or give it tasks again (--off)."""
    reply = c.call(
        "SetHostMaintenance", pb.SetHostMaintenanceRequest(host_id=host_id, maintenance=on)
    )
    c.show(reply, lambda: print_host(reply.host))


@host.command("confirm-rebooted")
@click.argument("host_id")
@click.option("--reason", required=True, help="how you know the host is down (kept on record)")
@click.pass_obj
def host_confirm_rebooted(c: Client, host_id: str, reason: str) -> None:
    """Fencing: assert that HOST_ID, which stopped answering, is down and its processes gone.
    Its ACTIVE commands fail now and the cleanup still owed on it is written off; then
    `host remove` succeeds. Refused while the host answers its polls."""
    reply = c.call(
        "ConfirmHostRebooted", pb.ConfirmHostRebootedRequest(host_id=host_id, reason=reason)
    )

    def human() -> None:
        print_host(reply.host)
        click.echo(
            f"failed {reply.failed_commands} command(s), "
            f"wrote off {reply.written_off_tasks} task(s)"
        )

    c.show(reply, human)


@host.command("remove")
@click.argument("host_id")
@click.pass_obj
def host_remove(c: Client, host_id: str) -> None:
    """Forget HOST_ID (refused while tasks are on it)."""
    reply = c.call("RemoveHost", pb.RemoveHostRequest(host_id=host_id))
    c.show(reply, lambda: click.echo(f"removed {host_id}"))
