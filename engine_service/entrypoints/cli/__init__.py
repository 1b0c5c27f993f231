"""`enginectl`, the engine's command-line client: the top-level click group and `main`."""

from __future__ import annotations

from pathlib import Path

import click

from engine_service.entrypoints.cli.calls import EXIT_CODES, Client, fail, pages
from engine_service.entrypoints.cli.commands import (
    command,
    command_cancel,
    command_get,
    command_list,
    command_watch,
    follow,
)
from engine_service.entrypoints.cli.formats import Leaf, Noun, Root, wants_json
from engine_service.entrypoints.cli.hosts import (
    host,
    host_add,
    host_list,
    host_maintenance,
    host_remove,
)
from engine_service.entrypoints.cli.ops import pki, pki_init, reconcile
from engine_service.entrypoints.cli.output import (
    bar,
    each,
    name_of,
    print_command,
    print_disk,
    print_host,
    print_started,
    print_template,
    status_name,
)
from engine_service.entrypoints.cli.params import SIZE, UNITS, parse_size, request_id_option
from engine_service.entrypoints.cli.storage import (
    disk,
    disk_add,
    disk_get,
    disk_list,
    domain,
    domain_add,
    domain_list,
)
from engine_service.entrypoints.cli.vms import (
    template,
    template_add,
    template_get,
    template_list,
    vm,
    vm_add,
    vm_get,
)
from service_common.tls import ClientTls
from service_common.version import version

EPILOG = """`enginectl`: a person's (and a script's) client of the engine.

Exit codes: 0 done; 1 a watched command ended FAILED or CANCELLED; 2 bad usage or
INVALID_ARGUMENT; 3 NOT_FOUND; 4 ALREADY_EXISTS or FAILED_PRECONDITION; 5 the engine is
unreachable or not ready (UNAVAILABLE, DEADLINE_EXCEEDED); 6 UNAUTHENTICATED (no token, or a
wrong one); 7 PERMISSION_DENIED (a read-only token asked for a change); 10 anything else.

For scripts: --json (or -o json), before the command or after it, prints the reply as JSON:
every field, zero and empty ones included, enums by name, integers as numbers. `command watch
--json` prints one JSON object per line.
"""


@click.group(cls=Root, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(version(), "--version", prog_name="enginectl", message="%(prog)s %(version)s")
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
@click.option(
    "--token",
    envvar="ENGINECTL_TOKEN",
    default=None,
    help="bearer token for an engine that requires one: its SECRET only, not its name or "
    "role (env ENGINECTL_TOKEN)",
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
      enginectl command list --status failed --json
      enginectl pki init --out ./pki --name agent1 --name agent2
    """
    tls = ClientTls(Path(tls_ca)) if tls_ca else None
    ctx.obj = Client(address, timeout, wants_json(ctx), token, tls)


for _noun in (pki, host, domain, disk, vm, template, command, reconcile):
    main.add_command(_noun)

__all__ = [
    "EPILOG",
    "EXIT_CODES",
    "SIZE",
    "UNITS",
    "Client",
    "Leaf",
    "Noun",
    "Root",
    "bar",
    "command",
    "command_cancel",
    "command_get",
    "command_list",
    "command_watch",
    "disk",
    "disk_add",
    "disk_get",
    "disk_list",
    "domain",
    "domain_add",
    "domain_list",
    "each",
    "fail",
    "follow",
    "host",
    "host_add",
    "host_list",
    "host_maintenance",
    "host_remove",
    "main",
    "name_of",
    "pages",
    "parse_size",
    "pki",
    "pki_init",
    "print_command",
    "print_disk",
    "print_host",
    "print_started",
    "print_template",
    "reconcile",
    "request_id_option",
    "status_name",
    "template",
    "template_add",
    "template_get",
    "template_list",
    "vm",
    "vm_add",
    "vm_get",
    "wants_json",
]
