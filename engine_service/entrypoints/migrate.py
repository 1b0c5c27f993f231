"""`engine-service migrate`: the schema's migrations, run by hand (a DBA's, or before an engine
started with --no-migrate).

It reads the engine's own settings (--config, ENGINE_* variables, --database-url,
--state-dir; the server's other settings are accepted, hidden from --help, and unused):

\b
    engine-service migrate                      upgrade to the newest revision (head)
    engine-service migrate --to 0003            upgrade to revision 0003
    engine-service migrate --down 0003          downgrade to 0003 (base: no tables at all)
    engine-service migrate --check              exit 0 at head, 1 if not (prints both)
    engine-service migrate --sql > schema.sql   print the SQL instead (Alembic's offline mode:
                                                no connection; from empty to --to, or
                                                --from REV to --to; with --down, from
                                                --from (default head) down to its REV)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from engine_service.adapters.db import (
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    migrate,
    offline_sql,
)
from engine_service.entrypoints.settings import COMMAND_LINE, Config
from service_common.config import without_password

PROG = "engine-service migrate"
# The settings `migrate` uses; the others stay accepted (a shared --config file) but hidden.
SHOWN = {"config", "state_dir", "database_url", "version", "help"}


def options() -> list[click.Option]:
    return [
        click.Option(["--to", "to"], default=None, help="the revision to upgrade to [head]"),
        click.Option(
            ["--down", "down"],
            default=None,
            help="downgrade to this revision instead (base: an empty database)",
        ),
        click.Option(
            ["--sql", "sql"],
            is_flag=True,
            help="print the SQL (for --database-url's dialect) instead of running it; "
            "connects to nothing",
        ),
        click.Option(
            ["--from", "start"],
            default=None,
            help="with --sql: the revision the database is at [none; head with --down]",
        ),
        click.Option(
            ["--check", "check"],
            is_flag=True,
            help="only say whether the database is at the newest revision (exit 1 if not)",
        ),
    ]


def command() -> click.Command:
    """The engine's command line, its server settings hidden, with migrate's options."""
    cmd = COMMAND_LINE.command()
    cmd.name = PROG
    cmd.help = __doc__
    for param in cmd.params:
        if isinstance(param, click.Option) and param.name not in SHOWN:
            param.hidden = True
    cmd.params[1:1] = options()
    return cmd


def parse(argv: Sequence[str]) -> tuple[Config, dict[str, Any]]:
    """The engine's settings and migrate's own options; bad ones exit 2 as click does."""
    try:
        with command().make_context(PROG, list(argv)) as ctx:
            own = {o.name: ctx.params.pop(o.name) for o in options() if o.name}
            if own["to"] and own["down"]:
                raise click.UsageError("--to and --down go separately", ctx)
            if (own["start"] and not own["sql"]) or (own["check"] and own["sql"]):
                raise click.UsageError("--from goes with --sql, --check without it", ctx)
            return COMMAND_LINE.load(ctx), own
    except click.exceptions.Exit as done:  # --help, --version
        raise SystemExit(done.exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None


def main(argv: Sequence[str]) -> None:
    config, own = parse(argv)
    url, to, down = config.database_url, own["to"] or "head", own["down"]
    if own["sql"]:
        start = own["start"] or ("head" if down else None)
        target = down or to
        offline_sql(url, sys.stdout, f"{start}:{target}" if start else target, bool(down))
        return
    engine = make_engine(url)
    try:
        if own["check"]:
            at, head = current_revision(engine), head_revision()
            click.echo(f"{without_password(url)}: at {at or 'no revision'}, head {head}")
            raise SystemExit(0 if at == head else 1)
        if down:
            downgrade(engine, down)
        else:
            migrate(engine, to)
        click.echo(f"{without_password(url)}: now at {current_revision(engine) or 'base'}")
    finally:
        engine.dispose()
