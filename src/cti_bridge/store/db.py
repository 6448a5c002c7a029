"""Opening the database: one engine per process, SQLite and PostgreSQL behind one face.

SQLite is the embedded twin of PostgreSQL, so it is set up to behave like a server
database as far as it can: WAL (readers never wait for the record writer), foreign
keys enforced, a busy timeout instead of instant "database is locked" errors, and real
transactions (Python's sqlite3 driver would otherwise open them late and never for DDL).
Write transactions take SQLite's write lock up front (``BEGIN IMMEDIATE``), because a
transaction that reads first and writes later can fail at once, without waiting, when
another writer committed in between.

Within one process, writers queue for SQLite's write lock on a lock of our own first
(``_WriteQueue``). SQLite has no queue: a writer that finds the lock taken polls it,
sleeping 1, 2, 5, 10, 15, 20, 25 ... ms between tries, so a pop's one-row INSERT behind a
record batch of 3 ms waited 8 ms, behind one of 9 ms 18 ms. Our lock wakes the next
writer the moment the previous one commits, and waits no longer than the connection's
busy timeout; SQLite's own wait still covers writers in other processes. The queue
lets writers in in the order they came (``_FairLock``): with a plain lock the record
writer, committing one batch and beginning the next at once, took it again before a
pop that waited (a pop's call id then came late under a flood); now a pop waits for
at most the batch under way.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

__all__ = [
    "StoreService",
    "create_database_engine",
    "normalize_url",
    "safe_url",
    "session_factory",
    "single_statements",
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


class _FairLock:
    """A lock handed to its waiters in the order they came: ``release`` gives it to the
    oldest waiter directly (``threading.Lock`` may be taken again by the thread that
    just released it, before a waiter wakes)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Event] = deque()

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over as the wait ran out
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # still held: now by the oldest waiter
            else:
                self._held = False

    def locked(self) -> bool:
        return self._held

    @property
    def waiting(self) -> int:
        return len(self._waiters)


class _SQLiteConnection(sqlite3.Connection):
    """A driver connection that gives the process's write queue back when its write
    transaction ends (commit, rollback - also the pool's reset - or close)."""

    write_queue: _FairLock | None = None
    queued_write = False

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.leave_write_queue()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave_write_queue()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave_write_queue()

    def leave_write_queue(self) -> None:
        if self.queued_write and self.write_queue is not None:
            self.queued_write = False
            self.write_queue.release()


def _enter_write_queue(raw: _SQLiteConnection) -> None:
    """Wait for this process's other writers, as long as the connection's busy timeout."""
    queue = raw.write_queue
    if queue is None or raw.queued_write:
        return
    timeout_ms = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])
    if not queue.acquire(timeout=timeout_ms / 1000.0):
        raise sa_exc.OperationalError(
            "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
        )
    raw.queued_write = True


def _sqlite_engine(url: URL, busy_timeout: float, echo: bool) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    connect_args: dict[str, Any] = {"check_same_thread": False}
    kwargs: dict[str, Any] = {"connect_args": connect_args, "echo": echo}
    if in_memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, or every one is empty
    else:
        connect_args["factory"] = _SQLiteConnection
    engine = create_engine(url, **kwargs)
    write_queue = _FairLock()  # one per engine: one per database in the process

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        if isinstance(dbapi_connection, _SQLiteConnection):
            dbapi_connection.write_queue = write_queue
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
        if not write:
            connection.exec_driver_sql("BEGIN")
            return
        raw: Any = connection.connection.dbapi_connection
        if not isinstance(raw, _SQLiteConnection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        _enter_write_queue(raw)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            raw.leave_write_queue()
            raise

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


@contextmanager
def single_statements(engine: Engine) -> Iterator[Connection]:
    """A connection for statements that each stand alone (the pop's read and its call row).

    On PostgreSQL in AUTOCOMMIT: a single statement needs no transaction around it, and
    BEGIN and ROLLBACK would be two more round trips. SQLite keeps its own BEGIN hook
    (a write still takes the lock up front)."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


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
