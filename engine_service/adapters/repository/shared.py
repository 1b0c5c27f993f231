"""What the repository's parts share: chunked IN lists, keyset paging, rows into objects."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, Table
from sqlalchemy.orm import Session

T = TypeVar("T")
CHUNK = 500  # ids per IN list: well under every database's limit on bound parameters


def chunks(ids: Sequence[T], size: int = CHUNK) -> Iterator[list[T]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def keyset_page(
    query: Select[Any], order: Sequence[Any], after: tuple[datetime, str] | None, limit: int
) -> Select[Any]:
    """Keyset paging on (created_at, id), ascending."""
    if after is not None:
        created_at, row_id = after
        query = query.where(
            (order[0] > created_at) | ((order[0] == created_at) & (order[1] > row_id))
        )
    return query.order_by(*order).limit(limit)


class Part:
    """A group of the repository's queries over the unit of work's session."""

    session: Session
    _connection: Connection | None

    @property
    def db(self) -> Connection:
        """The unit's connection, in its transaction: the repository's statements are Core
        statements and run here, skipping the session's ORM steps (about a third of a small
        statement's time). Kept while its transaction lasts: the session closes it when the
        transaction ends, and the next statement asks the session again."""
        connection = self._connection
        if connection is None or connection.closed:
            connection = self._connection = self.session.connection()
        return connection

    def _objects(self, factory: Callable[..., T], query: Select[Any], **params: Any) -> list[T]:
        """Rows of a Core query as domain objects whose fields are named like the columns."""
        rows = self.db.execute(query, params)
        return [factory(**row._mapping) for row in rows]

    def _insert(self, table: Table, values: Sequence[dict[str, Any]]) -> None:
        """One executemany; nothing joins the session (cheaper than ORM add + flush)."""
        if values:
            self.db.execute(table.insert(), list(values))
