"""Options and values shared by several commands: --request-id and sizes like 64MiB."""

from __future__ import annotations

import re
from collections.abc import Callable
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
