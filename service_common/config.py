"""Settings of a service, each declared once as a field of a frozen dataclass.

A field's `setting(...)` metadata says everything about it: its help, click type, default,
whether it is secret, and (rarely) a flag or a variable not named after the field. From these,
`CommandLine` builds a click command whose values come, in rising precedence, from the
defaults, a TOML file (`--config FILE`, keys named like the flags, read into click's
`default_map`), environment variables (PREFIX + the flag in upper case, `-` as `_`) and flags.
A bad value stops with click's usage error (exit status 2) naming the setting and its source.
The effective configuration is logged at startup with secrets masked (`effective`). Every
such command also takes `--version`: `PROG X.Y.Z` from the package metadata, exit status 0."""

from __future__ import annotations

import dataclasses
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, dataclass_transform

import click
from click.core import ParameterSource

from service_common.version import version

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
C = TypeVar("C")

PATH = click.Path(path_type=Path)
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)
POSITIVE_INT = click.IntRange(min=1)
NON_NEGATIVE_FLOAT = click.FloatRange(min=0)
NON_NEGATIVE_INT = click.IntRange(min=0)
LOG_FORMAT = click.Choice(["text", "json"])
LOG_LEVEL = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)
CONFIG_FILE = "service_common.config.file"  # where ctx.meta keeps the --config file read
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in `30d`, `12h`, `90m`, `45s` or plain seconds (`3600`, `0`); ValueError if
    it is none of these or negative."""
    found = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)", text.strip().lower())
    if found is None:
        raise ValueError(f"{text!r} is not a duration: use 30d, 12h, 90m, 45s or seconds")
    return float(found[1]) * DURATION_UNITS[found[2]]


class Duration(click.ParamType):
    """A duration setting (`parse_duration`), as seconds; a number in the file is seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # seconds, checked as text
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()


@dataclass(frozen=True)
class Setting:
    """How one field of a settings dataclass is set: flag, help, type, default, variable."""

    help: str
    type: Any = None  # a click type (or a Python type click knows); None is a string
    # (a repeatable setting's type, if given, is a CommaSeparated: the variable is split)
    default: Any = None  # None: unset unless `default_from` derives it
    secret: bool = False  # masked in the effective configuration
    flag: str | None = None  # the flag without "--", if not the field's name with dashes
    env: str | None = None  # the variable, if not PREFIX + FLAG
    multiple: bool = False  # repeatable flag, comma-separated variable, list in the file
    default_from: Callable[[Mapping[str, Any]], Any] | None = None  # from the other settings
    default_help: str | None = None  # how --help shows a derived default


def setting(help: str, *, default: Any = dataclasses.MISSING, **how: Any) -> Any:
    """A field of a `settings` class, its `Setting` (the keywords of `Setting`) as metadata."""
    known = Setting(help, default=None if default is dataclasses.MISSING else default, **how)
    return dataclasses.field(default=default, metadata={"setting": known})


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(setting,))
def settings(cls: type[C]) -> type[C]:
    """A settings class: a frozen dataclass, keyword-only, every field from `setting(...)`."""
    return dataclass(frozen=True, kw_only=True)(cls)


@settings
class ServerSettings:
    """The settings every server of this project has, declared once for both."""

    metrics_listen: str | None = setting(
        "HOST:PORT to serve Prometheus metrics at /metrics (default: off)"
    )
    log_format: str = setting("how log lines look", type=LOG_FORMAT, default="text")
    log_level: str = setting("the least severe log lines written", type=LOG_LEVEL, default="INFO")
    grace_seconds: float = setting(
        "seconds in-flight RPCs get to finish after SIGTERM",
        flag="grace",
        type=NON_NEGATIVE_FLOAT,
        default=10.0,
    )
    insecure: bool = setting(
        "allows plaintext on a non-loopback address (refused at start without it)",
        type=bool,
        default=False,
    )


def setting_of(field: dataclasses.Field[Any]) -> Setting:
    found = field.metadata.get("setting")
    if not isinstance(found, Setting):
        raise TypeError(f"field {field.name!r} is not declared with setting(...)")
    return found


