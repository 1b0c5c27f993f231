"""The engine API's bearer tokens: their forms, their roles, and the rule of what a role may call.

Pure: no file, no socket, no click. A token is given as

- `SECRET`: an operator token named `default` (how tokens were given before they had names);
- `NAME:SECRET`: an operator token named NAME;
- `NAME:SECRET:read` (or `NAME:SECRET:operator`): a token with that role.

A read-only token may call the methods named `Get*`, `List*` and `Watch*`; anything else is
`PERMISSION_DENIED`. An operator token may call everything. The name is what the logs and the
records of an operator's action (`confirmed_rebooted_by`) show; the secret is never shown.

Several tokens may share a name (rotation: list the old and the new secret, then drop the old),
but not with different roles; one secret may not be given to two names or roles. A secret
cannot contain `:` (the separator) and is printable ASCII without spaces (what gRPC metadata
carries); a name is letters, digits, `.`, `_` and `-`. Error messages never repeat the text
they refuse, as part of it may be a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

DEFAULT_NAME = "default"
READ_ONLY_PREFIXES = ("Get", "List", "Watch")
SHORT_SECRET = 16  # characters; a shorter secret is accepted with a warning
FORMS = "SECRET, NAME:SECRET or NAME:SECRET:ROLE (ROLE read or operator)"
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SECRET = re.compile(r"[!-9;-~]+")  # printable ASCII but space and ':'


class TokenError(ValueError):
    """A token, a token file or a set of tokens that cannot be used; the message never
    contains a secret."""


class Role(StrEnum):
    """What a token may do: `operator` everything, `read` only Get*, List* and Watch*."""

    OPERATOR = "operator"
    READ = "read"


@dataclass(frozen=True)
class ApiToken:
    """One accepted bearer token: its name (shown in logs), secret (never shown) and role."""

    name: str
    secret: str = field(repr=False)
    role: Role = Role.OPERATOR

    def may_call(self, method: str) -> bool:
        """Whether this token's role allows the RPC `method` (its bare name, `AddDisk`)."""
        return self.role is Role.OPERATOR or is_read_only(method)


def is_read_only(method: str) -> bool:
    """Whether the RPC `method` (its bare name) only reads: `Get*`, `List*`, `Watch*`. Every
    other method changes state: a read-only token may not call it, and each call is logged
    with who made it."""
    return method.startswith(READ_ONLY_PREFIXES)


def parse_token(text: str) -> ApiToken:
    """A token from one of its forms (module docstring); TokenError says what is wrong."""
    parts = text.strip().split(":")
    if len(parts) > 3:
        raise TokenError(f"too many ':': a token is {FORMS}, and a secret has no ':'")
    if len(parts) == 1:
        name, secret, role = DEFAULT_NAME, parts[0], Role.OPERATOR.value
    else:
        name, secret, role = parts[0], parts[1], parts[2] if len(parts) == 3 else "operator"
    if not name:
        raise TokenError(f"a token's name is empty: a token is {FORMS}")
    if not _NAME.fullmatch(name):
        raise TokenError(
            "a token's name is 1 to 64 letters, digits, '.', '_' or '-' (the name is not shown "
            "here: it may be part of a secret)"
        )
    if not secret:
        raise TokenError(f"token {name!r} has an empty secret: a token is {FORMS}")
    if not _SECRET.fullmatch(secret):
        raise TokenError(f"token {name!r}: a secret is printable ASCII without spaces or ':'")
    if role not in {r.value for r in Role}:
        raise TokenError(f"token {name!r}: the role is neither read nor operator")
    return ApiToken(name, secret, Role(role))


def parse_token_lines(text: str, source: str) -> list[ApiToken]:
    """The tokens of a token file's contents, one per line in any form; blank lines and lines
    starting with `#` are skipped. An error names `source` and the line, never its text."""
    tokens = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            tokens.append(parse_token(stripped))
        except TokenError as exc:
            raise TokenError(f"{source}, line {number}: {exc}") from None
    return tokens


def table_problem(tokens: Iterable[ApiToken]) -> str | None:
    """What makes these tokens unusable together, or None: one secret under two names or
    roles, or one name with two roles. One name with several secrets is rotation: fine."""
    by_secret: dict[str, ApiToken] = {}
    role_of: dict[str, Role] = {}
    for token in tokens:
        seen = by_secret.setdefault(token.secret, token)
        if (seen.name, seen.role) != (token.name, token.role):
            return f"tokens {seen.name!r} and {token.name!r} have the same secret"
        if role_of.setdefault(token.name, token.role) is not token.role:
            return f"token {token.name!r} is given with two roles (read and operator)"
    return None


def unique(tokens: Iterable[ApiToken]) -> tuple[ApiToken, ...]:
    """The tokens in their order, each given twice (a flag and the file) kept once."""
    return tuple(dict.fromkeys(tokens))


def weak_secrets(tokens: Iterable[ApiToken]) -> list[str]:
    """The names of the tokens whose secret is shorter than SHORT_SECRET characters."""
    return sorted({t.name for t in tokens if len(t.secret) < SHORT_SECRET})
