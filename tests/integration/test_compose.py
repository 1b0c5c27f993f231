"""docker-compose.yml matches the code: Docker cannot run here, so the file is checked by reading.

Every service's command must be accepted by the real argument parser (with the service's
environment), its published ports must be the ports it listens on, its health check must probe
the port it serves (the engine's: its readiness, the service name, since `depends_on` waits for
an engine that takes calls; `""` is liveness, SERVING on a standby too), and the agents must
share one storage volume but not their state.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from engine_service.adapters.db import normalize_url
from engine_service.entrypoints import server as engine_server
from vdsm_agent.entrypoints import server as agent_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def agents(compose: dict) -> dict[str, dict]:
    found = {n: s for n, s in ours(compose).items() if s["command"][0] == "vdsm-agent"}
    assert len(found) >= 2, "the compose file should run at least two agents"
    return found


def volume_targets(service: dict) -> dict[str, str]:
    return {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}


def ours(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if s.get("build") == "."}


def test_every_command_is_an_installed_console_script(compose: dict) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, service in ours(compose).items():
        assert service["command"][0] in scripts, name
        assert service["healthcheck"]["test"][1] in scripts, name
        assert service["build"] == "." and (ROOT / "Dockerfile").exists()


def test_agent_commands_parse_and_ports_match(compose: dict, monkeypatch) -> None:
    for name, service in agents(compose).items():
        for key, value in service.get("environment", {}).items():
            assert key.startswith(agent_server.ENV_PREFIX), (name, key)
            monkeypatch.setenv(key, str(value))
        config = agent_server.parse_args(service["command"][1:])
        for key in service.get("environment", {}):
            flag = key.removeprefix(agent_server.ENV_PREFIX).lower()
            assert hasattr(config, flag), f"{name}: {key} is not a flag's variable"
        listen_port = config.listen.rsplit(":", 1)[1]
        assert config.listen.startswith("0.0.0.0:"), f"{name} must listen beyond the container"
        container_ports = {p.split(":")[1] for p in service["ports"]}
        assert listen_port in container_ports, name
        assert config.metrics_listen and config.metrics_listen.rsplit(":", 1)[1] in container_ports
        assert service["healthcheck"]["test"] == [
            "CMD",
            "grpc-health-probe",
            f"127.0.0.1:{listen_port}",
        ], name
        volumes = volume_targets(service)
        assert str(config.storage_root) in volumes, f"{name}: storage root is not a volume"
        assert str(config.state_dir) in volumes, f"{name}: state dir is not a volume"


def test_agents_share_storage_but_not_state(compose: dict, monkeypatch) -> None:
    storage, state, host_ports = set(), [], []
    for service in agents(compose).values():
        config = agent_server.parse_args(service["command"][1:])
        volumes = volume_targets(service)
        storage.add(volumes[str(config.storage_root)])
        state.append(volumes[str(config.state_dir)])
        host_ports += [p.split(":")[0] for p in service["ports"]]
    assert len(storage) == 1, "agents of one data center must see the same storage root"
    assert len(set(state)) == len(state), "each agent needs its own state directory"
    assert len(set(host_ports)) == len(host_ports), "published host ports collide"
    assert storage | set(state) <= set(compose["volumes"])


def engines(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in ours(compose).items() if s["command"][0] == "engine-service"}


def test_one_engine_and_a_standby_behind_a_profile(compose: dict) -> None:
    found = engines(compose)
    active = [n for n, s in found.items() if "profiles" not in s]
    standbys = [n for n, s in found.items() if s.get("profiles") == ["standby"]]
    assert len(active) == 1 and len(standbys) == 1, found
    # Both on the same database, so that exactly one of them holds the lease.
    urls = {engine_server.parse_args(s["command"][1:]).database_url for s in found.values()}
    assert len(urls) == 1
    host_ports = [p.split(":")[0] for s in found.values() for p in s["ports"]]
    assert len(set(host_ports)) == len(host_ports)


@pytest.mark.parametrize("which", ["engine", "engine-standby"])
def test_engine_service_matches_the_code(compose: dict, monkeypatch, which: str) -> None:
    service = engines(compose)[which]
    for key, value in service.get("environment", {}).items():
        assert key.startswith(engine_server.ENV_PREFIX), key
        monkeypatch.setenv(key, str(value))
        flag = key.removeprefix(engine_server.ENV_PREFIX).lower()
        assert hasattr(engine_server.parse_args([]), flag), f"{key} is not a flag's variable"
    config = engine_server.parse_args(service["command"][1:])
    port = config.listen.rsplit(":", 1)[1]
    assert config.listen.startswith("0.0.0.0:")
    assert port in {p.split(":")[1] for p in service["ports"]}
    assert service["healthcheck"]["test"] == [
        "CMD",
        "grpc-health-probe",
        f"127.0.0.1:{port}",
        "--service",
        engine_server.SERVICE_NAME,  # readiness; "" (liveness) is SERVING on a standby too
    ]
    # The database is the compose PostgreSQL, reached with the driver the project ships.
    assert normalize_url(config.database_url).startswith("postgresql+psycopg://")
    db_host = config.database_url.split("@", 1)[1].split(":")[0].split("/")[0]
    assert db_host in compose["services"]
    postgres = compose["services"][db_host]
    user = config.database_url.split("//", 1)[1].split(":", 1)[0]
    assert postgres["environment"]["POSTGRES_USER"] == user
    assert config.database_url.rsplit("/", 1)[1] == postgres["environment"]["POSTGRES_DB"]
    assert service["depends_on"][db_host]["condition"] == "service_healthy"
    for agent in agents(compose):
        assert service["depends_on"][agent]["condition"] == "service_healthy"


def test_the_tls_override_matches_the_code(compose: dict, monkeypatch, tmp_path) -> None:
    from service_common.health_probe import main as probe
    from service_common.tls import init_pki

    init_pki(tmp_path / "pki")
    override = yaml.safe_load((ROOT / "docker-compose.tls.yml").read_text())
    assert set(override["services"]) <= set(compose["services"])
    for name, service in override["services"].items():
        base = compose["services"][name]
        env = {k: str(v) for k, v in service["environment"].items()}
        assert any("/pki" in v for v in env.values()), name
        assert "./pki:/pki:ro" in service["volumes"], name
        # The override replaces the volume list: it must keep the base's volumes.
        assert set(base.get("volumes", [])) <= set(service["volumes"]), name
        prefix = "ENGINE_" if base["command"][0] == "engine-service" else "VDSM_AGENT_"
        parser = engine_server if prefix == "ENGINE_" else agent_server
        pki = tmp_path / "pki"  # what `enginectl pki init --out ./pki` makes
        for key, value in env.items():
            assert key.startswith(prefix), key
            local = value.replace("/pki", str(pki)) if value.startswith("/pki") else value
            monkeypatch.setenv(
                key, local.replace("${ENGINE_API_TOKENS:?set ENGINE_API_TOKENS}", "t1,t2")
            )
        config = parser.parse_args(base["command"][1:])
        test = service["healthcheck"]["test"]
        if prefix == "ENGINE_":  # the override keeps probing readiness
            assert test[test.index("--service") + 1] == engine_server.SERVICE_NAME, name
            assert config.agent_tls is not None and config.agent_tls.cert is not None
            assert config.tls_cert is not None and config.api_tokens == ("t1", "t2")
        else:
            assert config.tls_client_ca is not None and config.tls_cert is not None
        for key in env:
            monkeypatch.delenv(key)
        probe_args = [a.replace("/pki", str(pki)) for a in test[2:]]
        with pytest.raises(SystemExit) as exit_status:  # parses, then reaches nothing
            probe(["127.0.0.1:1", "--timeout", "0.2", *probe_args[1:]])
        assert exit_status.value.code == 2
