"""Which backends a store test runs on (imported by test modules; not a pytest plugin, so
importing it does not stop pytest from rewriting the fixtures' asserts).

``@every_backend`` marks a contract test: one that goes through the store's interfaces
only, and so runs on the memory twin as well as on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

__all__ = ["BACKENDS", "EVERY_BACKEND", "every_backend"]

#: What the ``store`` fixture runs on by default.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
#: The memory twin and both databases: what a contract test runs on.
EVERY_BACKEND = ["memory", *BACKENDS]
every_backend = pytest.mark.parametrize("store_db", EVERY_BACKEND, indirect=True)


if TYPE_CHECKING:  # mypy proves that both sides of every port fit it
    from cti_bridge.agi.ports import CallerDirectory
    from cti_bridge.console.ports import AgreementBook, ContactLog, CustomerSearch
    from cti_bridge.dialer.ports import CallbackBook
    from cti_bridge.missed.ports import MissedCallBook, NumberOwners
    from cti_bridge.pop.ports import PopContextRead
    from cti_bridge.queues.kpi_ports import KpiReads
    from cti_bridge.store import Store
    from cti_bridge.store.memory import MemoryStore
    from cti_bridge.store.ports import CallReads, CallRecords

    def _ports_fit(sql: Store, memory: MemoryStore) -> None:
        pops: list[PopContextRead] = [sql.pop_read, memory.pop_read]
        searches: list[CustomerSearch] = [sql.search, memory.search]
        books: list[AgreementBook] = [sql.agreements, memory.agreements]
        callbacks: list[CallbackBook] = [sql.agreements, memory.agreements]
        contacts: list[ContactLog] = [sql.contacts, memory.contacts]
        records: list[CallRecords] = [sql.calls, memory.calls]
        reads: list[CallReads] = [sql.queries, memory.queries]
        callers: list[CallerDirectory] = [sql.callers, memory.callers]
        missed: list[MissedCallBook] = [sql.missed, memory.missed]
        owners: list[NumberOwners] = [sql.callers, memory.callers]
        kpis: list[KpiReads] = [sql.kpis, memory.kpis]
        del pops, searches, books, callbacks, contacts, records, reads, callers, missed, owners
        del kpis
