"""docker-compose.yml (TLS by default) and docker-compose.plaintext.yml (its development override)
match the code: Docker cannot run here, so the files are checked by reading.

For both, every service's command must be accepted by the real argument parser (with the
service's environment), its published ports must be the ports it listens on, its health check
must probe the port it serves (the engine's: its readiness, the service name, since
`depends_on` waits for an engine that takes calls; `""` is liveness, SERVING on a standby too),
and the agents must share one storage volume but not their state. The base file must run every
gRPC service over TLS with the certificates its one-shot `pki` service makes (a real `enginectl
pki init`, run here), each certificate signed by the CA its peers trust and valid for the names
they dial; the plaintext override must be the same commands without TLS, with `--insecure`.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from engine_service.adapters.db import normalize_url
from engine_service.entrypoints import server as engine_server
from engine_service.entrypoints.cli import pki_init
from service_common.health_probe import main as probe
from vdsm_agent.entrypoints import server as agent_server

ROOT = Path(__file__).resolve().parents[2]
PARSERS = {"engine-service": engine_server, "vdsm-agent": agent_server}
TLS_FIELDS = {"tls_cert", "tls_key", "tls_client_ca", "agent_tls_ca", "agent_tls_cert"}
TLS_FIELDS |= {"agent_tls_key"}
VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def merged(base: dict, override: dict) -> dict:
    """`docker compose -f base -f override`, for what an override of ours may set: `command`
    and `healthcheck: test` are replaced, other healthcheck keys merged."""
    result = copy.deepcopy(base)
    for name, service in override["services"].items():
        target = result["services"][name]
        for key, value in service.items():
            assert key in ("command", "healthcheck"), f"{name}: {key} is not merged here"
            if key == "command":
                target["command"] = value
            else:
                target["healthcheck"] = {**target["healthcheck"], **value}
    return result


@pytest.fixture(scope="module")
def compose() -> dict:
    return load("docker-compose.yml")


@pytest.fixture(scope="module", params=["tls", "plaintext"])
def stack(request: pytest.FixtureRequest, compose: dict) -> dict:
    """What `docker compose up` runs: the base file, or the base with the plaintext override."""
    if request.param == "tls":
        return compose
    return merged(compose, load("docker-compose.plaintext.yml"))


def interpolate(value: Any, env: Mapping[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` in `value`."""

    def one(found: re.Match[str]) -> str:
        name, how, arg = found.groups()
        if env.get(name):
            return env[name]
        assert how != "?", f"compose stops: {arg}"
        return arg if how == "-" else ""

    return VARIABLE.sub(one, str(value))


def parse(
    service: dict,
    monkeypatch: pytest.MonkeyPatch,
    shell: Mapping[str, str] | None = None,
) -> Any:
    """The service's settings from its command and environment, as the real parser reads them."""
    parser = PARSERS[service["command"][0]]
    for key, value in service.get("environment", {}).items():
        assert key.startswith(parser.ENV_PREFIX), key
        monkeypatch.setenv(key, interpolate(value, shell or {}))
    try:
        return parser.parse_args(service["command"][1:])
    finally:
        for key in service.get("environment", {}):
            monkeypatch.delenv(key)


def ours(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if s.get("build") == "."}


def grpc_services(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in ours(compose).items() if s["command"][0] in PARSERS}


def agents(compose: dict) -> dict[str, dict]:
    found = {n: s for n, s in ours(compose).items() if s["command"][0] == "vdsm-agent"}
    assert len(found) >= 2, "the compose file should run at least two agents"
    return found


def engines(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in ours(compose).items() if s["command"][0] == "engine-service"}


def volume_targets(service: dict) -> dict[str, str]:
    return {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}


def test_every_command_is_an_installed_console_script(stack: dict) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, service in ours(stack).items():
        assert service["command"][0] in scripts, name
        if "test" in service.get("healthcheck", {}):
            assert service["healthcheck"]["test"][1] in scripts, name
        assert service["build"] == "." and (ROOT / "Dockerfile").exists()
    assert set(grpc_services(stack)) == set(ours(stack)) - {"pki"}


def probe_options(test: list[str], port: str) -> dict[str, str]:
    """The options of a `grpc-health-probe 127.0.0.1:PORT --option value ...` health check."""
    assert test[:3] == ["CMD", "grpc-health-probe", f"127.0.0.1:{port}"], test
    options = dict(zip(test[3::2], test[4::2], strict=True))
    assert set(options) <= {"--service", "--tls-ca", "--tls-cert", "--tls-key"}, test
    return options


