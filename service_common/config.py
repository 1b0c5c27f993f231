"""Configuration of a service from, in rising precedence: built-in defaults, a TOML file
(`--config FILE`), environment variables (PREFIX + the flag in upper case, `-` as `_`), and
command-line flags. The effective configuration is logged at startup with secrets masked."""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

SECRET_WORDS = ("token", "password", "secret", "key")


def env_name(prefix: str, dest: str) -> str:
    return prefix + dest.upper()


def parse_layered(
    parser: argparse.ArgumentParser,
    prefix: str,
    argv: Sequence[str] | None,
    env_names: Mapping[str, str] | None = None,
) -> argparse.Namespace:
    """Parse `argv` over the file named by --config (or PREFIX + CONFIG) and the environment.

    `env_names` maps a setting to a variable other than PREFIX + SETTING. A repeatable flag
    (action "append") takes a list in the file and a comma-separated variable; flags given on
    the command line replace, rather than extend, what the file or the environment said."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path, default=os.environ.get(env_name(prefix, "config")))
    known, _ = pre.parse_known_args(argv)
    dests = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    layered: dict[str, Any] = {}
    if known.config is not None:
        layered.update(read_config_file(known.config, dests))
    for dest in dests:
        from_env = os.environ.get((env_names or {}).get(dest, env_name(prefix, dest)))
        if from_env is not None:
            layered[dest] = from_env
    lists: dict[str, list[str]] = {}
    for dest, value in list(layered.items()):
        action = dests[dest]
        if isinstance(action, argparse._AppendAction):
            items = value.split(",") if isinstance(value, str) else list(value)
            lists[dest] = [str(item).strip() for item in items if str(item).strip()]
            del layered[dest]
            continue
        if isinstance(value, str) and action.type is not None and callable(action.type):
            try:
                value = action.type(value)
            except (ValueError, argparse.ArgumentTypeError) as exc:
                parser.error(
                    f"{action.option_strings[0]} ({env_name(prefix, dest)} or config file): {exc}"
                )
        if action.choices is not None and value not in action.choices:
            parser.error(
                f"{action.option_strings[0]}: {value!r} is not one of "
                f"{', '.join(map(str, action.choices))}"
            )
        layered[dest] = value
    parser.set_defaults(**layered)
    parser.add_argument(
        "--config",
        type=Path,
        default=known.config,
        help=f"a TOML file of settings named like the flags (env {prefix}CONFIG);"
        " the environment and flags override it",
    )
    ns = parser.parse_args(argv)
    for dest, items in lists.items():
        if getattr(ns, dest) is None:
            setattr(ns, dest, items)
    return ns


def read_config_file(path: Path, dests: Mapping[str, argparse.Action]) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"--config: no file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SystemExit(f"--config: {path} is not valid TOML: {exc}") from None
    settings: dict[str, Any] = {}
    for key, value in raw.items():
        dest = key.replace("-", "_")
        if dest not in dests:
            raise SystemExit(
                f"--config: {path}: unknown setting {key!r}; known: "
                f"{', '.join(sorted(d.replace('_', '-') for d in dests))}"
            )
        settings[dest] = value
    return settings


def masked(settings: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> dict[str, str]:
    """Settings as strings for a log line: secrets replaced, URL passwords hidden."""
    secret = set(secret_keys)
    shown: dict[str, str] = {}
    for key, value in settings.items():
        if value is None:
            shown[key] = "-"
        elif key in secret or any(word in key for word in SECRET_WORDS):
            shown[key] = "***" if value else ""
        elif isinstance(value, str) and "://" in value:
            try:
                shown[key] = make_url(value).render_as_string(hide_password=True)
            except Exception:
                shown[key] = value
        else:
            shown[key] = str(value)
    return shown
