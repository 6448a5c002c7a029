"""Opening the database: one engine per process, SQLite and PostgreSQL behind one face.

SQLite is the embedded twin of PostgreSQL, so it is set up to behave like a server
database as far as it can: WAL (readers never wait for the record writer), foreign
keys enforced, a busy timeout instead of instant "database is locked" errors, and real
transactions (Python's sqlite3 driver would otherwise open them late and never for DDL).
Write transactions take SQLite's write lock up front (``BEGIN IMMEDIATE``), because a
transaction that reads first and writes later can fail at once, without waiting, when
another writer committed in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

__all__ = [
    "StoreService",
    "create_database_engine",
    "normalize_url",
    "safe_url",
    "session_factory",
    "writing",
]

#: Execution option carried by write sessions; SQLite's BEGIN hook reads it.
WRITE_OPTION = "cti_bridge_write"


def normalize_url(url: str | URL) -> URL:
    """``postgresql://`` means psycopg 3 here: it is the driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL for logs and messages, password hidden."""
    return normalize_url(url).render_as_string(hide_password=True)


def create_database_engine(
    url: str | URL,
    *,
    pool_size: int = 4,
    sqlite_busy_timeout: float = 5.0,
    connect_timeout: int = 5,
    echo: bool = False,
) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql+psycopg://...``.

    ``pool_size`` should match the thread pool that uses the engine, so a thread never
    waits for a connection another thread holds.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, sqlite_busy_timeout, echo)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}")
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=True,  # a restarted server leaves dead pooled connections behind
        pool_recycle=1800,
        connect_args={"connect_timeout": connect_timeout},
        echo=echo,
    )


def _sqlite_engine(url: URL, busy_timeout: float, echo: bool) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}, "echo": echo}
    if in_memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, or every one is empty
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough with WAL
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def writing(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session in a write transaction, committed when the block ends without error.

    On SQLite the transaction takes the write lock at its start (``BEGIN IMMEDIATE``).
    """
    with sessions() as session:
        session.connection(execution_options={WRITE_OPTION: True})
        yield session
        session.commit()


class StoreService:
    """What every synchronous store service holds: the session factory, the region that
    national numbers are read in, and the clock (handed in so tests can set the time)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        default_region: str = "BE",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._region = default_region
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)
