"""The engine's token settings as click reads them: `--api-token` (repeatable; the variable
`ENGINE_API_TOKENS` and the file key are comma-separated) and `--api-token-file FILE`.

Each token is parsed as the option is read (`tokens.parse_token`), so a bad one stops the
engine with a usage error naming the option and where its value came from; `TokenTable`
checks the tokens of both options together. The file's contents are secrets: an error names
the file and the line, never the text, and the effective configuration shows the path only."""

from __future__ import annotations

import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from engine_service.entrypoints.tokens import (
    SHORT_SECRET,
    ApiToken,
    TokenError,
    parse_token,
    parse_token_lines,
    table_problem,
    unique,
    weak_secrets,
)
from service_common.config import CommaSeparated


class ApiTokenType(CommaSeparated):
    """One `--api-token` value (SECRET, NAME:SECRET or NAME:SECRET:ROLE) as an `ApiToken`."""

    name = "token"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, ApiToken):
            return value
        try:
            return parse_token(str(value))
        except TokenError as exc:
            self.fail(str(exc), param, ctx)


@dataclass(frozen=True)
class TokenFile:
    """A `--api-token-file` as read at start: its path (shown) and its tokens (secret).
    `others_may_read`: the file's mode lets every user of the machine read it."""

    path: Path
    tokens: tuple[ApiToken, ...] = field(repr=False)
    others_may_read: bool = False

    def __str__(self) -> str:
        return str(self.path)


def read_token_file(path: Path) -> TokenFile:
    """The tokens of the file at `path`, one per line (`tokens.parse_token_lines`); TokenError
    if it cannot be read or holds no token (an empty file must not leave the API open)."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"{path} cannot be read: {exc.__class__.__name__}") from None
    tokens = parse_token_lines(text, str(path))
    if not tokens:
        raise TokenError(f"{path} holds no token (one per line; '#' starts a comment)")
    return TokenFile(path, tuple(tokens), bool(mode & stat.S_IROTH))


class TokenFileType(click.ParamType):
    """`--api-token-file FILE`, read and parsed as the option is: a `TokenFile`."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, TokenFile):
            return value
        try:
            return read_token_file(Path(str(value)))
        except TokenError as exc:
            self.fail(str(exc), param, ctx)


@dataclass(frozen=True)
class TokenTable:
    """The tokens of `--api-token` and `--api-token-file` work together: one secret is not
    given to two names or roles, one name not to two roles (`tokens.table_problem`)."""

    tokens: str = "api_tokens"
    file: str = "api_token_file"

    def problem(self, values: Mapping[str, Any], flag: Callable[[str], str]) -> str | None:
        found = table_problem(all_tokens(values[self.tokens], values[self.file]))
        if found is None:
            return None
        return f"{flag(self.tokens)} and {flag(self.file)}: {found}"


def all_tokens(given: tuple[ApiToken, ...], file: TokenFile | None) -> tuple[ApiToken, ...]:
    """The tokens of the options and then of the file, each given twice kept once."""
    return unique((*given, *(file.tokens if file else ())))


def token_warnings(given: tuple[ApiToken, ...], file: TokenFile | None) -> list[str]:
    """What is weak about the tokens, for warnings at start: short secrets (by token name),
    a token file that every user may read."""
    warnings = [
        f"token {name!r} has a secret shorter than {SHORT_SECRET} characters: easy to guess"
        for name in weak_secrets(all_tokens(given, file))
    ]
    if file is not None and file.others_may_read:
        warnings.append(
            f"{file.path} (--api-token-file) may be read by every user of this machine: "
            "chmod o-r it"
        )
    return warnings
