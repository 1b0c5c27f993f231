from __future__ import annotations

from pathlib import Path

import pytest

from engine_service.entrypoints import server as engine_server
from service_common.config import masked
from vdsm_agent.entrypoints import server as agent_server


def test_defaults_then_file_then_environment_then_flags(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(
        'poll-interval = 5.0\ntask_timeout = 42\norphans = "resubmit"\nlisten = "0.0.0.0:6000"\n'
    )
    assert engine_server.parse_args([]).poll_interval == 1.0
    monkeypatch.setenv("ENGINE_CONFIG", str(config))
    from_file = engine_server.parse_args([])
    assert (
        from_file.poll_interval,
        from_file.task_timeout,
        from_file.orphans,
        from_file.listen,
    ) == (5.0, 42.0, "resubmit", "0.0.0.0:6000")
    monkeypatch.setenv("ENGINE_POLL_INTERVAL", "2.5")
    assert engine_server.parse_args([]).poll_interval == 2.5
    flagged = engine_server.parse_args(["--poll-interval", "0.5", "--orphans", "fail"])
    assert (flagged.poll_interval, flagged.orphans, flagged.task_timeout) == (0.5, "fail", 42.0)


def test_bad_settings_name_what_is_wrong(tmp_path: Path, monkeypatch, capsys) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("throttel = 5\n")
    with pytest.raises(SystemExit, match="unknown setting 'throttel'"):
        agent_server.parse_args(["--config", str(config)])
    monkeypatch.setenv("VDSM_AGENT_THROTTLE", "fast")
    with pytest.raises(SystemExit):
        agent_server.parse_args([])
    assert "--throttle (VDSM_AGENT_THROTTLE" in capsys.readouterr().err
    monkeypatch.delenv("VDSM_AGENT_THROTTLE")
    monkeypatch.setenv("ENGINE_ORPHANS", "ignore")
    with pytest.raises(SystemExit):
        engine_server.parse_args([])
    assert "--orphans: 'ignore' is not one of fail, resubmit" in capsys.readouterr().err


def test_the_effective_configuration_masks_secrets() -> None:
    shown = masked(
        {
            "database_url": "postgresql://engine:s3cret@db:5432/engine",
            "api_token": ["t1"],
            "listen": "127.0.0.1:50051",
            "metrics_listen": None,
        }
    )
    assert "s3cret" not in shown["database_url"] and "engine@" not in shown["database_url"]
    assert shown["database_url"].startswith("postgresql://engine:***@db")
    assert shown["api_token"] == "***"
    assert shown["listen"] == "127.0.0.1:50051" and shown["metrics_listen"] == "-"
