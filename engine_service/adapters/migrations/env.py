"""Alembic environment. The engine (and `engine-service migrate`) passes its SQLAlchemy
engine in `config.attributes["engine"]`; a DBA's `alembic -c .../alembic.ini` gives the URL
with `-x url=...`, `sqlalchemy.url` or ENGINE_DATABASE_URL. `--sql` (offline mode) prints the
SQL for that URL's dialect without connecting."""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context

from engine_service.adapters.db import make_engine, normalize_url
from engine_service.adapters.orm import Base

config = context.config
if config.config_file_name is not None:  # the alembic command line: its log lines on stderr
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("ENGINE_DATABASE_URL")
    )
    if not url:
        raise SystemExit(
            "no database URL: pass -x url=postgresql://USER@HOST/DB (or sqlite:///FILE), "
            "set sqlalchemy.url, or ENGINE_DATABASE_URL"
        )
    return normalize_url(url)


if context.is_offline_mode():
    url = database_url()
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        render_as_batch=url.startswith("sqlite"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = config.attributes.get("engine") or make_engine(database_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