def test_agent_commands_parse_and_ports_match(stack: dict, monkeypatch) -> None:
    for name, service in agents(stack).items():
        config = parse(service, monkeypatch)
        for key in service.get("environment", {}):
            flag = key.removeprefix(agent_server.ENV_PREFIX).lower()
            assert hasattr(config, flag), f"{name}: {key} is not a flag's variable"
        listen_port = config.listen.rsplit(":", 1)[1]
        assert config.listen.startswith("0.0.0.0:"), f"{name} must listen beyond the container"
        container_ports = {p.split(":")[1] for p in service["ports"]}
        assert listen_port in container_ports, name
        assert config.metrics_listen and config.metrics_listen.rsplit(":", 1)[1] in container_ports
        options = probe_options(service["healthcheck"]["test"], listen_port)
        assert "--service" not in options, name  # an agent reports both names together
        assert ("--tls-ca" in options) is (config.tls_cert is not None), name
        assert ("--tls-cert" in options) is (config.tls_client_ca is not None), name
        volumes = volume_targets(service)
        assert str(config.storage_root) in volumes, f"{name}: storage root is not a volume"
        assert str(config.state_dir) in volumes, f"{name}: state dir is not a volume"


def test_agents_share_storage_but_not_state(stack: dict, monkeypatch) -> None:
    storage, state, host_ports = set(), [], []
    for service in agents(stack).values():
        config = parse(service, monkeypatch)
        volumes = volume_targets(service)
        storage.add(volumes[str(config.storage_root)])
        state.append(volumes[str(config.state_dir)])
        host_ports += [p.split(":")[0] for p in service["ports"]]
    assert len(storage) == 1, "agents of one data center must see the same storage root"
    assert len(set(state)) == len(state), "each agent needs its own state directory"
    assert len(set(host_ports)) == len(host_ports), "published host ports collide"
    assert storage | set(state) <= set(stack["volumes"])


def test_one_engine_and_a_standby_behind_a_profile(stack: dict, monkeypatch) -> None:
    found = engines(stack)
    active = [n for n, s in found.items() if "profiles" not in s]
    standbys = [n for n, s in found.items() if s.get("profiles") == ["standby"]]
    assert len(active) == 1 and len(standbys) == 1, found
    # Both on the same database, so that exactly one of them holds the lease.
    urls = {parse(s, monkeypatch).database_url for s in found.values()}
    assert len(urls) == 1
    host_ports = [p.split(":")[0] for s in found.values() for p in s["ports"]]
    assert len(set(host_ports)) == len(host_ports)


@pytest.mark.parametrize("which", ["engine", "engine-standby"])
def test_engine_service_matches_the_code(stack: dict, monkeypatch, which: str) -> None:
    service = engines(stack)[which]
    config = parse(service, monkeypatch)
    for key in service.get("environment", {}):
        flag = key.removeprefix(engine_server.ENV_PREFIX).lower()
        assert hasattr(config, flag), f"{key} is not a flag's variable"
    port = config.listen.rsplit(":", 1)[1]
    assert config.listen.startswith("0.0.0.0:")
    assert port in {p.split(":")[1] for p in service["ports"]}
    options = probe_options(service["healthcheck"]["test"], port)
    # Readiness; "" (liveness) is SERVING on a standby too.
    assert options["--service"] == engine_server.SERVICE_NAME
    assert ("--tls-ca" in options) is (config.tls_cert is not None)
    assert "--tls-cert" not in options  # the engine asks no client certificate
    # The database is the compose PostgreSQL, reached with the driver the project ships.
    assert normalize_url(config.database_url).startswith("postgresql+psycopg://")
    db_host = config.database_url.split("@", 1)[1].split(":")[0].split("/")[0]
    assert db_host in stack["services"]
    postgres = stack["services"][db_host]
    user = config.database_url.split("//", 1)[1].split(":", 1)[0]
    assert postgres["environment"]["POSTGRES_USER"] == user
    assert config.database_url.rsplit("/", 1)[1] == postgres["environment"]["POSTGRES_DB"]
    assert service["depends_on"][db_host]["condition"] == "service_healthy"
    for agent in agents(stack):
        assert service["depends_on"][agent]["condition"] == "service_healthy"


def test_an_api_token_is_optional_and_taken_from_the_shell(compose: dict, monkeypatch) -> None:
    for service in engines(compose).values():
        assert parse(service, monkeypatch).api_tokens == ()  # `docker compose up` as it is
        tokens = parse(service, monkeypatch, {"ENGINE_API_TOKENS": "t1,t2"}).api_tokens
        assert [getattr(t, "secret", t) for t in tokens] == ["t1", "t2"]


