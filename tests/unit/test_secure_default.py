"""Secure by default: plaintext only on loopback unless `--insecure`, for both programs' settings
and for the agents the engine adds. Pure: no process, no socket."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine_service.adapters.agent_client import AgentPool
from engine_service.entrypoints import settings as engine_settings
from engine_service.entrypoints.cli import pki_init
from engine_service.service_layer.inventory import Inventory
from service_common.addresses import host_of, is_loopback, is_loopback_address
from service_common.errors import FailedPrecondition
from vdsm_agent.entrypoints import settings as agent_settings

Parse = Callable[[Sequence[str]], Any]
PROGRAMS = [
    pytest.param(engine_settings.parse_args, "ENGINE_", id="engine-service"),
    pytest.param(agent_settings.parse_args, "VDSM_AGENT_", id="vdsm-agent"),
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("ENGINE_", "VDSM_AGENT_")):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "[::]", "::", "10.0.0.1", "192.0.2.2", "example.com", "", "localhost.com"]
)
def test_hosts_beyond_this_machine(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("address", "host", "loopback"),
    [
        ("127.0.0.1:50051", "127.0.0.1", True),
        ("[::1]:50051", "::1", True),
        ("localhost:0", "localhost", True),
        ("0.0.0.0:0", "0.0.0.0", False),
        ("[::]:54321", "::", False),
        ("agent1:54321", "agent1", False),
        (":50051", "", False),
    ],
)
def test_the_host_of_an_address(address: str, host: str, loopback: bool) -> None:
    assert host_of(address) == host
    assert is_loopback_address(address) is loopback


def refusal(parse: Parse, argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        parse(argv)
    assert stopped.value.code == 2  # a usage error, as every bad setting
    return capsys.readouterr().err


@pytest.mark.parametrize(("parse", "prefix"), PROGRAMS)
@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "10.0.0.1:5000"])
def test_plaintext_off_loopback_is_refused_in_one_line(
    parse: Parse, prefix: str, listen: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refusal(parse, ["--listen", listen], capsys)
    assert len(err.strip().splitlines()) == 1, err  # one line, no usage text
    assert listen in err and "not a loopback address" in err
    assert "--insecure" in err and "enginectl pki init" in err
    assert "--tls-cert" in err and "--tls-key" in err


@pytest.mark.parametrize(("parse", "prefix"), PROGRAMS)
def test_the_listen_address_from_the_environment_or_a_file_is_checked_too(
    parse: Parse,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(f"{prefix}LISTEN", "0.0.0.0:0")
    assert "--insecure" in refusal(parse, [], capsys)
    monkeypatch.delenv(f"{prefix}LISTEN")
    config = tmp_path / "settings.toml"
    config.write_text('listen = "0.0.0.0:0"\n')
    assert "--insecure" in refusal(parse, ["--config", str(config)], capsys)
    config.write_text('listen = "0.0.0.0:0"\ninsecure = true\n')
    assert parse(["--config", str(config)]).insecure is True


@pytest.mark.parametrize(("parse", "prefix"), PROGRAMS)
def test_insecure_accepts_plaintext_off_loopback_from_flag_or_environment(
    parse: Parse, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parse(["--listen", "0.0.0.0:0", "--insecure"]).insecure is True
    monkeypatch.setenv(f"{prefix}INSECURE", "1")
    assert parse(["--listen", "[::]:0"]).insecure is True
    monkeypatch.setenv(f"{prefix}INSECURE", "false")
    assert parse(["--listen", "127.0.0.1:0"]).insecure is False


@pytest.mark.parametrize(("parse", "prefix"), PROGRAMS)
@pytest.mark.parametrize("listen", ["127.0.0.1:0", "127.1.2.3:0", "[::1]:0", "localhost:0"])
def test_loopback_stays_plaintext_friendly(parse: Parse, prefix: str, listen: str) -> None:
    config = parse(["--listen", listen])
    assert config.listen == listen and config.insecure is False and config.tls_cert is None


@pytest.mark.parametrize(("parse", "prefix"), PROGRAMS)
def test_tls_files_allow_any_address(parse: Parse, prefix: str) -> None:
    config = parse(["--listen", "0.0.0.0:0", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
    assert config.tls_cert == Path("c.pem") and config.insecure is False


def unreachable(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the refusal comes before any database work")


def test_the_engine_without_agent_tls_refuses_a_plaintext_agent_off_loopback() -> None:
    # The address is refused before any database work (and so before any agent call).
    refusing = Inventory(unreachable, AgentPool(), refuse_plaintext_off_loopback=True)
    for address in ("10.0.0.1:54321", "agent1:54321", "0.0.0.0:54321", "[::]:54321"):
        with pytest.raises(FailedPrecondition) as refused:
            refusing.add_host("host1", address)
        message = str(refused.value)
        assert message.startswith("address: ") and address in message
        assert "--agent-tls-ca" in message and "--insecure" in message


@pytest.mark.parametrize(
    ("flags", "on_loopback_only"),
    [
        ([], True),
        (["--insecure"], False),
        (["--agent-tls-ca", "ca.pem"], False),
        (["--agent-tls-ca", "ca.pem", "--insecure"], False),
    ],
)
def test_the_engine_takes_agents_off_loopback_only_over_tls_or_with_insecure(
    flags: list[str], on_loopback_only: bool
) -> None:
    from engine_service.entrypoints.server import engine_settings as core_settings

    config = engine_settings.parse_args(flags)
    assert core_settings(config).agents_on_loopback_only is on_loopback_only


def test_pki_init_keeps_an_existing_pki_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    first = CliRunner().invoke(pki_init, ["--out", str(out), "--name", "agent1"])
    assert first.exit_code == 0, first.output
    ca = (out / "ca.pem").read_bytes()
    kept = CliRunner().invoke(pki_init, ["--out", str(out), "--keep-existing"])
    assert kept.exit_code == 0 and "kept" in kept.output
    assert (out / "ca.pem").read_bytes() == ca
    again = CliRunner().invoke(pki_init, ["--out", str(out)])
    assert again.exit_code == 0 and (out / "ca.pem").read_bytes() != ca
