"""RecordWriter on the real reactor with a real thread pool, against real databases,
through a real outage: PostgreSQL refusing connections (and dropping the open ones) in
the middle of a stream of calls, and SQLite locked by another writer.

Runs on the real reactor via pytest-twisted, like the other integration tests; the
waits are short polls with a deadline, never fixed sleeps that a slow machine breaks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_twisted
from sqlalchemy import func, select
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from cti_bridge.calls.events import DomainEvent
from cti_bridge.records.writer import RecordWriter
from cti_bridge.store import CallStore, Store
from cti_bridge.store.db import create_database_engine, session_factory
from cti_bridge.store.models import CallRecord, CallRing, CallSegment
from cti_bridge.store.schema import upgrade
from cti_bridge.testing.store import START, queue_call_answered, set_connections_allowed

pytest_plugins = ["cti_bridge.testing.store_fixtures"]


def sleep(seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


async def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    waited = 0.0
    while not check():
        if waited >= timeout:
            raise AssertionError("condition not met in time")
        await sleep(0.02)
        waited += 0.02


def stream(calls: int) -> list[DomainEvent]:
    per_call = [queue_call_answered(f"it-{n}", at=START + n).events for n in range(calls)]
    return [events[i] for i in range(len(per_call[0])) for events in per_call]


def counts(sessions_engine: object) -> tuple[int, int, int]:
    sessions = session_factory(sessions_engine)  # type: ignore[arg-type]
    with sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(CallRecord)) or 0,
            session.scalar(select(func.count()).select_from(CallRing)) or 0,
            session.scalar(select(func.count()).select_from(CallSegment)) or 0,
        )


@pytest.mark.postgres
@pytest.mark.parametrize("store_db", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_postgresql_outage_mid_stream(store: Store, store_url: str) -> None:
    writer = RecordWriter.in_thread_pool(
        store.calls, reactor, threads=2, lanes=2, max_batch=50, initial_delay=0.05, max_delay=0.3
    )
    events = stream(120)
    try:
        for event in events[: len(events) // 2]:
            writer.submit(event)
        await eventually(lambda: writer.status()["written"] > 0)
        set_connections_allowed(store_url, False)
        try:
            for event in events[len(events) // 2 :]:
                writer.submit(event)
            await eventually(lambda: writer.status()["status"] == "degraded")
            await sleep(0.5)  # several failed retries while down
            status = writer.status()
            assert status["status"] == "degraded"
            assert status["pending"] > 0
            assert status["retries"] >= 2
        finally:
            set_connections_allowed(store_url, True)
        await writer.flush()
        status = writer.status()
        assert (status["status"], status["pending"], status["written"]) == (
            "ok",
            0,
            len(events),
        )
        assert status["failed"] == status["dropped"] == 0
        assert counts(store.engine) == (120, 240, 120)
        assert {c["outcome"] for c in store.queries.list_calls(limit=500)} == {"answered"}
    finally:
        await writer.stop()


@pytest_twisted.ensureDeferred
async def test_sqlite_locked_by_another_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.sqlite3'}"
    upgrade(url)
    engine = create_database_engine(url, sqlite_busy_timeout=0.05)
    writer = RecordWriter.in_thread_pool(
        CallStore(session_factory(engine)), reactor, threads=2, initial_delay=0.05, max_delay=0.2
    )
    events = stream(40)
    other = sqlite3.connect(str(tmp_path / "locked.sqlite3"), isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        for event in events:
            writer.submit(event)
        await eventually(lambda: writer.status()["status"] == "degraded")
        assert "locked" in (writer.status()["last_error"] or "")
        other.execute("ROLLBACK")
        await writer.flush()
        assert writer.status()["status"] == "ok"
        assert counts(engine) == (40, 80, 40)
    finally:
        other.close()
        await writer.stop()
        engine.dispose()
