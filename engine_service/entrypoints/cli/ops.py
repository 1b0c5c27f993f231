"""Operator commands: `enginectl reconcile` and `enginectl pki init`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import click

from engine_service.entrypoints.cli.calls import Client
from engine_service.entrypoints.cli.formats import Leaf, Noun, wants_json
from engine_service.entrypoints.cli.params import iso
from engine_service.v1 import engine_service_pb2 as pb
from service_common.tls import init_pki

# -- reconcile ----------------------------------------------------------------------------------


@click.command(cls=Leaf)
@click.pass_obj
def reconcile(c: Client) -> None:
    """Fail orphaned commands, adopt in-flight tasks, clear zombies; print the report."""
    reply = c.call("ReconcileOrphans", pb.ReconcileOrphansRequest())

    def human() -> None:
        for title, r in (("this run", reply), ("at startup", reply.startup_report)):
            click.echo(
                f"{title}: failed commands {list(r.failed_command_ids)} "
                f"({r.failed_commands} in all), "
                f"removed placeholders {r.removed_placeholders}, adopted tasks "
                f"{r.adopted_tasks}, cleared zombies {r.cleared_zombies}"
            )
            if r.failed_commands > len(r.failed_command_ids):
                click.echo(f"  the first {len(r.failed_command_ids)} are listed; {the_rest(r)}")

    c.show(reply, human)


def the_rest(r: pb.ReconcileReport | pb.ReconcileOrphansResponse) -> str:
    """How to list every command a reconciliation failed: they all ended FAILED at one
    instant, `failed_at`."""
    at = r.failed_at.ToDatetime()
    return (
        "all of them: enginectl command list --status failed "
        f"--ended-after {iso(at)} --ended-before {iso(at + timedelta(microseconds=1))} "
        f"--limit {r.failed_commands}"
    )


# -- PKI ----------------------------------------------------------------------------------------


@click.group(cls=Noun)
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
@click.option(
    "--keep-existing",
    is_flag=True,
    help="leave OUT as it is if it holds a CA already (ca.pem): a compose one-shot service "
    "run again must not replace the certificates the running services use",
)
@click.pass_context
def pki_init(ctx: click.Context, out: str, names: tuple[str, ...], keep_existing: bool) -> None:
    """Create a CA, the engine's certificate (server and client) and the agents' one.

    \b
    Then, for mutual TLS between the engine and its agents:
      vdsm-agent ... --tls-cert OUT/agent.pem --tls-key OUT/agent.key --tls-client-ca OUT/ca.pem
      engine-service ... --agent-tls-ca OUT/ca.pem --agent-tls-cert OUT/engine.pem \\
                         --agent-tls-key OUT/engine.key \\
                         --tls-cert OUT/engine.pem --tls-key OUT/engine.key
      enginectl --tls-ca OUT/ca.pem ...
    """
    kept = keep_existing and (Path(out) / "ca.pem").exists()
    files = {} if kept else init_pki(Path(out), names)
    if wants_json(ctx):
        shown = {"out": out, "kept_existing": kept, "files": {r: str(p) for r, p in files.items()}}
        click.echo(json.dumps(shown, indent=2))
        return
    if kept:
        click.echo(f"kept the existing PKI in {out} (--keep-existing)")
    for role, path in files.items():
        click.echo(f"{role:<11} {path}")
