"""`python scripts/new_migration.py "message"`: autogenerate an Alembic revision from the models
(engine_service/adapters/orm.py) against a scratch SQLite database at the current head."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from engine_service.adapters.db import alembic_config, make_engine, migrate


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        migrate(engine)
        command.revision(alembic_config(engine), message=sys.argv[1], autogenerate=True)


if __name__ == "__main__":
    main()
