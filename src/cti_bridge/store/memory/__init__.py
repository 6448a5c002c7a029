"""The store's memory twin: every store interface on plain dicts (klein's
``storage/memory`` shape). Same results, same errors, same order and limits as the SQL
store, proven by the contract suites that run on both (``tests/unit/store/``,
``tests/unit/pop/test_context.py``, ``tests/unit/agi/``); for tests and for features
built before their SQL.

``open_memory_store()`` gives a ``MemoryStore`` with the fields of ``Store`` that have a
twin: ``calls``, ``queries``, ``accounts``, ``customers``, ``agreements``, ``contacts``,
``pop_read``, ``search``, ``callers``, ``missed``, ``kpis``, ``fences``. No engine, no sessions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .accounts import MemoryAccounts
from .agreements import MemoryAgreements
from .callers import MemoryCallerDirectory
from .calls import MemoryCallQueries, MemoryCallStore
from .contacts import MemoryContacts
from .customers import MemoryCustomers
from .fences import MemoryPbxFences
from .kpis import MemoryKpis
from .missed import MemoryMissedCalls
from .pop_read import MemoryPopRead
from .search import MemoryCustomerSearch
from .tables import Tables

__all__ = [
    "MemoryAccounts",
    "MemoryAgreements",
    "MemoryCallQueries",
    "MemoryCallStore",
    "MemoryCallerDirectory",
    "MemoryContacts",
    "MemoryCustomerSearch",
    "MemoryCustomers",
    "MemoryKpis",
    "MemoryMissedCalls",
    "MemoryPbxFences",
    "MemoryPopRead",
    "MemoryStore",
    "Tables",
    "open_memory_store",
]


@dataclass(frozen=True)
class MemoryStore:
    calls: MemoryCallStore
    queries: MemoryCallQueries
    accounts: MemoryAccounts
    customers: MemoryCustomers
    agreements: MemoryAgreements
    contacts: MemoryContacts
    pop_read: MemoryPopRead
    search: MemoryCustomerSearch
    callers: MemoryCallerDirectory
    missed: MemoryMissedCalls
    kpis: MemoryKpis
    fences: MemoryPbxFences
    tables: Tables = field(repr=False)

    @property
    def url(self) -> str:
        return "memory:"

    def ping(self) -> None:
        """Always answers."""

    def close(self) -> None:
        """Nothing to release."""


def open_memory_store(
    *,
    default_region: str = "BE",
    clock: Callable[[], float] = time.time,
    accounts: dict[str, Any] | None = None,
) -> MemoryStore:
    """The twin of ``open_store``: ``accounts`` passes options to ``MemoryAccounts`` (e.g.
    a cheaper password hasher in tests)."""
    tables = Tables()
    region = default_region
    calls = MemoryCallStore(tables, default_region=region, clock=clock)
    return MemoryStore(
        calls=calls,
        queries=MemoryCallQueries(tables, default_region=region, clock=clock),
        accounts=MemoryAccounts(tables, clock=clock, **accounts or {}),
        customers=MemoryCustomers(tables, default_region=region, clock=clock),
        agreements=MemoryAgreements(tables, default_region=region, clock=clock),
        contacts=MemoryContacts(tables, default_region=region, clock=clock),
        pop_read=MemoryPopRead(tables, calls),
        search=MemoryCustomerSearch(tables, default_region=region, clock=clock),
        callers=MemoryCallerDirectory(tables, default_region=region, clock=clock),
        missed=MemoryMissedCalls(tables, default_region=region, clock=clock),
        kpis=MemoryKpis(tables, default_region=region, clock=clock),
        fences=MemoryPbxFences(tables, clock=clock),
        tables=tables,
    )
