"""Options and values shared by several commands: --request-id, sizes like 64MiB, instants."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    match = SIZE.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a size like 4096, 64MiB or 1G")
    unit = (match.group(2) or "").upper().rstrip("B").rstrip("I")
    return int(match.group(1)) * UNITS[unit]


def request_id_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--request-id",
        default="",
        help="a UUID: sending the same request again returns the first result",
    )(f)


class Instant(click.ParamType):
    """An ISO 8601 instant (`2026-01-31T12:00:00.123456Z`), as naive UTC; one without an
    offset is taken as UTC."""

    name = "instant"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 instant like 2026-01-31T12:00:00Z", param, ctx)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        return parsed


def iso(value: datetime) -> str:
    """A naive UTC instant as the Instant type reads it back."""
    return value.isoformat(timespec="microseconds") + "Z"
