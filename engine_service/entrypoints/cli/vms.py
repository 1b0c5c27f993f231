"""`enginectl vm ...` and `enginectl template ...`: VMs and the templates made from them."""

from __future__ import annotations

import uuid

import click

from engine_service.entrypoints.cli.calls import Client, pages
from engine_service.entrypoints.cli.commands import follow
from engine_service.entrypoints.cli.formats import Noun
from engine_service.entrypoints.cli.output import (
    TEMPLATE_HEADER,
    print_started,
    print_template,
    table,
)
from engine_service.entrypoints.cli.params import request_id_option
from engine_service.v1 import engine_service_pb2 as pb

# -- VMs ----------------------------------------------------------------------------------------


def print_vm(vm: pb.Vm) -> None:
    click.echo(f"{vm.vm_id}  {vm.name}  disks={','.join(vm.disk_ids)}")


@click.group(cls=Noun)
def vm() -> None:
    """VMs (a name and disks)."""


@vm.command("add")
@click.argument("name")
@click.option("--disk", "disk_ids", multiple=True, help="a disk id; repeat for several")
@request_id_option
@click.pass_obj
def vm_add(c: Client, name: str, disk_ids: tuple[str, ...], request_id: str) -> None:
    """Register the VM NAME made of the given disks."""
    reply = c.call("AddVm", pb.AddVmRequest(name=name, disk_ids=disk_ids, request_id=request_id))
    c.show(reply, lambda: click.echo(f"{reply.vm.vm_id}  {name}  disks={len(reply.vm.disk_ids)}"))


@vm.command("from-template")
@click.argument("template_id")
@click.option("--name", required=True, help="the new VM's name")
@click.option("--domain", "storage_domain_id", required=True, help="where its disks are made")
@click.option("--wait", "wait", is_flag=True, help="watch the command until it ends")
@request_id_option
@click.pass_obj
def vm_from_template(
    c: Client, template_id: str, name: str, storage_domain_id: str, wait: bool, request_id: str
) -> None:
    """Start making a VM whose disks are copies of a template's."""
    reply = c.call(
        "AddVmFromTemplate",
        pb.AddVmFromTemplateRequest(
            template_id=template_id,
            name=name,
            destination_storage_domain_id=storage_domain_id,
            request_id=request_id,
        ),
    )
    c.show(reply, lambda: print_started(print_vm, reply.vm, reply.command))
    if wait:
        follow(c, reply.command.command_id)


@vm.command("get")
@click.argument("vm_id")
@click.pass_obj
def vm_get(c: Client, vm_id: str) -> None:
    """One VM."""
    reply = c.call("GetVm", pb.GetVmRequest(vm_id=vm_id))
    c.show(reply, lambda: print_vm(reply.vm))


# -- templates ----------------------------------------------------------------------------------


@click.group(cls=Noun)
def template() -> None:
    """VM templates (copies of a VM's disks)."""


@template.command("add")
@click.option("--vm", "vm_id", required=True, help="the VM whose disks are copied")
@click.option("--name", required=True, help="a unique template name")
@click.option("--domain", "storage_domain_id", required=True, help="destination storage domain")
@click.option("--watch", "watch", is_flag=True, help="show live progress until it ends")
@request_id_option
@click.pass_obj
def template_add(
    c: Client, vm_id: str, name: str, storage_domain_id: str, watch: bool, request_id: str
) -> None:
    """Start making a template from a VM."""
    reply = c.call(
        "AddVmTemplate",
        pb.AddVmTemplateRequest(
            vm_id=vm_id,
            name=name,
            destination_storage_domain_id=storage_domain_id,
            request_id=request_id or str(uuid.uuid4()),
        ),
    )
    c.show(reply, lambda: print_started(print_template, reply.template, reply.command))
    if watch:
        follow(c, reply.command.command_id)


@template.command("remove")
@click.argument("template_id")
@click.option("--wait", "wait", is_flag=True, help="watch the command until it ends")
@request_id_option
@click.pass_obj
def template_remove(c: Client, template_id: str, wait: bool, request_id: str) -> None:
    """Start removing a template and its disks (never undone)."""
    reply = c.call(
        "RemoveVmTemplate",
        pb.RemoveVmTemplateRequest(template_id=template_id, request_id=request_id),
    )
    c.show(reply, lambda: print_started(print_template, reply.template, reply.command))
    if wait:
        follow(c, reply.command.command_id)


@template.command("get")
@click.argument("template_id")
@click.pass_obj
def template_get(c: Client, template_id: str) -> None:
    """One template."""
    reply = c.call("GetVmTemplate", pb.GetVmTemplateRequest(template_id=template_id))
    c.show(reply, lambda: print_template(reply.template))


@template.command("list")
@click.pass_obj
def template_list(c: Client) -> None:
    """Every template (all pages)."""
    found = list(pages(c, "ListVmTemplates", pb.ListVmTemplatesRequest(page_size=500), "templates"))
    c.show(
        pb.ListVmTemplatesResponse(templates=found),
        lambda: table(TEMPLATE_HEADER, print_template, found),
    )
