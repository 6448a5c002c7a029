"""The memory twin's tables: plain dicts of plain rows, one lock around every operation.

Rows hold what the SQL rows hold, in Python values (aware UTC datetimes, dates, lists).
The twin keeps the constraints that the services rely on: unique keys and foreign keys
the callers can hit are refused with ``sqlalchemy.exc.IntegrityError``, as the database
refuses them, so code written against the twin fails the same way.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError

__all__ = ["Row", "Tables", "refused"]

Row = dict[str, Any]


def refused(constraint: str) -> NoReturn:
    """What the database says to a row that breaks ``constraint``."""
    raise IntegrityError(f"memory: {constraint}", None, ValueError(f"{constraint} violated"))


@dataclass
class Tables:
    operators: dict[int, Row] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)  # device -> operator id
    customers: dict[int, Row] = field(default_factory=dict)
    numbers: dict[int, Row] = field(default_factory=dict)  # customer_numbers by id
    owners: dict[str, int] = field(default_factory=dict)  # E.164 -> customer id
    products: dict[int, Row] = field(default_factory=dict)
    owned: dict[int, Row] = field(default_factory=dict)  # customer_products by id
    contracts: dict[int, Row] = field(default_factory=dict)
    scripts: dict[int, Row] = field(default_factory=dict)
    agreements: dict[int, Row] = field(default_factory=dict)
    attempts: dict[int, list[Row]] = field(default_factory=dict)  # by agreement id
    events: dict[int, list[Row]] = field(default_factory=dict)  # history, by agreement id
    contacts: dict[int, Row] = field(default_factory=dict)
    calls: dict[int, Row] = field(default_factory=dict)
    call_keys: dict[tuple[str, str], int] = field(default_factory=dict)
    #: a call's rings, segments and transfers, by call id
    rings: dict[int, list[Row]] = field(default_factory=dict)
    segments: dict[int, list[Row]] = field(default_factory=dict)
    transfers: dict[int, list[Row]] = field(default_factory=dict)
    #: changes to a call's notes, category and disposition, by call id, oldest first
    note_changes: dict[int, list[Row]] = field(default_factory=dict)
    #: pbx_fences: pbx -> {pbx, token, owner, granted_at}
    fences: dict[str, Row] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: dict[str, Iterator[int]] = field(default_factory=dict)

    def next_id(self, table: str) -> int:
        counter = self._ids.get(table)
        if counter is None:
            counter = self._ids[table] = itertools.count(1)
        return next(counter)

    def check(self, table: str, row_id: int | None) -> None:
        """A foreign key: ``row_id`` (if given) must name a row of ``table``."""
        if row_id is not None and row_id not in getattr(self, table):
            refused(f"FOREIGN KEY {table}.id")

    def username(self, operator_id: int | None) -> str | None:
        row = None if operator_id is None else self.operators.get(operator_id)
        return None if row is None else row["username"]
