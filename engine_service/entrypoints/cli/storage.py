"""`enginectl domain ...` and `enginectl disk ...`: storage domains and their disks."""

from __future__ import annotations

import click

from engine_service.entrypoints.cli.calls import Client, pages
from engine_service.entrypoints.cli.commands import follow
from engine_service.entrypoints.cli.formats import Noun
from engine_service.entrypoints.cli.output import (
    DISK_HEADER,
    DOMAIN_HEADER,
    print_disk,
    print_domain,
    print_started,
    table,
)
from engine_service.entrypoints.cli.params import parse_size, request_id_option
from engine_service.v1 import engine_service_pb2 as pb

# -- storage domains ----------------------------------------------------------------------------


@click.group(cls=Noun)
def domain() -> None:
    """Storage domains (directories of the shared storage root)."""


@domain.command("add")
@click.argument("name")
@request_id_option
@click.pass_obj
def domain_add(c: Client, name: str, request_id: str) -> None:
    """Create the storage domain NAME."""
    reply = c.call("AddStorageDomain", pb.AddStorageDomainRequest(name=name, request_id=request_id))
    c.show(reply, lambda: click.echo(f"{reply.storage_domain.storage_domain_id}  {name}"))


@domain.command("list")
@click.pass_obj
def domain_list(c: Client) -> None:
    """Every storage domain (all pages)."""
    request = pb.ListStorageDomainsRequest(page_size=500)
    domains = list(pages(c, "ListStorageDomains", request, "storage_domains"))
    reply = pb.ListStorageDomainsResponse(storage_domains=domains)
    c.show(reply, lambda: table(DOMAIN_HEADER, print_domain, domains))


# -- disks --------------------------------------------------------------------------------------


@click.group(cls=Noun)
def disk() -> None:
    """Disks (image files in storage domains)."""


@disk.command("add")
@click.argument("name")
@click.option("--domain", "storage_domain_id", required=True, help="storage domain id")
@click.option("--size", required=True, help="bytes, or with a unit: 64MiB, 1G")
@click.option("--wait", "wait", is_flag=True, help="watch the command until it ends")
@request_id_option
@click.pass_obj
def disk_add(
    c: Client, name: str, storage_domain_id: str, size: str, wait: bool, request_id: str
) -> None:
    """Start creating the disk NAME; prints the disk and its command."""
    reply = c.call(
        "AddDisk",
        pb.AddDiskRequest(
            name=name,
            storage_domain_id=storage_domain_id,
            size_bytes=parse_size(size),
            request_id=request_id,
        ),
    )
    c.show(reply, lambda: print_started(print_disk, reply.disk, reply.command))
    if wait:
        follow(c, reply.command.command_id)


@disk.command("get")
@click.argument("disk_id")
@click.pass_obj
def disk_get(c: Client, disk_id: str) -> None:
    """One disk."""
    reply = c.call("GetDisk", pb.GetDiskRequest(disk_id=disk_id))
    c.show(reply, lambda: print_disk(reply.disk))


@disk.command("list")
@click.pass_obj
def disk_list(c: Client) -> None:
    """Every disk (all pages)."""
    disks = list(pages(c, "ListDisks", pb.ListDisksRequest(page_size=500), "disks"))
    c.show(pb.ListDisksResponse(disks=disks), lambda: table(DISK_HEADER, print_disk, disks))


@disk.command("remove")
@click.argument("disk_id")
@click.option("--wait", "wait", is_flag=True, help="watch the command until it ends")
@request_id_option
@click.pass_obj
def disk_remove(c: Client, disk_id: str, wait: bool, request_id: str) -> None:
    """Start removing a disk (never undone: a failed or cancelled removal still removes it)."""
    reply = c.call("RemoveDisk", pb.RemoveDiskRequest(disk_id=disk_id, request_id=request_id))
    c.show(reply, lambda: print_started(print_disk, reply.disk, reply.command))
    if wait:
        follow(c, reply.command.command_id)


@disk.command("move")
@click.argument("disk_id")
@click.option("--domain", "storage_domain_id", required=True, help="destination storage domain")
@click.option("--wait", "wait", is_flag=True, help="watch the command until it ends")
@request_id_option
@click.pass_obj
def disk_move(c: Client, disk_id: str, storage_domain_id: str, wait: bool, request_id: str) -> None:
    """Start moving a disk to another storage domain: copy, then remove the source."""
    reply = c.call(
        "MoveDisk",
        pb.MoveDiskRequest(
            disk_id=disk_id,
            destination_storage_domain_id=storage_domain_id,
            request_id=request_id,
        ),
    )
    c.show(reply, lambda: print_started(print_disk, reply.disk, reply.command))
    if wait:
        follow(c, reply.command.command_id)
