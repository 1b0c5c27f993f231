"""Every query the engine makes, over one SQLAlchemy session (owned by the unit of work).

The repository takes and returns the domain's objects and values (a `CommandBatch`, an
`OrphanQuery`), never SQL expressions; it is split by table into parts that share `shared.py`.
Bulk work is set-based: status updates from a poll are one executemany, ending a command
deletes its placeholders and locks with one statement each.
"""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from engine_service.adapters.repository.batches import BatchQueries
from engine_service.adapters.repository.commands import CommandQueries
from engine_service.adapters.repository.history import HistoryQueries
from engine_service.adapters.repository.hosts import HostQueries
from engine_service.adapters.repository.inventory import InventoryQueries
from engine_service.adapters.repository.retention import RetentionQueries
from engine_service.adapters.repository.tasks import TaskQueries
from engine_service.adapters.repository.zombies import ZombieQueries


class Repository(
    HostQueries,
    InventoryQueries,
    CommandQueries,
    TaskQueries,
    BatchQueries,
    ZombieQueries,
    RetentionQueries,
    HistoryQueries,
):
    """The engine's queries, by part, over the unit of work's session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._connection: Connection | None = None


__all__ = ["Repository"]
