"""`enginectl`: a person's (and a script's) client of the engine.

Exit codes: 0 done; 1 a watched command ended FAILED or CANCELLED; 2 bad usage or
INVALID_ARGUMENT; 3 NOT_FOUND; 4 ALREADY_EXISTS or FAILED_PRECONDITION; 5 the engine is
unreachable or not ready (UNAVAILABLE, DEADLINE_EXCEEDED); 6 UNAUTHENTICATED; 10 anything else.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click
import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from engine_service.v1 import engine_service_pb2 as pb
from engine_service.v1 import engine_service_pb2_grpc as pb_grpc
from service_common.grpc_client import client_channel
from service_common.health_probe import check as health_check
from service_common.tls import ClientTls, init_pki

EXIT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: 2,
    grpc.StatusCode.NOT_FOUND: 3,
    grpc.StatusCode.ALREADY_EXISTS: 4,
    grpc.StatusCode.FAILED_PRECONDITION: 4,
    grpc.StatusCode.UNAVAILABLE: 5,
    grpc.StatusCode.DEADLINE_EXCEEDED: 5,
    grpc.StatusCode.UNAUTHENTICATED: 6,
}
SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class Client:
    def __init__(
        self,
        address: str,
        timeout: float,
        as_json: bool,
        token: str | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.as_json = as_json
        self.token = token
        self.tls = tls
        self._stub: pb_grpc.EngineServiceStub | None = None

    @property
    def stub(self) -> pb_grpc.EngineServiceStub:
        if self._stub is None:
            self._stub = pb_grpc.EngineServiceStub(
                client_channel(self.active_address(), self.tls, self.token)
            )
        return self._stub

    def active_address(self) -> str:
        """With several addresses (an active engine and standbys), the one that is SERVING."""
        addresses = [a.strip() for a in self.address.split(",") if a.strip()]
        if len(addresses) == 1:
            return addresses[0]
        for address in addresses:
            try:
                if health_check(address, timeout=min(self.timeout, 3.0), tls=self.tls) == "SERVING":
                    return address
            except grpc.RpcError:
                continue
        click.echo(f"error: UNAVAILABLE: no engine is SERVING at {', '.join(addresses)}", err=True)
        sys.exit(5)

    def call(self, method: str, request: Message) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            fail(exc)

    def show(self, message: Message, human: Callable[[], None]) -> None:
        if self.as_json:
            click.echo(
                json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2)
            )
        else:
            human()


def fail(exc: grpc.RpcError) -> NoReturn:
    code: grpc.StatusCode = exc.code()
    click.echo(f"error: {code.name}: {exc.details()}", err=True)
    sys.exit(EXIT_CODES.get(code, 10))


def each(show: Callable[[Any], None], items: Iterable[Any]) -> None:
    for item in items:
        show(item)


def print_started(show: Callable[[Any], None], entity: Message, cmd: pb.Command) -> None:
    show(entity)
    click.echo(f"command {cmd.command_id}")


def parse_size(text: str) -> int:
    match = SIZE.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a size like 4096, 64MiB or 1G")
    unit = (match.group(2) or "").upper().rstrip("B").rstrip("I")
    return int(match.group(1)) * UNITS[unit]


def name_of(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix)


def request_id_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--request-id",
        default="",
        help="a UUID: sending the same request again returns the first result",
    )(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=__doc__)
@click.option(
    "--address",
    envvar="ENGINECTL_ADDRESS",
    default="127.0.0.1:50051",
    show_default=True,
    help="the engine's HOST:PORT, or several separated by commas (an active engine and its "
    "standbys: the SERVING one is used) (env ENGINECTL_ADDRESS)",
)
@click.option(
    "--timeout",
    envvar="ENGINECTL_TIMEOUT",
    default=30.0,
    show_default=True,
    help="seconds per call (env ENGINECTL_TIMEOUT)",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
@click.option(
    "--token",
    envvar="ENGINECTL_TOKEN",
    default=None,
    help="bearer token for an engine that requires one (env ENGINECTL_TOKEN)",
)
@click.option(
    "--tls-ca",
    envvar="ENGINECTL_TLS_CA",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="the engine API speaks TLS: trust this CA (env ENGINECTL_TLS_CA)",
)
@click.pass_context
def main(
    ctx: click.Context,
    address: str,
    timeout: float,
    as_json: bool,
    token: str | None,
    tls_ca: str | None,
) -> None:
    """Drive the engine: hosts, storage domains, disks, VMs, templates and their commands.

    \b
    Examples:
      enginectl host add host1 127.0.0.1:54321
      enginectl domain add data1
      enginectl disk add boot --domain SD_ID --size 64MiB --wait
      enginectl vm add web --disk DISK_ID --disk DISK_ID
      enginectl template add --vm VM_ID --name golden --domain SD_ID --watch
      enginectl --json command list --status failed
      enginectl pki init --out ./pki --name agent1 --name agent2
    """
    ctx.obj = Client(address, timeout, as_json, token, ClientTls(Path(tls_ca)) if tls_ca else None)


# -- PKI ------------------------------------------------------------------------------------


@main.group()
def pki() -> None:
    """Certificates for a development or compose setup (no shelling out to openssl)."""


@pki.command("init")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="where to write")
@click.option(
    "--name",
    "names",
    multiple=True,
    help="a host name or address the certificates must be valid for (repeatable); "
    "localhost, 127.0.0.1 and ::1 are always included",
)
def pki_init(out: str, names: tuple[str, ...]) -> None:
    """Create a CA, the engine's certificate (server and client) and the agents' one.

    \b
    Then, for mutual TLS between the engine and its agents:
      vdsm-agent ... --tls-cert OUT/agent.pem --tls-key OUT/agent.key --tls-client-ca OUT/ca.pem
      engine-service ... --agent-tls-ca OUT/ca.pem --agent-tls-cert OUT/engine.pem \\
                         --agent-tls-key OUT/engine.key \\
                         --tls-cert OUT/engine.pem --tls-key OUT/engine.key
      enginectl --tls-ca OUT/ca.pem ...
    """
    files = init_pki(Path(out), names)
    for role, path in files.items():
        click.echo(f"{role:<11} {path}")


# -- hosts --------------------------------------------------------------------------------------


@main.group()
def host() -> None:
    """Hypervisor hosts (each runs a vdsm-agent)."""


def print_host(h: pb.Host) -> None:
    click.echo(
        f"{h.host_id}  {h.name:<16} {h.address:<22} "
        f"{name_of(pb.HostStatus, h.status, 'HOST_STATUS_'):<15} tasks={h.tasks_in_flight}"
    )


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
    """Every host with its status and tasks in flight."""
    reply = c.call("ListHosts", pb.ListHostsRequest())
    c.show(reply, lambda: each(print_host, reply.hosts))


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


@host.command("remove")
@click.argument("host_id")
@click.pass_obj
def host_remove(c: Client, host_id: str) -> None:
    """Forget HOST_ID (refused while tasks are on it)."""
    reply = c.call("RemoveHost", pb.RemoveHostRequest(host_id=host_id))
    c.show(reply, lambda: click.echo(f"removed {host_id}"))


# -- storage domains ----------------------------------------------------------------------------


@main.group()
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
    """Every storage domain."""
    reply = c.call("ListStorageDomains", pb.ListStorageDomainsRequest())
    c.show(
        reply,
        lambda: each(
            lambda d: click.echo(f"{d.storage_domain_id}  {d.name}"), reply.storage_domains
        ),
    )


# -- disks --------------------------------------------------------------------------------------


@main.group()
def disk() -> None:
    """Disks (image files in storage domains)."""


def print_disk(d: pb.Disk) -> None:
    click.echo(
        f"{d.disk_id}  {d.name:<20} {d.size_bytes:>12} B  "
        f"{name_of(pb.DiskStatus, d.status, 'DISK_STATUS_'):<8} domain={d.storage_domain_id}"
    )


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
    c.show(pb.ListDisksResponse(disks=disks), lambda: each(print_disk, disks))


def pages(c: Client, method: str, request: Any, field: str) -> Iterator[Any]:
    while True:
        reply = c.call(method, request)
        yield from getattr(reply, field)
        if not reply.next_page_token:
            return
        request.page_token = reply.next_page_token


# -- VMs and templates --------------------------------------------------------------------------


@main.group()
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


@vm.command("get")
@click.argument("vm_id")
@click.pass_obj
def vm_get(c: Client, vm_id: str) -> None:
    """One VM."""
    reply = c.call("GetVm", pb.GetVmRequest(vm_id=vm_id))
    c.show(
        reply,
        lambda: click.echo(
            f"{reply.vm.vm_id}  {reply.vm.name}  disks={','.join(reply.vm.disk_ids)}"
        ),
    )


@main.group()
def template() -> None:
    """VM templates (copies of a VM's disks)."""


def print_template(t: pb.VmTemplate) -> None:
    click.echo(
        f"{t.template_id}  {t.name:<20} "
        f"{name_of(pb.TemplateStatus, t.status, 'TEMPLATE_STATUS_'):<8} vm={t.vm_id} "
        f"disks={len(t.disk_ids)}"
    )


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
    c.show(pb.ListVmTemplatesResponse(templates=found), lambda: each(print_template, found))


# -- commands -----------------------------------------------------------------------------------


@main.group()
def command() -> None:
    """Commands (the engine's durable units of work)."""


def status_name(value: int) -> str:
    return name_of(pb.CommandStatus, value, "COMMAND_STATUS_")


def print_command(cmd: pb.Command) -> None:
    reason = f"  {cmd.failure_reason}" if cmd.failure_reason else ""
    click.echo(
        f"{cmd.command_id}  {cmd.action_type:<14} {status_name(cmd.status):<10} "
        f"{cmd.progress_percent:3d}%  tasks={len(cmd.tasks)}{reason}"
    )


@command.command("get")
@click.argument("command_id")
@click.pass_obj
def command_get(c: Client, command_id: str) -> None:
    """One command, with its children and tasks."""
    reply = c.call("GetCommand", pb.GetCommandRequest(command_id=command_id))

    def human() -> None:
        print_command(reply.command)
        for child in reply.command.child_commands:
            click.echo(
                "  child " + f"{child.command_id} {child.action_type} {status_name(child.status)}"
            )
        for task in reply.command.tasks:
            click.echo(
                f"  task {task.task_id} agent={task.vdsm_task_id or '(placeholder)'} "
                f"{name_of(pb.TaskState, task.state, 'TASK_STATE_')} "
                f"{task.progress_percent}%"
            )

    c.show(reply, human)


@command.command("list")
@click.option(
    "--status",
    type=click.Choice(["active", "succeeded", "failed", "cancelled"], case_sensitive=False),
    help="only these",
)
@click.option("--limit", default=50, show_default=True, help="at most this many")
@click.pass_obj
def command_list(c: Client, status: str | None, limit: int) -> None:
    """Top-level commands, newest first."""
    value = pb.CommandStatus.Value(f"COMMAND_STATUS_{status.upper()}") if status else 0
    request = pb.ListCommandsRequest(status=value, page_size=min(limit, 500))  # type: ignore[arg-type]
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


@main.command()
@click.pass_obj
def reconcile(c: Client) -> None:
    """Fail orphaned commands, adopt in-flight tasks, clear zombies; print the report."""
    reply = c.call("ReconcileOrphans", pb.ReconcileOrphansRequest())

    def human() -> None:
        for title, r in (("this run", reply), ("at startup", reply.startup_report)):
            click.echo(
                f"{title}: failed commands {list(r.failed_command_ids)}, "
                f"removed placeholders {r.removed_placeholders}, adopted tasks "
                f"{r.adopted_tasks}, cleared zombies {r.cleared_zombies}"
            )

    c.show(reply, human)


def bar(percent: int, width: int = 30) -> str:
    filled = width * percent // 100
    return "[" + "#" * filled + "." * (width - filled) + f"] {percent:3d}%"


def follow(c: Client, command_id: str) -> None:
    """Show WatchCommand's stream: one progress bar per task (redrawn on a terminal, one line per
    ten percent otherwise); exit 1 unless the command SUCCEEDED."""
    tty = sys.stdout.isatty() and not c.as_json
    drawn = 0
    last_tens: dict[str, int] = {}
    final: pb.Command | None = None
    stream = c.stub.WatchCommand(pb.WatchCommandRequest(command_id=command_id))
    try:
        for message in stream:
            cmd = final = message.command
            if c.as_json:
                click.echo(json.dumps(MessageToDict(cmd, preserving_proto_field_name=True)))
                continue
            lines = [f"{cmd.action_type} {status_name(cmd.status):<10} {bar(cmd.progress_percent)}"]
            lines += [
                f"  task {t.task_id[:8]} {t.verb:<12} "
                f"{name_of(pb.TaskState, t.state, 'TASK_STATE_').lower():<11}"
                f"{bar(t.progress_percent)}"
                for t in cmd.tasks
            ]
            if tty:
                if drawn:
                    click.echo(f"\x1b[{drawn}F\x1b[J", nl=False)
                click.echo("\n".join(lines))
                drawn = len(lines)
            else:
                tens = cmd.progress_percent // 10
                if last_tens.get(cmd.command_id) != tens or cmd.status != pb.COMMAND_STATUS_ACTIVE:
                    per_task = " ".join(f"{t.progress_percent}%" for t in cmd.tasks)
                    click.echo(lines[0] + (f"  tasks: {per_task}" if per_task else ""))
                    last_tens[cmd.command_id] = tens
    except grpc.RpcError as exc:
        fail(exc)
    if final is None:
        sys.exit(10)
    if not c.as_json:
        reason = f": {final.failure_reason}" if final.failure_reason else ""
        click.echo(f"command {command_id} {status_name(final.status)}{reason}")
    sys.exit(0 if final.status == pb.COMMAND_STATUS_SUCCEEDED else 1)


if __name__ == "__main__":
    main(prog_name="enginectl")