def flag_name(field: dataclasses.Field[Any]) -> str:
    return setting_of(field).flag or field.name.replace("_", "-")


class CommaSeparated(click.ParamType):
    """Strings, several of them in one variable or file value: `a,b` (blanks dropped)."""

    name = "text"

    def split_envvar_value(self, rv: str) -> Sequence[str]:
        return [item.strip() for item in rv.split(",") if item.strip()]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return str(value).strip()


class SettingOption(click.Option):
    """A click option whose errors say where a bad value came from (variable or file)."""

    def type_cast_value(self, ctx: click.Context, value: Any) -> Any:
        if value == "" and self.default is None:
            return None  # an empty value leaves an optional setting unset
        return super().type_cast_value(ctx, value)

    def get_error_hint(self, ctx: click.Context | None) -> str:
        hint = click.Parameter.get_error_hint(self, ctx)  # without click's "(env var: ...)"
        source = ctx.get_parameter_source(self.name) if ctx and self.name else None
        if source is ParameterSource.ENVIRONMENT:
            return f"{hint} (from {self.envvar})"
        if ctx and source is ParameterSource.DEFAULT_MAP:
            return f"{hint} (from {ctx.meta.get(CONFIG_FILE, 'the --config file')})"
        return hint


@dataclass(frozen=True)
class Together:
    """Settings given all together or not at all."""

    names: tuple[str, ...]

    def problem(self, values: Mapping[str, Any], flag: Callable[[str], str]) -> str | None:
        given = [values[name] is not None for name in self.names]
        if any(given) and not all(given):
            return f"{' and '.join(map(flag, self.names))} go together"
        return None


@dataclass(frozen=True)
class Needs:
    """A setting that means something only with others given too."""

    name: str
    required: tuple[str, ...]

    def problem(self, values: Mapping[str, Any], flag: Callable[[str], str]) -> str | None:
        if values[self.name] is not None and any(values[n] is None for n in self.required):
            return f"{flag(self.name)} needs {' and '.join(map(flag, self.required))}"
        return None


class Rule(Protocol):
    """A check across settings: what is wrong with these values, or None."""

    def problem(self, values: Mapping[str, Any], flag: Callable[[str], str]) -> str | None: ...


class Policy:
    """A rule about what is safe rather than what is well formed: its refusal is one line on
    stderr, what to do instead, without the usage text (still exit status 2)."""


def together(*names: str) -> Together:
    return Together(names)


def needs(name: str, *required: str) -> Needs:
    return Needs(name, required)


