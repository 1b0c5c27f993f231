"""`python scripts/new_migration.py "message"`: autogenerate the next numbered Alembic revision from
the models (engine_service/adapters/orm.py) against a scratch SQLite database at the head."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from engine_service.adapters.db import MIGRATIONS, alembic_config, make_engine, migrate


def next_revision_id() -> str:
    """Revisions are numbered 0001, 0002, ... so that their order reads off the file names."""
    versions = MIGRATIONS / "versions"
    return f"{len(list(versions.glob('[0-9][0-9][0-9][0-9]_*.py'))) + 1:04d}"


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        migrate(engine)
        command.revision(
            alembic_config(engine),
            message=sys.argv[1],
            autogenerate=True,
            rev_id=next_revision_id(),
        )


if __name__ == "__main__":
    main()
