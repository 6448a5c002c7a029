"""The PBX's CDR table, read (blocking: in the node's pool).

The table is the PBX's (``cdr_pgsql`` writes it; cti-bridge never writes or migrates it):
its columns are reflected once. ``start``/``answer``/``end`` may be timestamps
(``cdr_pgsql``'s ``timezone=UTC`` writes UTC: a timestamp without a zone is read as UTC)
or numbers (a ``float8`` column gets the epoch with microseconds), both read as seconds
since the epoch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, MetaData, Table, create_engine, select
from sqlalchemy.engine import Engine

__all__ = ["CdrReader"]

#: The columns a call is made of (the rest of the row is not read).
COLUMNS = (
    "linkedid", "uniqueid", "sequence", "src", "dst", "dcontext", "clid", "channel",
    "dstchannel", "lastapp", "lastdata", "disposition", "start", "answer", "end",
)  # fmt: skip
TIMES = ("start", "answer", "end")
#: At most this many rows per read, the newest first: past it the oldest calls of the
#: window are left out (the caller logs it), the node's pool is not held for minutes.
MAX_ROWS = 200_000


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return float(value.timestamp())
    return float(value)


class CdrReader:
    def __init__(self, url: str, table: str, *, engine: Engine | None = None) -> None:
        self._engine = engine or create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)
        self._name = table
        self._table: Table | None = None

    def _columns(self) -> tuple[Table, list[Column[Any]]]:
        if self._table is None:
            self._table = Table(self._name, MetaData(), autoload_with=self._engine)
        table = self._table
        missing = [c for c in ("linkedid", "start", "end") if c not in table.c]
        if missing:
            raise LookupError(f"CDR table {self._name!r} has no column {', '.join(missing)}")
        return table, [table.c[c] for c in COLUMNS if c in table.c]

    def rows_since(self, since: float) -> list[dict[str, Any]]:
        """Rows of the calls that started at ``since`` or later, times in seconds."""
        table, columns = self._columns()
        start = table.c.start
        bound: Any = since
        if not _is_number(start):
            bound = datetime.fromtimestamp(since, UTC)
            if not getattr(start.type, "timezone", False):
                bound = bound.replace(tzinfo=None)
        query = select(*columns).where(start >= bound).order_by(start.desc()).limit(MAX_ROWS)
        with self._engine.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
        for row in rows:
            for key in TIMES:
                if key in row:
                    row[key] = _seconds(row[key])
        return rows

    def close(self) -> None:
        self._engine.dispose()


def _is_number(column: Column[Any]) -> bool:
    try:
        return column.type.python_type in (int, float, Decimal)
    except NotImplementedError:
        return False
