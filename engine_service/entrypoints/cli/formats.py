"""How `enginectl` prints, chosen on the group or on any leaf command: `--json` or
`-o/--output text|json`, declared once here. Every command made through a `Noun` group is a
`Leaf`, which takes both; the last choice given wins (`enginectl --json disk list -o text`
prints text)."""

from __future__ import annotations

from typing import Any

import click

from engine_service.entrypoints.cli.calls import Client

OUTPUT = "enginectl.output"  # ctx.meta (shared by a context and its parents): "text" or "json"


def wants_json(ctx: click.Context) -> bool:
    """Whether the group or the command asked for JSON."""
    return ctx.meta.get(OUTPUT) == "json"


def choose(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Callback of --json (True when given) and -o (the format, None when not given): note the
    format, and tell the client already made by the group."""
    chosen = "json" if value is True else value
    if chosen not in ("text", "json"):
        return
    ctx.meta[OUTPUT] = chosen
    client = ctx.find_object(Client)
    if client is not None:
        client.as_json = chosen == "json"


def output_options() -> list[click.Parameter]:
    """Fresh --json and -o/--output options (click keeps per-command state in them)."""
    return [
        click.Option(
            ["--json", "json_output"],
            is_flag=True,
            expose_value=False,
            callback=choose,
            help="print JSON for scripts (the same as -o json)",
        ),
        click.Option(
            ["-o", "--output"],
            type=click.Choice(["text", "json"]),
            expose_value=False,
            callback=choose,
            help="text for people (the default) or json: every field, zero values included",
        ),
    ]


class Leaf(click.Command):
    """A command that prints a result: it takes --json and -o/--output after its name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(output_options())


class Noun(click.Group):
    """A group of commands about one thing (host, disk, ...): each of them is a `Leaf`."""

    command_class = Leaf


class Root(click.Group):
    """`enginectl` itself: takes --json and -o/--output before the noun as well."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(output_options())
