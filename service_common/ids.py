"""Id validation: every id is a canonical UUID, which is also what keeps paths inside the root."""

from __future__ import annotations

import re

from service_common.errors import InvalidArgument

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def require_uuid(field: str, value: str) -> str:
    """Return `value` in lower case if it is a canonical UUID, else raise InvalidArgument(field)."""
    if not value:
        raise InvalidArgument(
            field, "is required (a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6)"
        )
    lowered = value.lower()
    if len(value) != 36 or not _UUID.match(lowered):
        shown = value if len(value) <= 64 else value[:64] + "..."
        raise InvalidArgument(field, f"{shown!r} is not a UUID (8-4-4-4-12 hex digits)")
    return lowered
