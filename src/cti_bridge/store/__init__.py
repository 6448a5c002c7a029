"""Storage: call records, operator accounts, customers, agreements and contacts (SQLAlchemy 2).

SQLite (the embedded default) and PostgreSQL run the same code and the same test
suite. Everything here is synchronous and meant to run in a thread pool; the record
writer that feeds ``CallStore`` from the reactor is the records room's
(``records/writer.py``).
See docs/storage.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .accounts import AccountError, Accounts, LoginRefused, LoginThrottled, OperatorInfo
from .agreements import Agreements
from .callers import CallerDirectory
from .contacts import Contacts
from .customers import Customers, InvalidRecord
from .db import create_database_engine, safe_url, session_factory
from .fences import FenceRefused, PbxFences
from .kpis import Kpis
from .missed import MissedCalls
from .numbers import CallerNumber, caller_number, is_withheld, normalize_number
from .pop_read import PopRead
from .queries import CallNotFound, CallQueries, InvalidAnnotation
from .records import CallStore
from .schema import SchemaOutOfDate, check_current, upgrade
from .search import CustomerSearch

__all__ = [
    "AccountError",
    "Accounts",
    "Agreements",
    "CallNotFound",
    "CallQueries",
    "CallStore",
    "CallerDirectory",
    "CallerNumber",
    "Contacts",
    "CustomerSearch",
    "Customers",
    "FenceRefused",
    "InvalidAnnotation",
    "InvalidRecord",
    "Kpis",
    "LoginRefused",
    "LoginThrottled",
    "MissedCalls",
    "OperatorInfo",
    "PbxFences",
    "PopRead",
    "SchemaOutOfDate",
    "Store",
    "caller_number",
    "check_current",
    "is_withheld",
    "normalize_number",
    "open_store",
    "upgrade",
]


@dataclass(frozen=True)
class Store:
    """Every store service on one engine; what the daemon and the CLI hand around."""

    engine: Engine
    sessions: sessionmaker[Session]
    calls: CallStore
    queries: CallQueries
    accounts: Accounts
    customers: Customers
    agreements: Agreements
    contacts: Contacts
    pop_read: PopRead
    search: CustomerSearch
    callers: CallerDirectory
    missed: MissedCalls
    kpis: Kpis
    fences: PbxFences

    @property
    def url(self) -> str:
        return safe_url(self.engine.url)

    def ping(self) -> None:
        """Raise if the database does not answer (for /healthz, in a pool thread)."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        self.engine.dispose()


def open_store(
    url: str,
    *,
    default_region: str = "BE",
    pool_size: int = 4,
    check_schema: bool = True,
    clock: Callable[[], float] = time.time,
    accounts: dict[str, object] | None = None,
) -> Store:
    """Open the database at ``url``; refuses (``SchemaOutOfDate``) a schema that is not
    this version's, unless ``check_schema`` is false. ``accounts`` passes options to
    ``Accounts`` (e.g. a cheaper password hasher in tests)."""
    engine = create_database_engine(url, pool_size=pool_size)
    try:
        if check_schema:
            check_current(engine)
    except BaseException:
        engine.dispose()
        raise
    sessions = session_factory(engine)
    calls = CallStore(sessions, default_region=default_region, clock=clock)
    return Store(
        engine=engine,
        sessions=sessions,
        calls=calls,
        queries=CallQueries(sessions, default_region=default_region, clock=clock),
        accounts=Accounts(sessions, clock=clock, **accounts or {}),  # type: ignore[arg-type]
        customers=Customers(sessions, default_region=default_region, clock=clock),
        agreements=Agreements(sessions, default_region=default_region, clock=clock),
        contacts=Contacts(sessions, default_region=default_region, clock=clock),
        pop_read=PopRead(engine, calls),
        search=CustomerSearch(sessions, default_region=default_region, clock=clock),
        callers=CallerDirectory(sessions, default_region=default_region, clock=clock),
        missed=MissedCalls(sessions, default_region=default_region, clock=clock),
        kpis=Kpis(sessions, default_region=default_region, clock=clock),
        fences=PbxFences(sessions, default_region=default_region, clock=clock),
    )