# -- TLS by default ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki_dir(compose: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The pki service's command run here, its --out replaced: (its --out, where it wrote)."""
    command = compose["services"]["pki"]["command"]
    assert command[:3] == ["enginectl", "pki", "init"], command
    args = command[3:]
    with pki_init.make_context("init", list(args)) as ctx:
        out = ctx.params["out"]
    local = tmp_path_factory.mktemp("pki")
    args[args.index("--out") + 1] = str(local)
    made = CliRunner().invoke(pki_init, args)
    assert made.exit_code == 0, made.output
    again = CliRunner().invoke(pki_init, args)  # `docker compose up` again: the PKI stays
    assert again.exit_code == 0 and "kept" in again.output, again.output
    return out, local


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def signed_by(cert: Path, ca: Path) -> bool:
    try:
        certificate(cert).verify_directly_issued_by(certificate(ca))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def names_of(cert: Path) -> set[str]:
    alt = certificate(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return {str(n.value) for n in alt.value}


def is_client_cert(cert: Path) -> bool:
    usage = certificate(cert).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    return ExtendedKeyUsageOID.CLIENT_AUTH in usage.value


def test_the_pki_service_runs_once_into_a_volume_the_others_mount_read_only(
    compose: dict, pki_dir: tuple[str, Path]
) -> None:
    out, _ = pki_dir
    pki = compose["services"]["pki"]
    volume = volume_targets(pki)[out]
    assert volume in compose["volumes"] and f"{volume}:{out}" in pki["volumes"]
    assert "--keep-existing" in pki["command"] and pki.get("restart") == "no"
    for name, service in grpc_services(compose).items():
        assert f"{volume}:{out}:ro" in service["volumes"], name
        assert service["depends_on"]["pki"]["condition"] == "service_completed_successfully"


def test_every_grpc_service_of_the_base_file_runs_tls(
    compose: dict, monkeypatch, pki_dir: tuple[str, Path]
) -> None:
    out, made = pki_dir

    def local(path: Path | str) -> Path:
        """A path of the container, in the PKI made here."""
        found = made / Path(path).relative_to(out)
        assert found.is_file(), f"{path}: `enginectl pki init` makes no such file"
        return found

    agent_configs = {n: parse(s, monkeypatch) for n, s in agents(compose).items()}
    for name, config in agent_configs.items():
        assert config.tls_cert and config.tls_key and config.tls_client_ca, name
        assert not config.insecure, name
        assert {name, "127.0.0.1"} <= names_of(local(config.tls_cert)), name
        options = probe_options(compose["services"][name]["healthcheck"]["test"], "54321")
        assert signed_by(local(config.tls_cert), local(options["--tls-ca"])), name
        assert signed_by(local(options["--tls-cert"]), local(config.tls_client_ca)), name
        assert is_client_cert(local(options["--tls-cert"])), name
        local(options["--tls-key"])
    for name, service in engines(compose).items():
        config = parse(service, monkeypatch)
        assert config.tls_cert and config.tls_key and not config.insecure, name
        assert {name, "127.0.0.1"} <= names_of(local(config.tls_cert)), name
        options = probe_options(service["healthcheck"]["test"], "50051")
        assert signed_by(local(config.tls_cert), local(options["--tls-ca"])), name
        tls = config.agent_tls  # mutual TLS to every agent, which it dials by service name
        assert tls is not None and tls.cert is not None and tls.key is not None, name
        assert is_client_cert(local(tls.cert)), name
        local(tls.key)
        for agent in agent_configs.values():
            assert signed_by(local(agent.tls_cert), local(tls.ca)), name
            assert signed_by(local(tls.cert), local(agent.tls_client_ca)), name


def test_the_health_checks_parse_and_read_their_files(
    stack: dict, pki_dir: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out, made = pki_dir
    for name, service in grpc_services(stack).items():
        test = service["healthcheck"]["test"]
        args = [a.replace(out, str(made)) if a.startswith(out) else a for a in test[3:]]
        with pytest.raises(SystemExit) as exit_status:  # parses, reads its files, reaches nothing
            probe(["127.0.0.1:1", "--timeout", "0.2", *args])
        assert exit_status.value.code == 2, name
        assert "UNAVAILABLE" in capsys.readouterr().err, name


# -- the plaintext override ----------------------------------------------------------------------


def test_the_plaintext_override_is_the_base_without_tls_and_with_insecure(
    compose: dict, monkeypatch
) -> None:
    override = load("docker-compose.plaintext.yml")
    plain = merged(compose, override)
    assert set(override["services"]) == set(grpc_services(compose))
    for name in grpc_services(compose):
        secure = parse(compose["services"][name], monkeypatch)
        config = parse(plain["services"][name], monkeypatch)
        assert config.insecure and not secure.insecure, name
        fields = {f.name for f in dataclasses.fields(config)}
        assert all(getattr(config, f) in (None, ()) for f in fields & TLS_FIELDS), name
        same = fields - TLS_FIELDS - {"insecure"}
        assert {f: getattr(config, f) for f in same} == {f: getattr(secure, f) for f in same}
        test = plain["services"][name]["healthcheck"]["test"]
        assert not any(a.startswith("--tls") for a in test), name
        # Without --insecure, the same command is refused: it listens beyond the container.
        program, *args = plain["services"][name]["command"]
        with pytest.raises(SystemExit) as refused:
            PARSERS[program].parse_args([a for a in args if a != "--insecure"])
        assert refused.value.code == 2
