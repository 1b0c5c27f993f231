"""The services' settings: defaults < --config file < environment < flags, and every refusal
naming the setting. Pure parsing: no process, no socket."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine_service.entrypoints import settings as engine_settings
from service_common.config import (
    CommandLine,
    effective,
    flag_name,
    masked,
    parse_duration,
    without_password,
)
from service_common.tls import ClientTls
from vdsm_agent.entrypoints import settings as agent_settings

engine = engine_settings.parse_args
agent = agent_settings.parse_args
Parse = Callable[[Sequence[str]], Any]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ENGINE_* or VDSM_AGENT_* variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith(("ENGINE_", "VDSM_AGENT_")):
            monkeypatch.delenv(name)


def toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def refused(parse: Parse, argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What a refused command line printed; it exits 2 as click's usage errors do."""
    with pytest.raises(SystemExit) as stopped:
        parse(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err


def secrets(config: engine_settings.Config) -> tuple[str, ...]:
    """The secrets of the engine's --api-token values, in order."""
    return tuple(t.secret for t in config.api_tokens)


def test_engine_defaults() -> None:
    config = engine([])
    assert config == engine_settings.Config(
        listen="127.0.0.1:50051",
        state_dir=Path("/var/lib/engine-service"),
        database_url="sqlite:////var/lib/engine-service/engine.db",
        poll_interval=1.0,
        host_failure_polls=3,
        task_timeout=300.0,
        zombie_grace=60.0,
        agent_deadline=3.0,
        orphans="fail",
        metrics_listen=None,
        log_format="text",
        log_level="INFO",
        grace_seconds=10.0,
        bound_address_file=None,
        agent_tls_ca=None,
        agent_tls_cert=None,
        agent_tls_key=None,
        tls_cert=None,
        tls_key=None,
        max_watchers=64,
        api_tokens=(),
        api_token_file=None,
        ui_listen=None,  # the console is off by default
        ui_bound_address_file=None,
    )
    assert config.agent_tls is None


def test_agent_defaults() -> None:
    assert agent([]) == agent_settings.Config(
        listen="127.0.0.1:54321",
        storage_root=Path("/var/lib/vdsm-agent/storage"),
        state_dir=Path("/var/lib/vdsm-agent/state"),
        throttle=0,
        workers=8,
        metrics_listen=None,
        log_format="text",
        log_level="INFO",
        grace_seconds=10.0,
        bound_address_file=None,
        tls_cert=None,
        tls_key=None,
        tls_client_ca=None,
    )


def test_the_servers_expose_the_settings_the_tests_and_tools_use() -> None:
    from engine_service.entrypoints import server as engine_server
    from vdsm_agent.entrypoints import server as agent_server

    assert engine_server.parse_args([]) == engine([])
    assert agent_server.parse_args([]) == agent([])
    assert (engine_server.ENV_PREFIX, agent_server.ENV_PREFIX) == ("ENGINE_", "VDSM_AGENT_")


def test_the_default_database_is_sqlite_in_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert engine(["--state-dir", str(tmp_path)]).database_url == f"sqlite:///{tmp_path}/engine.db"
    monkeypatch.setenv("ENGINE_STATE_DIR", "/srv/engine")
    assert engine([]).database_url == "sqlite:////srv/engine/engine.db"
    given = engine(["--database-url", "postgresql://engine@db/engine"])
    assert given.database_url == "postgresql://engine@db/engine"
    assert engine(["--database-url", ""]).database_url == "sqlite:////srv/engine/engine.db"


def test_defaults_then_file_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = toml(
        tmp_path,
        'poll-interval = 5.0\ntask_timeout = 42\norphans = "resubmit"\nlisten = "0.0.0.0:6000"\n'
        "insecure = true\n",
    )
    assert engine([]).poll_interval == 1.0
    monkeypatch.setenv("ENGINE_CONFIG", str(config))
    from_file = engine([])
    assert (
        from_file.poll_interval,
        from_file.task_timeout,
        from_file.orphans,
        from_file.listen,
    ) == (5.0, 42.0, "resubmit", "0.0.0.0:6000")
    monkeypatch.setenv("ENGINE_POLL_INTERVAL", "2.5")
    assert engine([]).poll_interval == 2.5
    flagged = engine(["--poll-interval", "0.5", "--orphans", "fail"])
    assert (flagged.poll_interval, flagged.orphans, flagged.task_timeout) == (0.5, "fail", 42.0)


def test_the_config_flag_names_the_file_too(tmp_path: Path) -> None:
    config = toml(tmp_path, "workers = 3\nthrottle = 1024\n")
    parsed = agent(["--config", str(config), "--workers", "5"])
    assert (parsed.workers, parsed.throttle) == (5, 1024)


def test_api_tokens_file_list_then_comma_separated_variable_then_repeated_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGINE_CONFIG", str(toml(tmp_path, 'api-token = ["f1", "f2"]\n')))
    assert secrets(engine([])) == ("f1", "f2")
    monkeypatch.setenv("ENGINE_API_TOKENS", " e1, e2,,")
    assert secrets(engine([])) == ("e1", "e2")
    flagged = engine(["--api-token", "c1", "--api-token", "c2"])
    assert secrets(flagged) == ("c1", "c2")  # the flags replace, not extend


def test_a_repeatable_setting_in_the_file_may_be_one_comma_separated_string(
    tmp_path: Path,
) -> None:
    assert secrets(engine(["--config", str(toml(tmp_path, 'api-token = "a,b"\n'))])) == ("a", "b")


@pytest.mark.parametrize(
    "command_line", [engine_settings.COMMAND_LINE, agent_settings.COMMAND_LINE], ids=str
)
def test_help_shows_the_variable_of_every_setting(command_line: CommandLine[Any]) -> None:
    shown = CliRunner().invoke(command_line.command(), ["--help"], terminal_width=200)
    assert shown.exit_code == 0
    help_text = " ".join(shown.output.split())
    for field in dataclasses.fields(command_line.schema):
        flag = flag_name(field)
        variable = command_line.prefix + flag.upper().replace("-", "_")
        if flag == "api-token":
            variable = "ENGINE_API_TOKENS"
        assert f"--{flag} " in help_text
        assert f"env var: {variable}" in help_text, flag
    assert f"env var: {command_line.prefix}CONFIG" in help_text


def test_help_exits_zero_after_printing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        engine(["--help"])
    assert stopped.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Usage: engine-service" in out and "default: (sqlite:///STATE_DIR/engine.db)" in out


@pytest.mark.parametrize(
    ("parse", "flag", "value"),
    [
        (engine, "--poll-interval", "0"),
        (engine, "--host-failure-polls", "-1"),
        (engine, "--task-timeout", "-5"),
        (engine, "--zombie-grace", "0"),
        (engine, "--agent-deadline", "0"),
        (engine, "--max-watchers", "0"),
        (engine, "--grace", "-1"),
        (agent, "--workers", "0"),
        (agent, "--throttle", "-1"),
        (agent, "--grace", "-1"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_setting(
    parse: Parse, flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(parse, [flag, value], capsys)
    assert f"Invalid value for '{flag}'" in err and "not in the range" in err


def test_a_bad_variable_is_refused_naming_the_flag_and_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VDSM_AGENT_THROTTLE", "fast")
    err = refused(agent, [], capsys)
    assert "'--throttle' (from VDSM_AGENT_THROTTLE): 'fast' is not a valid integer" in err


@pytest.mark.parametrize(
    ("parse", "flag", "variable"),
    [(engine, "--orphans", "ENGINE_ORPHANS"), (agent, "--log-format", "VDSM_AGENT_LOG_FORMAT")],
)
def test_a_bad_choice_is_refused_naming_the_choices(
    parse: Parse,
    flag: str,
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = refused(parse, [flag, "ignore"], capsys)
    assert f"Invalid value for '{flag}': 'ignore' is not one of" in err
    monkeypatch.setenv(variable, "xml")
    assert f"'{flag}' (from {variable}): 'xml' is not one of" in refused(parse, [], capsys)


@pytest.mark.parametrize(
    ("parse", "variable"), [(engine, "ENGINE_LOG_LEVEL"), (agent, "VDSM_AGENT_LOG_LEVEL")]
)
def test_log_level_from_the_flag_or_the_variable_in_any_case(
    parse: Parse, variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse(["--log-level", "warning"]).log_level == "WARNING"
    monkeypatch.setenv(variable, "ERROR")
    assert parse([]).log_level == "ERROR"
    assert parse(["--log-level", "DEBUG"]).log_level == "DEBUG"  # the flag wins
    assert "'--log-level': 'loud' is not one of" in refused(parse, ["--log-level", "loud"], capsys)


def test_a_bad_value_in_the_file_is_refused_naming_the_setting_and_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = toml(tmp_path, "host-failure-polls = -1\n")
    err = refused(engine, ["--config", str(config)], capsys)
    assert f"'--host-failure-polls' (from {config}): -1 is not in the range" in err
    config.write_text('log-format = "xml"\n')
    assert f"'--log-format' (from {config})" in refused(agent, ["--config", str(config)], capsys)


def test_an_unknown_key_in_the_file_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VDSM_AGENT_CONFIG", str(toml(tmp_path, "throttel = 5\n")))
    err = refused(agent, [], capsys)
    assert "unknown setting 'throttel'" in err and "throttle" in err


@pytest.mark.parametrize(
    "text", ["poll-interval = \n", "[engine\n", "listen = ['a', 'b']\n", "api-token = 3\n"]
)
def test_a_file_that_is_not_settings_is_refused(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "Invalid value for '--config'" in refused(
        engine, ["--config", str(toml(tmp_path, text))], capsys
    )


def test_a_missing_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(engine, ["--config", str(tmp_path / "nothing.toml")], capsys)
    assert "'--config'" in err and "does not exist" in err


def test_an_unknown_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "No such option '--poll-intervall'" in refused(engine, ["--poll-intervall", "1"], capsys)


@pytest.mark.parametrize(
    ("parse", "argv", "message"),
    [
        (engine, ["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (engine, ["--tls-key", "k.pem"], "--tls-cert and --tls-key go together"),
        (
            engine,
            ["--agent-tls-ca", "ca.pem", "--agent-tls-cert", "c.pem"],
            "--agent-tls-cert and --agent-tls-key go together",
        ),
        (
            engine,
            ["--agent-tls-cert", "c.pem", "--agent-tls-key", "k.pem"],
            "--agent-tls-cert needs --agent-tls-ca",
        ),
        (agent, ["--tls-key", "k.pem"], "--tls-cert and --tls-key go together"),
        (agent, ["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert and --tls-key"),
    ],
)
def test_paired_tls_settings_are_checked(
    parse: Parse, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"Error: {message}" in refused(parse, argv, capsys)


def test_paired_tls_settings_from_the_environment_are_checked_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENGINE_TLS_CERT", "c.pem")
    assert "--tls-cert and --tls-key go together" in refused(engine, [], capsys)
    monkeypatch.setenv("ENGINE_TLS_KEY", "k.pem")
    assert engine([]).tls_key == Path("k.pem")


def test_complete_tls_settings_are_accepted() -> None:
    pairs = ["--agent-tls-ca", "ca", "--agent-tls-cert", "c", "--agent-tls-key", "k"]
    assert engine(pairs).agent_tls == ClientTls(Path("ca"), Path("c"), Path("k"))
    assert engine(["--agent-tls-ca", "ca"]).agent_tls == ClientTls(Path("ca"))
    mutual = agent(["--tls-cert", "c", "--tls-key", "k", "--tls-client-ca", "ca"])
    assert mutual.tls_client_ca == Path("ca")


def test_an_empty_value_leaves_an_optional_setting_unset() -> None:
    assert engine(["--metrics-listen", ""]).metrics_listen is None
    assert agent(["--bound-address-file", ""]).bound_address_file is None


def test_the_effective_configuration_masks_secrets() -> None:
    shown = effective(
        engine(
            [
                "--database-url",
                "postgresql://engine:s3cret@db:5432/engine",
                "--api-token",
                "t0ken",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
            ]
        )
    )
    assert set(shown) == {f.name for f in dataclasses.fields(engine_settings.Config)}
    assert shown["database_url"] == "postgresql://engine:***@db:5432/engine"
    assert "s3cret" not in str(shown) and "t0ken" not in str(shown)
    assert shown["api_tokens"] == "***" and shown["tls_key"] == "***"
    assert shown["tls_cert"] == "c.pem" and shown["metrics_listen"] == "-"
    assert shown["poll_interval"] == "1.0" and shown["listen"] == "127.0.0.1:50051"


def test_masked_hides_declared_secrets_and_url_passwords_only() -> None:
    shown = masked(
        {"url": "postgresql://u:p@h/db", "plain": "sqlite:////x.db", "token": "", "n": 3},
        secret_keys=["token"],
    )
    assert shown == {
        "url": "postgresql://u:***@h/db",
        "plain": "sqlite:////x.db",
        "token": "",
        "n": "3",
    }
    assert without_password("postgresql://u@h/db") == "postgresql://u@h/db"
    assert (
        without_password("postgresql://u:p:q@h:5432/db?x=1") == "postgresql://u:***@h:5432/db?x=1"
    )


@pytest.mark.parametrize("parse", [engine, agent])
def test_every_setting_is_declared_once_with_a_distinct_flag(parse: Parse) -> None:
    parsed = parse([])
    flags = [flag_name(field) for field in dataclasses.fields(parsed)]
    assert len(flags) == len(set(flags)) and "config" not in flags
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.listen = "0.0.0.0:1"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400.0),
        ("12h", 43200.0),
        ("90m", 5400.0),
        ("45s", 45.0),
        ("3600", 3600.0),
        ("1.5h", 5400.0),
        (" 7D ", 7 * 86400.0),
        ("0", 0.0),
    ],
)
def test_a_duration_is_days_hours_minutes_seconds_or_plain_seconds(
    text: str, seconds: float
) -> None:
    assert parse_duration(text) == seconds
    assert engine(["--retention", text]).retention == seconds


@pytest.mark.parametrize("text", ["", "-1", "3x", "d", "1d2h", "inf", "nan", "30 days"])
def test_a_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_retention_defaults_to_30_days_and_comes_from_file_environment_and_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert engine([]).retention == 30 * 86400.0
    assert "default: (30d)" in " ".join(
        CliRunner().invoke(engine_settings.COMMAND_LINE.command(), ["--help"]).output.split()
    )
    monkeypatch.setenv("ENGINE_CONFIG", str(toml(tmp_path, 'retention = "7d"\n')))
    assert engine([]).retention == 7 * 86400.0
    monkeypatch.setenv("ENGINE_CONFIG", str(toml(tmp_path, "retention = 0\n")))
    assert engine([]).retention == 0.0  # a number in the file is seconds: 0 keeps everything
    monkeypatch.setenv("ENGINE_RETENTION", "12h")
    assert engine([]).retention == 43200.0
    assert engine(["--retention", "90m"]).retention == 5400.0


def test_a_bad_retention_is_a_usage_error_naming_the_option_and_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(engine, ["--retention", "3x"], capsys)
    assert "Invalid value for '--retention': '3x' is not a duration" in err
    monkeypatch.setenv("ENGINE_RETENTION", "-1d")
    assert "'--retention' (from ENGINE_RETENTION): '-1d' is not a duration" in refused(
        engine, [], capsys
    )
    monkeypatch.delenv("ENGINE_RETENTION")
    config = toml(tmp_path, 'retention = "forever"\n')
    err = refused(engine, ["--config", str(config)], capsys)
    assert f"'--retention' (from {config}): 'forever' is not a duration" in err