@dataclass(frozen=True)
class CommandLine(Generic[T]):
    """A service's command line, generated from its settings dataclass `schema`."""

    schema: type[T]
    prog: str
    prefix: str  # of every variable: ENGINE_, VDSM_AGENT_
    description: str
    rules: tuple[Rule, ...] = ()

    def fields(self) -> dict[str, dataclasses.Field[Any]]:
        return {f.name: f for f in dataclasses.fields(self.schema)}

    def env_var(self, field: dataclasses.Field[Any]) -> str:
        explicit = setting_of(field).env
        return explicit or self.prefix + flag_name(field).upper().replace("-", "_")

    def flag(self, name: str) -> str:
        return "--" + flag_name(self.fields()[name])

    def option(self, field: dataclasses.Field[Any]) -> click.Option:
        s = setting_of(field)
        shown = s.default_help or (s.default is not None and s.default != ())
        return SettingOption(
            [f"--{flag_name(field)}", field.name],
            type=(s.type or CommaSeparated()) if s.multiple else s.type,
            default=() if s.multiple and s.default is None else s.default,
            multiple=s.multiple,
            is_flag=True if s.type is bool else None,  # a boolean is a flag: --insecure
            envvar=self.env_var(field),
            show_envvar=True,
            show_default=shown,
            help=s.help + (" (repeatable; the variable is comma-separated)" if s.multiple else ""),
        )

    def command(self) -> click.Command:
        config = SettingOption(
            ["--config"],
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            envvar=self.prefix + "CONFIG",
            show_envvar=True,
            is_eager=True,
            expose_value=False,
            callback=self.read_file,
            help="a TOML file of settings named like the flags (list for a repeatable one); "
            "the environment and flags override it",
        )
        version = click.Option(
            ["--version"],
            is_flag=True,
            is_eager=True,
            expose_value=False,
            callback=self.show_version,
            help="print the program's version and exit",
        )
        return click.Command(
            self.prog,
            params=[config, *map(self.option, self.fields().values()), version],
            help=self.description,
            context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
        )

    def show_version(self, ctx: click.Context, param: click.Parameter, value: bool) -> None:
        """Callback of --version: `PROG X.Y.Z` from the package metadata, then exit 0."""
        if value and not ctx.resilient_parsing:
            click.echo(f"{self.prog} {version()}")
            ctx.exit(0)

    def read_file(self, ctx: click.Context, param: click.Parameter, path: Path | None) -> None:
        """Callback of --config: the file's settings become click's `default_map`."""
        if path is None:
            return
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise click.BadParameter(f"{path} is not a readable TOML file: {exc}") from None
        by_flag = {flag_name(f): f for f in self.fields().values()}
        defaults: dict[str, Any] = {}
        for key, value in raw.items():
            field = by_flag.get(key.replace("_", "-"))
            if field is None:
                raise click.BadParameter(
                    f"{path}: unknown setting {key!r}; known: {', '.join(sorted(by_flag))}"
                )
            if setting_of(field).multiple:
                if isinstance(value, str):
                    value = CommaSeparated().split_envvar_value(value)
                elif not isinstance(value, list):
                    raise click.BadParameter(f"{path}: {key!r} takes a list of strings")
            elif isinstance(value, list | dict):
                raise click.BadParameter(f"{path}: {key!r} takes one value, not {value!r}")
            defaults[field.name] = value
        ctx.default_map = defaults
        ctx.meta[CONFIG_FILE] = path

    def load(self, ctx: click.Context) -> T:
        """The settings object from the parsed values, derived defaults and cross-checks."""
        values = dict(ctx.params)
        fields = self.fields()
        for name, value in values.items():
            derive = setting_of(fields[name]).default_from
            if value is None and derive is not None:
                values[name] = derive(values)
        for rule in self.rules:
            problem = rule.problem(values, self.flag)
            if problem:
                raise click.UsageError(problem, None if isinstance(rule, Policy) else ctx)
        return self.schema(**values)

    def parse(self, argv: Sequence[str] | None = None) -> T:
        """Parse `argv` (default: the process's); --help and bad settings exit as click does."""
        args = list(sys.argv[1:] if argv is None else argv)
        try:
            with self.command().make_context(self.prog, args) as ctx:
                return self.load(ctx)
        except click.exceptions.Exit as done:  # --help
            raise SystemExit(done.exit_code) from None
        except click.ClickException as exc:
            exc.show()
            raise SystemExit(exc.exit_code) from None


def effective(settings: DataclassInstance) -> dict[str, str]:
    """A settings object as strings for the startup log line, secrets masked."""
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    secret = [f.name for f in dataclasses.fields(settings) if setting_of(f).secret]
    return masked(values, secret)


def masked(settings: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> dict[str, str]:
    """Settings as strings for a log line: secrets replaced, URL passwords hidden."""
    secret = set(secret_keys)
    shown: dict[str, str] = {}
    for key, value in settings.items():
        if value is None:
            shown[key] = "-"
        elif key in secret:
            shown[key] = "***" if value else ""
        elif isinstance(value, str) and "://" in value:
            shown[key] = without_password(value)
        else:
            shown[key] = str(value)
    return shown


def without_password(url: str) -> str:
    """`scheme://user:***@host/...` for `scheme://user:password@host/...`."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if not (sep and at and colon):
        return url
    return f"{scheme}://{user}:***@{host}{slash}{path}"
