"""The schema's migrations run by hand: `engine-service migrate` both ways on SQLite and
PostgreSQL, its `--sql` for a DBA (no connection), the shipped alembic.ini, and an engine
started with --no-migrate refusing a database that is not at the newest revision."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from engine_service.adapters.db import (
    ALEMBIC_INI,
    SchemaNotCurrent,
    current_revision,
    head_revision,
    make_engine,
)
from engine_service.adapters.orm import Base
from engine_service.bootstrap import EngineSettings, bootstrap
from engine_service.entrypoints.server import main

TABLES = set(Base.metadata.tables)
PG_URL = "postgresql://dba@db.invalid/engine"  # never connected to: --sql is offline
SERVER = [sys.executable, "-m", "engine_service.entrypoints.server"]


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def migrate_command(*args: str) -> None:
    main(["migrate", *args])


def test_migrate_upgrades_downgrades_to_base_and_upgrades_again(database_url: str) -> None:
    migrate_command("--database-url", database_url)
    assert tables(database_url) == TABLES
    migrate_command("--database-url", database_url, "--down", "base")
    assert tables(database_url) == set()
    migrate_command("--database-url", database_url, "--to", "0002")
    assert "command_events" not in tables(database_url)
    migrate_command("--database-url", database_url)
    assert tables(database_url) == TABLES
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision() == "0004"
    finally:
        engine.dispose()


def test_check_says_whether_the_database_is_at_head(database_url: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as behind:
        migrate_command("--database-url", database_url, "--check")
    assert behind.value.code == 1
    assert "at no revision, head 0004" in capsys.readouterr().out
    migrate_command("--database-url", database_url)
    with pytest.raises(SystemExit) as current:
        migrate_command("--database-url", database_url, "--check")
    assert current.value.code == 0


@pytest.mark.parametrize(
    ("url", "dialect_type"),
    [
        ("sqlite:////nonexistent/dir/engine.db", "DATETIME"),
        ("postgresql://dba@db.invalid/engine", "TIMESTAMP WITHOUT TIME ZONE"),
    ],
)
def test_sql_prints_the_schema_for_a_dba_without_connecting(
    url: str, dialect_type: str, capsys: Any
) -> None:
    migrate_command("--database-url", url, "--sql")
    sql = capsys.readouterr().out
    for table in TABLES:
        assert f"CREATE TABLE {table} (" in sql
    assert dialect_type in sql
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in sql
    migrate_command("--database-url", url, "--sql", "--from", "0003")
    upgrade = capsys.readouterr().out
    assert "CREATE TABLE command_events" in upgrade and "CREATE TABLE hosts" not in upgrade


def test_sql_downgrade_from_head() -> None:
    done = subprocess.run(
        [*SERVER, "migrate", "--sql", "--database-url", PG_URL, "--down", "0003"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "DROP TABLE command_events" in done.stdout


def test_bad_combinations_are_usage_errors(capsys: Any) -> None:
    with pytest.raises(SystemExit) as refused:
        migrate_command("--to", "head", "--down", "base")
    assert refused.value.code == 2
    assert "--to and --down" in capsys.readouterr().err


def test_the_shipped_alembic_ini_works_for_a_dba(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    alembic = Path(sys.executable).with_name("alembic")
    done = subprocess.run(
        [str(alembic), "-c", str(ALEMBIC_INI), "-x", f"url={url}", "upgrade", "head"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert tables(url) == TABLES


def test_bootstrap_without_migrating_refuses_a_schema_behind_and_takes_one_at_head(
    database_url: str,
) -> None:
    settings = EngineSettings(database_url=database_url, migrate=False)
    with pytest.raises(SchemaNotCurrent, match="run `engine-service migrate`"):
        bootstrap(settings)
    migrate_command("--database-url", database_url, "--to", "0003")
    with pytest.raises(SchemaNotCurrent, match="at schema revision 0003, not 0004"):
        bootstrap(settings)
    migrate_command("--database-url", database_url)
    engine = bootstrap(settings)
    engine.stop()


def test_an_engine_started_with_no_migrate_on_an_empty_database_refuses_to_start(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [*SERVER, "--no-migrate", "--state-dir", str(tmp_path), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    refusals = [line for line in done.stderr.splitlines() if "--no-migrate" in line]
    assert len(refusals) == 1 and "engine-service migrate" in refusals[0], done.stderr
    assert tables(f"sqlite:///{tmp_path / 'engine.db'}") == set()  # nothing was migrated
